#include "config_dock.h"

#include <QCheckBox>
#include <QComboBox>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLineEdit>
#include <QPushButton>
#include <QScrollArea>
#include <QSpinBox>
#include <QVBoxLayout>

#include <cstring>

#include <nlohmann/json.hpp>

#include "train/memory.h"
#include "util/json_leaves.h"

using json = nlohmann::json;

namespace {

// Tooltips for the keys a newcomer meets first (README "Config keys" has them all).
const QMap<QString, QString>& tips() {
    static const QMap<QString, QString> t = {
        {"model.d_model", "Width C of the residual stream."},
        {"model.n_heads", "Query heads H; H*head_dim must equal d_model without W_O."},
        {"model.n_kv_heads", "Key/value heads G (GQA); must divide n_heads. 1 = MQA, n_heads = MHA."},
        {"model.attention.heads.kind", "all_heads, static_pruning or moh (Mixture-of-Heads)."},
        {"model.attention.heads.n_active_routed", "MoH: routed heads each token switches on (K). K = 1 leaves the router no task gradient."},
        {"model.attention.heads.beta", "MoH balance-loss weight. Live: changes apply while training."},
        {"model.moe.kind", "dense, moe or mh_moe."},
        {"model.moe.top_k", "Experts per token."},
        {"model.moe.aux_weight", "Load-balance loss weight (Switch convention). Live."},
        {"model.moe.z_loss_weight", "Router z-loss weight (ST-MoE). Live."},
        {"model.moe.capacity_factor", "Switch capacity: overflow tokens are dropped. Live."},
        {"model.moe.jitter", "Router noise (noisy_topk) or input jitter. Live."},
        {"train.lr", "Peak learning rate. Live: the schedule rescales."},
        {"train.device", "Where the model trains: cpu, cuda, or auto (a GPU when the build has CUDA kernels and one "
                         "answers, else the CPU, saying why). The CUDA backend has no kernels yet: every run trains on the CPU."},
    };
    return t;
}

// Live keys come from the core's list, so the form marks and sends exactly what the trainer applies.
bool liveKey(const QString& k, rl::LiveKey* out) { return rl::live_key_from_name(k.toStdString(), *out); }

// The label says which block a key belongs to: "heads.kind", "moe.kind" and "window.kind" are three
// keys, not one; the group box already names the part before.
QString labelOf(const QString& key) {
    for (const char* p : {"model.attention.", "model.", "train.", "data."})
        if (key.startsWith(p)) return key.mid((int)std::strlen(p));
    return key;
}

QString groupOf(const QString& key) {
    if (key.startsWith("model.attention.")) return "Attention + heads";
    if (key.startsWith("model.ffn.") || key.startsWith("model.moe.")) return "FFN + experts";
    if (key.startsWith("model.")) return "Model";
    if (key.startsWith("train.")) return "Training";
    if (key.startsWith("data.")) return "Data";
    return "Run";
}

}  // namespace

ConfigDock::ConfigDock(QWidget* parent) : QDockWidget("Config", parent) {
    setObjectName("configDock");
    auto* outer = new QWidget(this);
    auto* lay = new QVBoxLayout(outer);
    message_ = new QLabel(outer);
    message_->setWordWrap(true);
    message_->setStyleSheet("color: #c0392b;");
    lay->addWidget(message_);
    memory_ = new QLabel(outer);
    memory_->setObjectName("memoryEstimate");
    memory_->setWordWrap(true);
    memory_->setToolTip("What training this config holds (weights, gradients, AdamW, activations, measurements), counted "
                        "from the layouts the trainer allocates, against the memory this process may still take.");
    lay->addWidget(memory_);
    auto* scroll = new QScrollArea(outer);
    scroll->setWidgetResizable(true);
    body_ = new QWidget(scroll);
    scroll->setWidget(body_);
    lay->addWidget(scroll, 1);
    auto* buttons = new QHBoxLayout();
    auto* save = new QPushButton("Save as preset...", outer);
    save->setObjectName("savePreset");
    save->setToolTip("Save the form, as edited, as a preset of your own (it joins the toolbar's preset list).");
    connect(save, &QPushButton::clicked, this, &ConfigDock::savePresetRequested);
    auto* open = new QPushButton("Open config...", outer);
    open->setToolTip("Load a config JSON file into the form.");
    connect(open, &QPushButton::clicked, this, &ConfigDock::openConfigRequested);
    buttons->addWidget(save);
    buttons->addWidget(open);
    lay->addLayout(buttons);
    setWidget(outer);
    setMinimumWidth(380);  // block-qualified key names and values readable without scrolling sideways
}

void ConfigDock::setConfig(const rl::Config& cfg) {
    modelFolder_ = false;
    base_ = cfg;
    rebuild();
    emit validityChanged(valid_);  // a preset too large for this machine blocks Train at once
}

void ConfigDock::setModelConfig(const rl::Config& cfg) {
    base_ = cfg;
    modelFolder_ = true;
    rebuild();
    emit validityChanged(valid_);
}

bool ConfigDock::hasEditsBeyond(const rl::Config& trained) const {
    auto cfg = config();
    if (!cfg) return true;  // an invalid value being typed is an edit too
    const std::string now = rl::config_to_json(*cfg);
    return now != rl::config_to_json(base_) && now != rl::config_to_json(trained);
}

void ConfigDock::rebuild() {
    delete body_->layout();
    for (QObject* c : body_->children()) delete c;
    edits_.clear();
    checks_.clear();
    combos_.clear();
    spins_.clear();
    auto* lay = new QVBoxLayout(body_);
    std::vector<std::pair<std::string, json>> leaves;
    rl::json_leaves(json::parse(rl::config_to_json(base_)), leaves);
    QMap<QString, QFormLayout*> groups;
    for (const char* g : {"Run", "Model", "Attention + heads", "FFN + experts", "Training", "Data"}) {
        auto* box = new QGroupBox(g, body_);
        groups[g] = new QFormLayout(box);
        lay->addWidget(box);
    }
    for (const auto& [k, v] : leaves) {
        const QString key = QString::fromStdString(k);
        QWidget* w;
        const std::vector<std::string> choices = rl::config_key_choices(k);
        if (v.is_boolean()) {
            auto* cb = new QCheckBox(body_);
            cb->setChecked(v.get<bool>());
            connect(cb, &QCheckBox::toggled, this, [this, key] { edited(key); });
            checks_[key] = cb;
            w = cb;
        } else if (!choices.empty() && v.is_string()) {  // a drop-down of the allowed values, not their spelling
            auto* co = new QComboBox(body_);
            for (const auto& c : choices) co->addItem(QString::fromStdString(c));
            co->setCurrentText(QString::fromStdString(v.get<std::string>()));
            connect(co, &QComboBox::currentTextChanged, this, [this, key] { edited(key); });
            combos_[key] = co;
            w = co;
        } else if (v.is_number_integer()) {  // validation says the rule; the box keeps it a whole number
            auto* sp = new QSpinBox(body_);
            sp->setRange(0, 100000000);
            sp->setValue((int)v.get<long long>());
            sp->setKeyboardTracking(false);  // one edit when the user is done typing, not one per digit
            connect(sp, qOverload<int>(&QSpinBox::valueChanged), this, [this, key] { edited(key); });
            spins_[key] = sp;
            w = sp;
        } else {
            auto* le = new QLineEdit(QString::fromStdString(v.is_string() ? v.get<std::string>() : v.dump()), body_);
            connect(le, &QLineEdit::textEdited, this, [this, key] { edited(key); });
            edits_[key] = le;
            w = le;
        }
        w->setObjectName(key);
        rl::LiveKey lk;
        w->setToolTip(tips().value(key, key));
        QString label = labelOf(key);
        if (liveKey(key, &lk)) label += " (live)";
        groups[groupOf(key)]->addRow(label, w);
    }
    lay->addStretch(1);
    message_->clear();
    auto cfg = config();
    valid_ = cfg ? checkMemory(*cfg) : true;  // an invalid preset is explained at its first edit, as before
}

bool ConfigDock::checkMemory(const rl::Config& cfg) {
    if (modelFolder_) {
        message_->clear();
        memory_->setStyleSheet("");
        memory_->setText("an opened model folder: forward only, its training memory is not checked");
        return true;
    }
    rl::MemoryEstimate e;
    rl::MemoryAvailable a;
    const rl::Status st = rl::memory_check_config(cfg, true, &e, &a);
    memory_->setText(QString("memory to train: %1 of %2 available")
                         .arg(QString::fromStdString(rl::memory_bytes_text(e.total())), QString::fromStdString(rl::memory_bytes_text(a.bytes))));
    memory_->setStyleSheet(st ? "" : "color: #c0392b;");
    if (!st) message_->setText(QString::fromStdString(st.msg));
    return st.is_ok();
}

rl::Result<rl::Config> ConfigDock::config() const {
    json j = json::parse(rl::config_to_json(base_));
    auto set = [&](const QString& key, const json& v) {
        json* node = &j;
        const QStringList parts = key.split('.');
        for (int i = 0; i + 1 < parts.size(); i++) node = &(*node)[parts[i].toStdString()];
        (*node)[parts.back().toStdString()] = v;
    };
    for (auto it = edits_.begin(); it != edits_.end(); ++it) {
        const std::string text = it.value()->text().toStdString();
        json parsed = json::parse(text, nullptr, false);
        set(it.key(), parsed.is_discarded() || parsed.is_string() ? json(text) : parsed);
    }
    for (auto it = checks_.begin(); it != checks_.end(); ++it) set(it.key(), it.value()->isChecked());
    for (auto it = combos_.begin(); it != combos_.end(); ++it) set(it.key(), it.value()->currentText().toStdString());
    for (auto it = spins_.begin(); it != spins_.end(); ++it) set(it.key(), it.value()->value());
    auto cfg = rl::config_from_json(j.dump());
    if (!cfg) return cfg.status;
    if (rl::Status s = rl::config_validate(*cfg); !s) return s;
    return cfg;
}

void ConfigDock::edited(const QString& key) {
    modelFolder_ = false;  // an edited form is a run to train: its memory counts again
    auto cfg = config();
    const bool was = valid_;
    valid_ = cfg.is_ok();
    if (!valid_) {
        // The message names the key and the rule; the field itself is outlined.
        message_->setText(QString::fromStdString(cfg.status.msg));
        for (auto* e : edits_) e->setStyleSheet("");
        for (auto* e : spins_) e->setStyleSheet("");
        if (edits_.contains(key)) edits_[key]->setStyleSheet("border: 1px solid #c0392b;");
        if (spins_.contains(key)) spins_[key]->setStyleSheet("border: 1px solid #c0392b;");
    } else {
        message_->clear();
        for (auto* e : edits_) e->setStyleSheet("");
        for (auto* e : spins_) e->setStyleSheet("");
        std::vector<std::string> warnings = rl::config_warnings(*cfg);
        if (!warnings.empty()) message_->setText(QString::fromStdString("warning: " + warnings[0]));
        valid_ = checkMemory(*cfg);  // too large for this machine: refused like an invalid value
        rl::LiveKey lk;
        if (valid_ && live_ && liveKey(key, &lk)) {
            const float v = edits_.contains(key) ? edits_[key]->text().toFloat() : 0.f;
            live_(rl::LiveCommand{lk, v});
        }
    }
    if (was != valid_) emit validityChanged(valid_);
}

bool ConfigDock::setField(const QString& key, const QString& value) {
    if (edits_.contains(key)) {
        edits_[key]->setText(value);
        edited(key);
        return true;
    }
    if (checks_.contains(key)) {
        checks_[key]->setChecked(value == "true");
        return true;
    }
    if (combos_.contains(key)) {  // a value the list does not hold is refused, as a user cannot pick it
        const int i = combos_[key]->findText(value);
        if (i < 0) return false;
        combos_[key]->setCurrentIndex(i);
        edited(key);
        return true;
    }
    if (spins_.contains(key)) {
        bool ok = false;
        const int v = value.toInt(&ok);
        if (!ok) return false;
        spins_[key]->setValue(v);
        edited(key);
        return true;
    }
    return false;
}
