// The toolbar's preset picker: the built-in presets, then the user's (<workspace>/presets/*.json,
// marked "(yours)"). Picking one hands its config to the form; Save as writes the form as a user preset.
#pragma once
#include <QComboBox>

#include "config/config.h"

class PresetPicker : public QComboBox {
    Q_OBJECT
public:
    PresetPicker(const QString& workspace, QWidget* parent = nullptr);
    void reload();  // re-lists both kinds, keeping the current name
    QStringList names() const;
    // Writes cfg as <workspace>/presets/<name>.json (letters, digits, - and _) and picks it; false
    // after saying why.
    bool saveAs(const QString& name, rl::Config cfg);
    // Names the given preset without loading it over the form (a lesson's or a scripted run's).
    void showName(const QString& name);

signals:
    void configChosen(const rl::Config& cfg);
    void message(QString text);

private:
    QString workspace_;
};
