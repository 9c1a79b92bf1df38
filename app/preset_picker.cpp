#include "preset_picker.h"

#include <QDir>
#include <QRegularExpression>
#include <QSignalBlocker>

#include "config/presets.h"
#include "io/run_recorder.h"
#include "write_whole.h"

namespace {
constexpr const char* k_userPreset = " (yours)";
}

PresetPicker::PresetPicker(const QString& workspace, QWidget* parent) : QComboBox(parent), workspace_(workspace) {
    setToolTip("Preset: loads into the config form; press Train to run it.");
    reload();
    connect(this, &QComboBox::currentIndexChanged, this, [this] {
        const QString file = currentData().toString();
        auto cfg = file.isEmpty() ? rl::preset_load(currentText().toStdString()) : rl::config_load(file.toStdString());
        if (cfg) emit configChosen(*cfg);
        else emit message(QString::fromStdString(cfg.status.msg));
    });
}

void PresetPicker::reload() {
    QSignalBlocker block(this);
    const QString current = currentText();
    clear();
    for (const auto& n : rl::preset_names()) addItem(QString::fromStdString(n));
    const QDir dir(QString::fromStdString(rl::workspace_presets_dir(workspace_.toStdString())));
    for (const QString& f : dir.entryList({"*.json"}, QDir::Files, QDir::Name)) addItem(f.chopped(5) + k_userPreset, dir.filePath(f));
    if (!current.isEmpty()) setCurrentText(current);
}

QStringList PresetPicker::names() const {
    QStringList n;
    for (int i = 0; i < count(); i++) n << itemText(i);
    return n;
}

void PresetPicker::showName(const QString& name) {
    QSignalBlocker block(this);
    setCurrentText(name);
}

bool PresetPicker::saveAs(const QString& name, rl::Config cfg) {
    if (!QRegularExpression("^[A-Za-z0-9_-]+$").match(name).hasMatch()) {
        emit message("preset names use letters, digits, - and _ only");
        return false;
    }
    cfg.name = name.toStdString();
    const QString dir = QString::fromStdString(rl::workspace_presets_dir(workspace_.toStdString()));
    const QString file = QDir(dir).filePath(name + ".json");
    const QString err = QDir().mkpath(dir) ? writeWhole(file, rl::config_to_json(cfg)) : "cannot create the folder " + dir;
    if (!err.isEmpty()) {
        emit message(err);
        return false;
    }
    reload();
    setCurrentText(name + k_userPreset);
    emit message("saved preset " + file);
    return true;
}
