#include "runs_dock.h"

#include <QCheckBox>
#include <QColorDialog>
#include <QDialog>
#include <QFileDialog>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QInputDialog>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QMessageBox>
#include <QPushButton>
#include <QSet>
#include <QShortcut>
#include <QSignalBlocker>
#include <QTableWidget>
#include <QTreeWidget>
#include <QVBoxLayout>

#include "run_table.h"
#include "widgets.h"
#include "write_whole.h"

namespace {
enum RunColumn { ColRun, ColStatus, ColSteps, ColLoss, ColVal, ColStarted, ColCorpus, ColSweep, ColTags, ColCount };

QString q(const std::string& s) { return QString::fromStdString(s); }

// "#rrggbb" as the views' ImU32 (red in the low byte); false when empty or malformed.
bool parseColour(const std::string& hex, unsigned& out) {
    const QColor c(q(hex));
    if (hex.empty() || !c.isValid()) return false;
    out = 0xff000000u | ((unsigned)c.blue() << 16) | ((unsigned)c.green() << 8) | (unsigned)c.red();
    return true;
}

// The fields the dock and the tuning view show: a re-list that changes none of them redraws nothing.
bool sameShown(const rl::RunRecord& a, const rl::RunRecord& b) {
    return a.id == b.id && a.name == b.name && a.status == b.status && a.status_message == b.status_message && a.steps == b.steps &&
           a.final_loss == b.final_loss && a.val_loss == b.val_loss && a.tags == b.tags && a.colour == b.colour && a.sweep == b.sweep &&
           a.checkpoint == b.checkpoint && a.ended == b.ended && a.load_cv == b.load_cv && a.head_cv == b.head_cv &&
           a.dropped == b.dropped && a.tok_per_s == b.tok_per_s && a.corpus == b.corpus;
}

qint64 idOf(const QTreeWidgetItem* it) { return it->data(0, Qt::UserRole).toLongLong(); }
}  // namespace

RunsDock::RunsDock(RunController& runs, std::function<rl::Result<rl::Config>()> formConfig, QWidget* parent)
    : QDockWidget("Runs", parent), runs_(runs), formConfig_(std::move(formConfig)) {
    setObjectName("runsDock");
    auto* rw = new QWidget(this);
    auto* lay = new QVBoxLayout(rw);
    filter_ = new QLineEdit(rw);
    filter_->setObjectName("runsFilter");
    filter_->setPlaceholderText("filter: name, tag, sweep or status");
    filter_->setClearButtonEnabled(true);
    connect(filter_, &QLineEdit::textChanged, this, [this] { applyFilter(); });
    lay->addWidget(filter_);
    lay->addWidget(buildList(rw), 1);
    // How ticked runs are overlaid in the curves view.
    auto* opts = new QHBoxLayout();
    wallTime_ = new QCheckBox("x: wall time", rw);
    wallTime_->setObjectName("overlayWallTime");
    wallTime_->setToolTip("Curves over seconds of training instead of steps: runs of different speed side by side.");
    band_ = new QCheckBox("min/max band", rw);
    band_->setObjectName("overlayBand");
    band_->setToolTip("With EMA smoothing: shade the raw min..max of each run's loss over the window the EMA averages "
                      "(round(1/(1-EMA)) steps).");
    for (QCheckBox* c : {wallTime_, band_})
        connect(c, &QCheckBox::toggled, this, [this] { emit curveOptionsChanged(wallTime_->isChecked(), band_->isChecked()); });
    opts->addWidget(wallTime_);
    opts->addWidget(band_);
    opts->addStretch(1);
    lay->addLayout(opts);
    addButtons(rw, lay);
    setWidget(rw);
    connect(&runs_, &RunController::runsChanged, this, [this] {
        refresh();
        updateOverlays();
    });
    // A CLI (routelab-cli train/sweep) may write the same store meanwhile: re-list every 3 s. One
    // SELECT; the dock and the tuning view change only when a run's shown fields did.
    refresh_.setInterval(3000);
    connect(&refresh_, &QTimer::timeout, this, [this] { refresh(); });
    refresh_.start();
}

QWidget* RunsDock::buildList(QWidget* parent) {
    list_ = new QTreeWidget(parent);
    list_->setObjectName("runsList");
    list_->setHeaderLabels({"run", "status", "steps", "loss", "val", "started", "corpus", "sweep", "tags"});
    list_->setRootIsDecorated(false);
    list_->setSelectionMode(QAbstractItemView::ExtendedSelection);
    list_->setToolTip("Every run is stored in the workspace. Tick runs to overlay their curves; select two to compare configs; "
                      "right-click to rename, tag, colour, continue or export a comparison table.");
    // Status, steps and losses sized to their text; the run's name takes what is left at the dock's
    // default width and is elided in the middle (its #id and its end both tell runs apart).
    list_->header()->setSectionResizeMode(QHeaderView::ResizeToContents);
    list_->header()->setSectionResizeMode(ColRun, QHeaderView::Interactive);
    list_->header()->resizeSection(ColRun, 150);
    list_->setTextElideMode(Qt::ElideMiddle);
    list_->setContextMenuPolicy(Qt::CustomContextMenu);
    connect(list_, &QTreeWidget::customContextMenuRequested, this, [this](const QPoint& at) { contextMenu(at); });
    // Double-click: the tags cell edits tags, any other cell renames; F2 renames too.
    connect(list_, &QTreeWidget::itemDoubleClicked, this, [this](QTreeWidgetItem* it, int column) { editCell(it, column); });
    auto* f2 = new QShortcut(QKeySequence(Qt::Key_F2), list_, nullptr, nullptr, Qt::WidgetShortcut);
    connect(f2, &QShortcut::activated, this, [this] {
        if (QTreeWidgetItem* it = list_->currentItem()) editCell(it, ColRun);
    });
    connect(list_, &QTreeWidget::itemChanged, this, [this] { updateOverlays(); });
    return list_;
}

void RunsDock::addButtons(QWidget* parent, QVBoxLayout* lay) {
    auto* buttons = new QGridLayout();  // two rows: the dock stays narrow, the views keep their width
    int n = 0;
    auto add = [&](const char* text, const char* tip, auto fn) {
        auto* b = new QPushButton(text, parent);
        b->setToolTip(tip);
        connect(b, &QPushButton::clicked, this, fn);
        buttons->addWidget(b, n / 3, n % 3);
        n++;
    };
    add("Compare", "Config diff of two selected runs (one: against the form).", [this] { compare(); });
    add("Load config", "Put the selected run's config in the form.", [this] {
        auto items = list_->selectedItems();
        if (items.isEmpty()) return emit message("select a run first");
        auto cfg = rl::config_from_json(items[0]->data(0, Qt::UserRole + 1).toString().toStdString());
        if (cfg) emit loadConfig(*cfg);
        else emit message(q(cfg.status.msg));
    });
    add("CSV...", "The selected run's curves as CSV.", [this] { exportSelectedCurve(); });
    add("Table...", "The selected runs side by side (status, metrics, the config keys that differ) as CSV or Markdown.", [this] {
        const QList<qint64> ids = selectedRunIds();
        if (ids.isEmpty()) return emit message("select the runs to compare first");
        const QString f = QFileDialog::getSaveFileName(this, "Export comparison table", "runs.csv", "CSV (*.csv);;Markdown (*.md)");
        if (!f.isEmpty()) exportComparison(ids, f);
    });
    add("Delete", "Delete the selected run and its curves from the workspace.", [this] { deleteSelected(); });
    lay->addLayout(buttons);
}

void RunsDock::editCell(QTreeWidgetItem* it, int column) {
    const qint64 id = idOf(it);
    const rl::RunRecord* r = storedRun(id);
    if (!r) return;
    bool ok = false;
    if (column == ColTags) {
        QString tags;
        for (const auto& t : r->tags) tags += (tags.isEmpty() ? "" : ", ") + q(t);
        const QString t = QInputDialog::getText(this, "Tags", "Tags (comma-separated):", QLineEdit::Normal, tags, &ok);
        if (ok) setRunTags(id, t);
    } else {
        const QString n = QInputDialog::getText(this, "Rename run", "Name:", QLineEdit::Normal, q(r->name), &ok);
        if (ok && !n.trimmed().isEmpty()) renameRun(id, n.trimmed());
    }
}

const rl::RunRecord* RunsDock::storedRun(qint64 id) const {
    for (const auto& r : runs_.data().runs)
        if (r.id == id) return &r;
    return nullptr;
}

void RunsDock::syncItem(QTreeWidgetItem* it, const rl::RunRecord& r) {
    it->setText(ColRun, QString("#%1 %2%3").arg(r.id).arg(q(r.name)).arg(r.id == runs_.currentRunId() ? " (current)" : ""));
    it->setText(ColStatus, rl::run_status_name(r.status));
    it->setToolTip(ColStatus, r.status_message.empty() ? QString(rl::run_status_name(r.status)) + (r.ended.empty() ? "" : " at " + q(r.ended))
                                                       : q(r.status_message));
    static const QMap<rl::RunStatus, QColor> colours = {{rl::RunStatus::running, QColor(40, 110, 200)},
                                                        {rl::RunStatus::finished, QColor(40, 140, 60)},
                                                        {rl::RunStatus::interrupted, QColor(190, 130, 20)},
                                                        {rl::RunStatus::failed, QColor(190, 50, 40)},
                                                        {rl::RunStatus::pruned, QColor(120, 120, 130)}};
    it->setForeground(ColStatus, colours.value(r.status));
    it->setText(ColSteps, QString::number(r.steps));
    it->setText(ColLoss, r.steps > 0 ? QString::number(r.final_loss, 'f', 3) : "-");
    it->setText(ColVal, r.val_loss < 0 ? "-" : QString::number(r.val_loss, 'f', 3));
    it->setText(ColStarted, q(r.created).replace('T', ' ').left(16));
    it->setText(ColCorpus, q(r.corpus));
    it->setText(ColSweep, q(r.sweep));
    QStringList tags;
    for (const auto& t : r.tags) tags << q(t);
    it->setText(ColTags, tags.join(", "));
    it->setToolTip(ColRun, r.checkpoint.empty() ? "no checkpoint saved" : "checkpoint: " + q(r.checkpoint));
    unsigned col = 0;
    if (parseColour(r.colour, col)) {  // the run's own colour, also its overlay's
        QPixmap swatch(10, 10);
        swatch.fill(QColor(q(r.colour)));
        it->setIcon(ColRun, QIcon(swatch));
    } else {
        it->setIcon(ColRun, QIcon());
    }
    it->setData(0, Qt::UserRole, (qlonglong)r.id);
    it->setData(0, Qt::UserRole + 1, q(r.config_json));
    it->setFlags(it->flags() | Qt::ItemIsUserCheckable);
}

void RunsDock::refresh() {
    rl::RunStore* store = runs_.store();
    if (!store) return;
    auto list = rl::run_store_list(*store);
    if (!list) return emit message(q(list.status.msg));
    RunData& data = runs_.data();
    const bool same = list->size() == data.runs.size() && data.currentRunId == runs_.currentRunId() &&
                      std::equal(list->begin(), list->end(), data.runs.begin(), sameShown) && list_->topLevelItemCount() == (int)list->size();
    if (same) return;
    QSignalBlocker block(list_);
    QHash<qint64, QTreeWidgetItem*> items;
    for (int i = 0; i < list_->topLevelItemCount(); i++) items[idOf(list_->topLevelItem(i))] = list_->topLevelItem(i);
    QSet<qint64> listed;
    for (const auto& r : *list) listed.insert(r.id);
    for (auto it = items.begin(); it != items.end();)  // deleted meanwhile (here or by a CLI)
        if (!listed.contains(it.key())) delete it.value(), it = items.erase(it);
        else ++it;
    for (int i = 0; i < (int)list->size(); i++) {
        const rl::RunRecord& r = (*list)[i];
        QTreeWidgetItem* it = items.value(r.id);
        if (!it) {
            it = new QTreeWidgetItem();
            it->setCheckState(0, Qt::Unchecked);
            list_->insertTopLevelItem(i, it);
        } else if (list_->indexOfTopLevelItem(it) != i) {
            const bool sel = it->isSelected();
            list_->takeTopLevelItem(list_->indexOfTopLevelItem(it));
            list_->insertTopLevelItem(i, it);
            it->setSelected(sel);
        }
        syncItem(it, r);
    }
    data.runs = std::move(*list);
    data.currentRunId = runs_.currentRunId();
    applyFilter();
    emit viewDataChanged(Arrival::Runs);
}

void RunsDock::applyFilter() {
    const QString f = filter_->text().trimmed();
    for (int i = 0; i < list_->topLevelItemCount(); i++) {
        QTreeWidgetItem* it = list_->topLevelItem(i);
        const rl::RunRecord* r = storedRun(idOf(it));
        bool show = f.isEmpty();
        if (!show && r) {
            QStringList hay = {q(r->name), q(r->sweep), rl::run_status_name(r->status)};
            for (const auto& t : r->tags) hay << q(t);
            for (const QString& h : hay) show = show || h.contains(f, Qt::CaseInsensitive);
        }
        it->setHidden(!show);
    }
}

void RunsDock::setFilter(const QString& text) { filter_->setText(text); }

void RunsDock::setCurveOptions(bool wallTime, bool band) {
    wallTime_->setChecked(wallTime);  // toggled -> curveOptionsChanged
    band_->setChecked(band);
}

void RunsDock::updateOverlays() {
    QSignalBlocker block(list_);  // colouring the ticked items must not call this again
    RunData& data = runs_.data();
    data.overlays.clear();
    rl::RunStore* store = runs_.store();
    if (!store) return;
    int colour = 0;
    for (int i = 0; i < list_->topLevelItemCount(); i++) {
        QTreeWidgetItem* it = list_->topLevelItem(i);
        if (it->checkState(0) != Qt::Checked) {
            it->setForeground(0, QBrush());
            continue;
        }
        const qint64 id = idOf(it);
        auto c = rl::run_store_curve(*store, id);
        if (!c) {
            emit message(q(c.status.msg));
            continue;
        }
        unsigned col = overlayColour(colour++);  // ImU32 keeps red in the low byte
        if (const rl::RunRecord* r = storedRun(id)) parseColour(r->colour, col);  // the run's own colour wins
        it->setForeground(0, QColor(col & 0xff, (col >> 8) & 0xff, (col >> 16) & 0xff));
        std::string name = it->text(0).toStdString();
        if (const auto cut = name.find(" (current)"); cut != std::string::npos) name.erase(cut);
        data.overlays.push_back({id, name, col, std::move(*c)});
    }
    emit viewDataChanged(Arrival::Overlays);
}

void RunsDock::setOverlayTicked(qint64 id, bool on) {
    for (int i = 0; i < list_->topLevelItemCount(); i++)
        if (QTreeWidgetItem* it = list_->topLevelItem(i); idOf(it) == id)
            it->setCheckState(0, on ? Qt::Checked : Qt::Unchecked);  // itemChanged -> updateOverlays
}

void RunsDock::toggleOverlay(qint64 id) {
    const auto& o = runs_.data().overlays;
    setOverlayTicked(id, std::none_of(o.begin(), o.end(), [id](const OverlayRun& r) { return r.id == id; }));
}

void RunsDock::overlayAll() {
    {
        QSignalBlocker block(list_);
        for (int i = 0; i < list_->topLevelItemCount(); i++) {
            QTreeWidgetItem* it = list_->topLevelItem(i);
            it->setCheckState(0, idOf(it) == runs_.currentRunId() ? Qt::Unchecked : Qt::Checked);
        }
    }
    updateOverlays();
}

QList<qint64> RunsDock::selectedRunIds() const {
    QList<qint64> ids;
    for (int i = 0; i < list_->topLevelItemCount(); i++)  // in the dock's order, not the click order
        if (list_->topLevelItem(i)->isSelected()) ids << idOf(list_->topLevelItem(i));
    return ids;
}

bool RunsDock::stored(const rl::Status& s) {
    if (!s) emit message(q(s.msg));
    return s.is_ok();
}

bool RunsDock::renameRun(qint64 id, const QString& name) {
    if (!runs_.store() || !stored(rl::run_store_rename(*runs_.store(), id, name.toStdString()))) return false;
    if (id == runs_.currentRunId()) runs_.data().runName = name.toStdString();
    refresh();
    updateOverlays();  // a ticked run's legend follows
    return true;
}

bool RunsDock::setRunTags(qint64 id, const QString& commaSeparated) {
    std::vector<std::string> tags;
    for (const QString& t : commaSeparated.split(',', Qt::SkipEmptyParts))
        if (!t.trimmed().isEmpty()) tags.push_back(t.trimmed().toStdString());
    if (!runs_.store() || !stored(rl::run_store_set_tags(*runs_.store(), id, tags))) return false;
    refresh();
    return true;
}

bool RunsDock::setRunColour(qint64 id, const QColor& colour) {
    const std::string hex = colour.isValid() ? colour.name(QColor::HexRgb).toStdString() : std::string();
    if (!runs_.store() || !stored(rl::run_store_set_colour(*runs_.store(), id, hex))) return false;
    refresh();
    updateOverlays();
    return true;
}

QString RunsDock::comparisonTable(const QList<qint64>& ids, bool markdown) const {
    std::vector<rl::RunRecord> picked;
    for (qint64 id : ids)
        if (const rl::RunRecord* r = storedRun(id)) picked.push_back(*r);
    return q(markdown ? comparisonMarkdown(picked) : comparisonCsv(picked));
}

bool RunsDock::exportComparison(const QList<qint64>& ids, const QString& path) {
    const bool md = path.endsWith(".md", Qt::CaseInsensitive) || path.endsWith(".markdown", Qt::CaseInsensitive);
    const QString err = writeWhole(path, comparisonTable(ids, md).toStdString());
    emit message(err.isEmpty() ? QString("wrote the comparison of %1 runs to %2").arg(ids.size()).arg(path) : err);
    return err.isEmpty();
}

void RunsDock::continueFromCheckpoint(qint64 id) {
    bool ok = false;
    const int n = QInputDialog::getInt(this, "Continue from checkpoint", "More steps:", 200, 1, 1000000, 1, &ok);
    if (!ok) return;
    if (rl::Status s = runs_.continueFromCheckpoint(id, n); !s) emit message(q(s.msg));
}

void RunsDock::contextMenu(const QPoint& at) {
    QTreeWidgetItem* it = list_->itemAt(at);
    if (!it) return;
    if (!it->isSelected()) {
        list_->clearSelection();
        it->setSelected(true);
    }
    list_->setCurrentItem(it);
    const qint64 id = idOf(it);
    const rl::RunRecord* r = storedRun(id);
    if (!r) return;
    QMenu menu(this);
    menu.addAction("Rename...", this, [this, it] { editCell(it, ColRun); });
    menu.addAction("Tags...", this, [this, it] { editCell(it, ColTags); });
    menu.addAction("Colour...", this, [this, id, hex = r->colour] {
        const QColor c = QColorDialog::getColor(hex.empty() ? QColor(255, 110, 255) : QColor(q(hex)), this, "Run colour");
        if (c.isValid()) setRunColour(id, c);
    });
    if (!r->colour.empty()) menu.addAction("Palette colour", this, [this, id] { setRunColour(id, QColor()); });
    menu.addSeparator();
    QAction* cont = menu.addAction("Continue from checkpoint...", this, [this, id] { continueFromCheckpoint(id); });
    cont->setEnabled(!r->checkpoint.empty());
    if (r->checkpoint.empty()) cont->setToolTip("this run has no checkpoint (File > Save checkpoint writes one)");
    menu.addSeparator();
    menu.addAction("Compare", this, [this] { compare(); });
    menu.addAction("Export comparison table...", this, [this] {
        const QString f = QFileDialog::getSaveFileName(this, "Export comparison table", "runs.csv", "CSV (*.csv);;Markdown (*.md)");
        if (!f.isEmpty()) exportComparison(selectedRunIds(), f);
    });
    menu.addAction("Export curves as CSV...", this, [this] { exportSelectedCurve(); });
    menu.addSeparator();
    menu.addAction("Delete", this, [this] { deleteSelected(); });
    menu.exec(list_->viewport()->mapToGlobal(at));
}

void RunsDock::compare() {
    auto items = list_->selectedItems();
    QString nameA, nameB;
    std::string a, b;
    if (items.size() >= 2) {
        nameA = items[0]->text(0), nameB = items[1]->text(0);
        a = items[0]->data(0, Qt::UserRole + 1).toString().toStdString();
        b = items[1]->data(0, Qt::UserRole + 1).toString().toStdString();
    } else if (items.size() == 1) {  // one run against the form
        auto form = formConfig_();
        if (!form) return emit message(q(form.status.msg));
        nameA = items[0]->text(0), nameB = "config form";
        a = items[0]->data(0, Qt::UserRole + 1).toString().toStdString();
        b = rl::config_to_json(*form);
    } else {
        return emit message("select two runs (or one, to compare it with the form)");
    }
    const auto diff = rl::config_diff(a, b);
    QDialog dlg(this);
    dlg.setWindowTitle("Config diff");
    auto* l = new QVBoxLayout(&dlg);
    l->addWidget(new QLabel(diff.empty() ? "The two configs are identical." : QString("%1 key(s) differ").arg(diff.size()), &dlg));
    auto* t = new QTableWidget((int)diff.size(), 3, &dlg);
    t->setHorizontalHeaderLabels({"key", nameA, nameB});
    for (int i = 0; i < (int)diff.size(); i++) {
        t->setItem(i, 0, new QTableWidgetItem(q(diff[i].key)));
        t->setItem(i, 1, new QTableWidgetItem(q(diff[i].a)));
        t->setItem(i, 2, new QTableWidgetItem(q(diff[i].b)));
    }
    t->resizeColumnsToContents();
    l->addWidget(t);
    dlg.resize(700, 400);
    dlg.exec();
}

void RunsDock::exportSelectedCurve() {
    auto items = list_->selectedItems();
    if (items.isEmpty() || !runs_.store()) return emit message("select a run first");
    auto c = rl::run_store_curve(*runs_.store(), idOf(items[0]));
    if (!c) return emit message(q(c.status.msg));
    const QString f = QFileDialog::getSaveFileName(this, "Export curves as CSV", "run.csv", "CSV (*.csv)");
    if (f.isEmpty()) return;
    const QString err = writeWhole(f, rl::curve_to_csv(*c));
    emit message(err.isEmpty() ? "wrote " + f : err);
}

void RunsDock::deleteSelected() {
    auto items = list_->selectedItems();
    if (items.isEmpty() || !runs_.store()) return emit message("select a run first");
    const qint64 id = idOf(items[0]);
    if (id == runs_.currentRunId()) return emit message("this is the current run; start another before deleting it");
    if (QMessageBox::question(this, "Delete run", "Delete " + items[0]->text(0) + " and its curves from the workspace?") != QMessageBox::Yes)
        return;
    stored(rl::run_store_delete(*runs_.store(), id));
    refresh();
    updateOverlays();
}
