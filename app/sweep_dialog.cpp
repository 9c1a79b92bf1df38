#include "sweep_dialog.h"

#include <QComboBox>
#include <QDir>
#include <QGridLayout>
#include <QSpinBox>
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

// A numeric key's range "MIN..MAX" or "MIN..MAX log" as a sweep's {"min", "max", "log", "int"}; false
// when the text is not a range.
bool parseRange(const QString& key, const nlohmann::json& like, const QString& text, nlohmann::ordered_json& range, QString& err) {
    static const QRegularExpression re(R"(^\s*([^.\s][^\s]*?)\s*\.\.\s*(\S+?)(\s+log)?\s*$)");
    const auto m = re.match(text);
    if (!m.hasMatch()) return false;
    bool a = false, b = false;
    const double lo = m.captured(1).toDouble(&a), hi = m.captured(2).toDouble(&b);
    if (!like.is_number() || !a || !b || lo > hi) return err = key + ": a range is MIN..MAX of numbers, MIN <= MAX", true;
    range = {{"min", lo}, {"max", hi}};
    if (!m.captured(3).isEmpty()) range["log"] = true;
    if (like.is_number_integer()) range["int"] = true;
    return true;
}

// A key's comma-separated values, typed like the form's value; "" or why not.
QString parseValues(const QString& key, const nlohmann::json& like, const QString& text, nlohmann::ordered_json& values) {
    using ojson = nlohmann::ordered_json;
    QString err;
    if (parseRange(key, like, text, values, err)) return err;
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
const char* const k_gridTakesLists = "a range (MIN..MAX) needs random, halving or TPE; a grid takes lists";
}  // namespace

// The search keys of the sweep file (config/sweep.h) for the dialog's choice.
QString addSearch(nlohmann::ordered_json& sweep, const SweepSearchChoice& how, bool ranges) {
    const std::string m = how.method.toStdString();
    if (ranges && m == "grid") return k_gridTakesLists;
    if (m != "grid") sweep["method"] = m;
    if (m == "random" || (m == "halving" && ranges)) sweep["random"] = how.points;
    if (m == "tpe") sweep["trials"] = how.points;
    if (m == "halving") {
        sweep["min_steps"] = how.minSteps;
        sweep["eta"] = how.eta;
    }
    if (how.seeds > 1) sweep["seeds"] = how.seeds;
    if (how.budget > 0) sweep["budget"] = how.budget;
    nlohmann::ordered_json obj = {{how.objective.toStdString(), how.maximise ? "max" : "min"}};
    if (!how.objective2.isEmpty() && how.objective2 != how.objective) obj[how.objective2.toStdString()] = how.maximise2 ? "max" : "min";
    if (obj.size() > 1 || how.objective != "val_loss" || how.maximise) sweep["objectives"] = obj;
    if (!how.constraint.trimmed().isEmpty()) {
        auto c = rl::sweep_constraint_parse(how.constraint.trimmed().toStdString());
        if (!c) return "constraint " + QString::fromStdString(c.status.msg);
        sweep["constraints"] = {c->text};
    }
    return {};
}

QString sweepFromForm(const rl::Config& form, const QString& workspace, const QString& name,
                      const QList<QPair<QString, QString>>& keyValues, QString* error, const SweepSearchChoice& how) {
    using ojson = nlohmann::ordered_json;  // the grid keeps the order the keys were picked in
    auto fail = [&](const QString& m) {
        if (error) *error = m;
        return QString();
    };
    if (!QRegularExpression("^[A-Za-z0-9_.-]+$").match(name).hasMatch()) return fail("sweep names use letters, digits, '.', '-' and '_' only");
    const Leaves leaves = formLeaves(form);
    ojson grid = ojson::object();
    bool ranges = false;
    for (const auto& [key, text] : keyValues) {
        const std::string k = key.toStdString();
        auto leaf = std::find_if(leaves.begin(), leaves.end(), [&](const auto& l) { return l.first == k; });
        if (leaf == leaves.end()) return fail("the form has no key " + key);
        ojson values = ojson::array();
        if (QString e = parseValues(key, leaf->second, text, values); !e.isEmpty()) return fail(e);
        ranges |= values.is_object();
        grid[k] = values;
    }
    if (grid.empty()) return fail("pick at least one key and give it values");
    SweepSearchChoice h = how;
    if (h.minSteps <= 0) h.minSteps = std::max(1, form.train.steps / 9);
    ojson sweep = {{"name", name.toStdString()}};
    if (QString e = addSearch(sweep, h, ranges); !e.isEmpty()) return fail(e);
    const QString dir = QDir(workspace).filePath("sweeps"), cfgFile = QDir(dir).filePath(name + ".config.json");
    if (!QDir().mkpath(dir)) return fail("cannot create the folder " + dir);
    if (QString e = writeWhole(cfgFile, rl::config_to_json(form)); !e.isEmpty()) return fail(e);
    sweep["config"] = cfgFile.toStdString();
    sweep["grid"] = grid;
    const QString text = QString::fromStdString(sweep.dump(2) + "\n");
    if (QString e = writeWhole(QDir(dir).filePath(name + ".json"), text.toStdString()); !e.isEmpty()) return fail(e);
    return text;
}

SweepDialog::SweepDialog(const rl::Config& form, const QString& workspace, SweepRunner& sweeps, QWidget* parent)
    : QDialog(parent), form_(form), workspace_(workspace), sweeps_(sweeps) {
    setWindowTitle("Sweep over the form's config");
    auto* l = new QVBoxLayout(this);
    auto* intro = new QLabel("Give values (comma-separated, or a range MIN..MAX, with \" log\" for log-uniform) to the keys to "
                             "sweep; each point trains as its own run (one a seed), one after another, tagged with the sweep. The "
                             "other keys keep the form's values. A grid tries every combination of lists; random, successive halving "
                             "and TPE draw their points (docs/tuning.md).", this);
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
    l->addWidget(buildSearch());
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
    countPoints();
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

QWidget* SweepDialog::buildSearch() {
    auto* box = new QWidget(this);
    auto* g = new QGridLayout(box);
    g->setContentsMargins(0, 0, 0, 0);
    auto spin = [&](const char* name, int lo, int hi, int v) {
        auto* s = new QSpinBox(box);
        s->setObjectName(name), s->setRange(lo, hi), s->setValue(v);
        connect(s, &QSpinBox::valueChanged, this, [this] { countPoints(); });
        return s;
    };
    auto combo = [&](const char* name, const QStringList& items) {
        auto* c = new QComboBox(box);
        c->setObjectName(name), c->addItems(items);
        connect(c, &QComboBox::currentIndexChanged, this, [this] { countPoints(); });
        return c;
    };
    const QStringList metrics = {"val_loss", "final_loss", "tok_per_s", "load_cv", "head_cv", "dropped", "active_params", "wall_s"};
    method_ = combo("sweepMethod", {"grid", "random", "halving", "tpe"});
    seeds_ = spin("sweepSeeds", 1, 20, 1);
    points_ = spin("sweepPoints", 1, 10000, 20);
    minSteps_ = spin("sweepMinSteps", 0, 100000000, 0);
    minSteps_->setSpecialValueText("a ninth of the steps");
    eta_ = spin("sweepEta", 2, 10, 3);
    budget_ = spin("sweepBudget", 0, 2000000000, 0);
    budget_->setSpecialValueText("none");
    objective_ = combo("sweepObjective", metrics);
    direction_ = combo("sweepDirection", {"min", "max"});
    objective2_ = combo("sweepObjective2", QStringList{"(none)"} + metrics);
    direction2_ = combo("sweepDirection2", {"min", "max"});
    direction2_->setCurrentIndex(1);
    constraint_ = new QLineEdit(box);
    constraint_->setObjectName("sweepConstraint");
    constraint_->setPlaceholderText("e.g. dropped <= 0.01");
    int c = 0;
    auto add = [&](int row, const char* label, QWidget* w) {
        g->addWidget(new QLabel(label, box), row, c), g->addWidget(w, row, c + 1);
    };
    add(0, "method:", method_), add(1, "seeds a point:", seeds_), add(2, "points / trials:", points_);
    c = 2;
    add(0, "first rung (steps):", minSteps_), add(1, "keep 1 in (eta):", eta_), add(2, "budget (steps):", budget_);
    c = 4;
    auto* obj = new QHBoxLayout(), *obj2 = new QHBoxLayout();
    obj->addWidget(objective_), obj->addWidget(direction_), obj2->addWidget(objective2_), obj2->addWidget(direction2_);
    g->addWidget(new QLabel("objective:", box), 0, c), g->addLayout(obj, 0, c + 1);
    g->addWidget(new QLabel("and:", box), 1, c), g->addLayout(obj2, 1, c + 1);
    add(2, "constraint:", constraint_);
    return box;
}

SweepSearchChoice SweepDialog::choice() const {
    SweepSearchChoice h;
    h.method = method_->currentText();
    h.seeds = seeds_->value(), h.points = points_->value(), h.minSteps = minSteps_->value(), h.eta = eta_->value();
    h.budget = budget_->value();
    h.objective = objective_->currentText(), h.maximise = direction_->currentIndex() == 1;
    h.objective2 = objective2_->currentIndex() == 0 ? QString() : objective2_->currentText();
    h.maximise2 = direction2_->currentIndex() == 1;
    h.constraint = constraint_->text();
    return h;
}

QList<QPair<QString, QString>> SweepDialog::picked() const {
    QList<QPair<QString, QString>> kv;
    for (int r = 0; r < table_->rowCount(); r++)
        if (!table_->item(r, 2)->text().trimmed().isEmpty()) kv << qMakePair(table_->item(r, 0)->text(), table_->item(r, 2)->text());
    return kv;
}

// The point count as the values are typed (the values' own checks run on Run sweep).
void SweepDialog::countPoints() {
    if (!method_ || !status_) return;  // the table and the search controls fill before the status line exists
    const QString m = method_->currentText();
    minSteps_->setEnabled(m == "halving"), eta_->setEnabled(m == "halving"), points_->setEnabled(m != "grid");
    direction2_->setEnabled(objective2_->currentIndex() > 0);
    long points = 1;
    bool ranges = false;
    QStringList keys;
    for (const auto& [k, v] : picked())
        points *= std::max<qsizetype>(1, v.split(',', Qt::SkipEmptyParts).size()), keys << k.section('.', -1), ranges |= v.contains("..");
    if (keys.isEmpty()) return status_->setText("no key picked yet");
    const QString seeds = seeds_->value() > 1 ? QString(", %1 runs each").arg(seeds_->value()) : QString();
    if (m == "grid" && ranges) status_->setText(k_gridTakesLists);  // before Run sweep says so
    else if (m == "grid" || (m == "halving" && !ranges))
        status_->setText(QString("%1 %2point%3 over %4%5").arg(points).arg(m == "halving" ? "halved " : "").arg(points == 1 ? "" : "s").arg(keys.join(" x ")).arg(seeds));
    else if (m == "tpe") status_->setText(QString("%1 trials over %2%3").arg(points_->value()).arg(keys.join(", ")).arg(seeds));
    else status_->setText(QString("%1 %2 points over %3%4").arg(points_->value()).arg(m == "halving" ? "halved" : "random").arg(keys.join(", ")).arg(seeds));
}

void SweepDialog::run() {
    QString err;
    const QString json = sweepFromForm(form_, workspace_, name_->text().trimmed(), picked(), &err, choice());
    if (json.isEmpty()) return status_->setText("<span style='color:#c0392b'>" + err.toHtmlEscaped() + "</span>");
    QString refused;
    auto said = connect(&sweeps_, &SweepRunner::message, this, [&refused](const QString& m) { refused = m; });
    const bool ok = sweeps_.start(json, name_->text().trimmed(), workspace_);
    disconnect(said);
    if (ok) accept();
    else status_->setText("<span style='color:#c0392b'>" + refused.toHtmlEscaped() + "</span>");
}
