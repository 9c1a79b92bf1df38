#include "sweep_dialog.h"

#include <QDir>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QRegularExpression>
#include <QTableWidget>
#include <QVBoxLayout>

#include <nlohmann/json.hpp>

#include "sweep_runner.h"
#include "util/json_leaves.h"
#include "write_whole.h"

namespace {
using Leaves = std::vector<std::pair<std::string, nlohmann::json>>;

Leaves formLeaves(const rl::Config& form) {
    Leaves leaves;
    rl::json_leaves(nlohmann::json::parse(rl::config_to_json(form)), leaves);
    return leaves;
}

// A key's comma-separated values, typed like the form's value; "" or why not.
QString parseValues(const QString& key, const nlohmann::json& like, const QString& text, nlohmann::ordered_json& values) {
    using ojson = nlohmann::ordered_json;
    for (const QString& raw : text.split(',', Qt::SkipEmptyParts)) {
        const QString v = raw.trimmed();
        if (v.isEmpty()) continue;
        if (like.is_number()) {
            const ojson n = ojson::parse(v.toStdString(), nullptr, false);
            if (n.is_discarded() || !n.is_number()) return key + ": '" + v + "' is not a number";
            values.push_back(n);
        } else if (like.is_boolean()) {
            if (v != "true" && v != "false") return key + ": '" + v + "' is not true or false";
            values.push_back(v == "true");
        } else {
            values.push_back(v.toStdString());
        }
    }
    return values.empty() ? key + ": give at least one value" : QString();
}
}  // namespace

QString sweepFromForm(const rl::Config& form, const QString& workspace, const QString& name,
                      const QList<QPair<QString, QString>>& keyValues, QString* error) {
    using ojson = nlohmann::ordered_json;  // the grid keeps the order the keys were picked in
    auto fail = [&](const QString& m) {
        if (error) *error = m;
        return QString();
    };
    if (!QRegularExpression("^[A-Za-z0-9_.-]+$").match(name).hasMatch()) return fail("sweep names use letters, digits, '.', '-' and '_' only");
    const Leaves leaves = formLeaves(form);
    ojson grid = ojson::object();
    for (const auto& [key, text] : keyValues) {
        const std::string k = key.toStdString();
        auto leaf = std::find_if(leaves.begin(), leaves.end(), [&](const auto& l) { return l.first == k; });
        if (leaf == leaves.end()) return fail("the form has no key " + key);
        ojson values = ojson::array();
        if (QString e = parseValues(key, leaf->second, text, values); !e.isEmpty()) return fail(e);
        grid[k] = values;
    }
    if (grid.empty()) return fail("pick at least one key and give it values");
    const QString dir = QDir(workspace).filePath("sweeps"), cfgFile = QDir(dir).filePath(name + ".config.json");
    if (!QDir().mkpath(dir)) return fail("cannot create the folder " + dir);
    if (QString e = writeWhole(cfgFile, rl::config_to_json(form)); !e.isEmpty()) return fail(e);
    const ojson sweep = {{"name", name.toStdString()}, {"config", cfgFile.toStdString()}, {"grid", grid}};
    const QString text = QString::fromStdString(sweep.dump(2) + "\n");
    if (QString e = writeWhole(QDir(dir).filePath(name + ".json"), text.toStdString()); !e.isEmpty()) return fail(e);
    return text;
}

SweepDialog::SweepDialog(const rl::Config& form, const QString& workspace, SweepRunner& sweeps, QWidget* parent)
    : QDialog(parent), form_(form), workspace_(workspace), sweeps_(sweeps) {
    setWindowTitle("Sweep over the form's config");
    auto* l = new QVBoxLayout(this);
    auto* intro = new QLabel("Give values (comma-separated) to the keys to sweep; every combination trains as its own run, one "
                             "after another, tagged with the sweep. The other keys keep the form's values.", this);
    intro->setWordWrap(true);
    l->addWidget(intro);
    auto* nameRow = new QHBoxLayout();
    name_ = new QLineEdit(QString::fromStdString(form.name) + "-sweep", this);
    name_->setObjectName("sweepName");
    nameRow->addWidget(new QLabel("name:", this));
    nameRow->addWidget(name_, 1);
    auto* find = new QLineEdit(this);
    find->setPlaceholderText("find a key");
    nameRow->addWidget(find, 1);
    l->addLayout(nameRow);
    l->addWidget(buildTable(), 1);
    connect(find, &QLineEdit::textChanged, this, [this](const QString& f) {
        for (int r = 0; r < table_->rowCount(); r++) table_->setRowHidden(r, !table_->item(r, 0)->text().contains(f, Qt::CaseInsensitive));
    });
    status_ = new QLabel(this);
    status_->setWordWrap(true);
    l->addWidget(status_);
    auto* buttons = new QHBoxLayout();
    auto* run = new QPushButton("Run sweep", this);
    auto* cancel = new QPushButton("Cancel", this);
    buttons->addStretch(1);
    buttons->addWidget(run);
    buttons->addWidget(cancel);
    l->addLayout(buttons);
    connect(table_, &QTableWidget::itemChanged, this, [this] { countPoints(); });
    connect(cancel, &QPushButton::clicked, this, &QDialog::reject);
    connect(run, &QPushButton::clicked, this, [this] { this->run(); });
    resize(720, 560);
}

QTableWidget* SweepDialog::buildTable() {
    table_ = new QTableWidget(0, 3, this);
    table_->setHorizontalHeaderLabels({"key", "form", "values to sweep"});
    for (const auto& [k, v] : formLeaves(form_)) {
        if (k == "name" || k == "description" || k == "data.corpus" || !(v.is_number() || v.is_boolean() || v.is_string())) continue;
        const int r = table_->rowCount();
        table_->insertRow(r);
        auto* key = new QTableWidgetItem(QString::fromStdString(k));
        key->setFlags(key->flags() & ~Qt::ItemIsEditable);
        auto* cur = new QTableWidgetItem(QString::fromStdString(v.is_string() ? v.get<std::string>() : v.dump()));
        cur->setFlags(cur->flags() & ~Qt::ItemIsEditable);
        table_->setItem(r, 0, key);
        table_->setItem(r, 1, cur);
        table_->setItem(r, 2, new QTableWidgetItem());
    }
    table_->resizeColumnsToContents();
    table_->horizontalHeader()->setStretchLastSection(true);
    return table_;
}

QList<QPair<QString, QString>> SweepDialog::picked() const {
    QList<QPair<QString, QString>> kv;
    for (int r = 0; r < table_->rowCount(); r++)
        if (!table_->item(r, 2)->text().trimmed().isEmpty()) kv << qMakePair(table_->item(r, 0)->text(), table_->item(r, 2)->text());
    return kv;
}

// The point count as the values are typed (the values' own checks run on Run sweep).
void SweepDialog::countPoints() {
    long points = 1;
    QStringList keys;
    for (const auto& [k, v] : picked()) points *= std::max<qsizetype>(1, v.split(',', Qt::SkipEmptyParts).size()), keys << k.section('.', -1);
    status_->setText(keys.isEmpty() ? "no key picked yet" : QString("%1 points over %2").arg(points).arg(keys.join(" x ")));
}

void SweepDialog::run() {
    QString err;
    const QString json = sweepFromForm(form_, workspace_, name_->text().trimmed(), picked(), &err);
    if (json.isEmpty()) return status_->setText("<span style='color:#c0392b'>" + err.toHtmlEscaped() + "</span>");
    QString refused;
    auto said = connect(&sweeps_, &SweepRunner::message, this, [&refused](const QString& m) { refused = m; });
    const bool ok = sweeps_.start(json, name_->text().trimmed(), workspace_);
    disconnect(said);
    if (ok) accept();
    else status_->setText("<span style='color:#c0392b'>" + refused.toHtmlEscaped() + "</span>");
}
