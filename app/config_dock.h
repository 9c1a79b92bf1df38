// Config dock (docs/architecture.md §12): a Qt form for every config key, grouped (Model, Attention + heads,
// FFN + experts, Training, Data), built from the config's own JSON so no key is missed. Enum keys are
// drop-downs of their allowed values (config_key_choices), integers spin boxes, labels name their
// block ("heads.kind", "moe.kind"). Invalid values are explained inline and block Retrain; live keys
// are sent to the running trainer.
#pragma once
#include <QDockWidget>
#include <QLabel>
#include <QMap>
#include <functional>

#include "config/config.h"
#include "train/live.h"

class QLineEdit;
class QCheckBox;
class QComboBox;
class QSpinBox;

class ConfigDock : public QDockWidget {
    Q_OBJECT
public:
    explicit ConfigDock(QWidget* parent = nullptr);
    void setConfig(const rl::Config& cfg);  // a preset or a loaded file
    // An opened model folder's settings: shown, but its training memory (terabytes at the form's
    // batch for a 1B model) is not the question there, so it is not checked and not shown in red.
    void setModelConfig(const rl::Config& cfg);
    // The form's config when valid; otherwise the Status names the key.
    rl::Result<rl::Config> config() const;
    bool retrainAllowed() const { return valid_; }
    // The form differs from what setConfig gave it and from `trained` (the config of the run now in
    // the window): edits that replacing the form would lose.
    bool hasEditsBeyond(const rl::Config& trained) const;
    QString message() const { return message_->text(); }
    // "memory to train: 274.0 MiB of 22.9 GiB available": the estimate of the form's config, live; a
    // config that does not fit is refused like an invalid value (train/memory.h).
    QString memoryText() const { return memory_->text(); }
    // Sets a field by key path as a user would (tests, scripted runs).
    bool setField(const QString& key, const QString& value);
    // Called for live keys whenever their value changes to a valid one.
    void setLiveSink(std::function<void(const rl::LiveCommand&)> f) { live_ = std::move(f); }

signals:
    void validityChanged(bool valid);
    void savePresetRequested();
    void openConfigRequested();

private:
    void rebuild();
    void edited(const QString& key);
    QMap<QString, QLineEdit*> edits_;    // decimals and free text
    QMap<QString, QCheckBox*> checks_;   // booleans
    QMap<QString, QComboBox*> combos_;   // enum keys: their allowed values
    QMap<QString, QSpinBox*> spins_;     // integer keys
    QLabel* message_ = nullptr;
    QLabel* memory_ = nullptr;
    bool checkMemory(const rl::Config& cfg);  // false (and the message) when the config does not fit
    QWidget* body_ = nullptr;
    rl::Config base_;
    bool valid_ = true;
    bool modelFolder_ = false;  // the form shows an opened model folder's settings (setModelConfig)
    std::function<void(const rl::LiveCommand&)> live_;
};
