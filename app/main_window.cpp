#include "main_window.h"

#include <QAction>
#include <QCloseEvent>
#include <QCoreApplication>
#include <QDialog>
#include <QDir>
#include <QDockWidget>
#include <QFile>
#include <QFileDialog>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QInputDialog>
#include <QLineEdit>
#include <QMenuBar>
#include <QMessageBox>
#include <QPushButton>
#include <QRegularExpression>
#include <QSaveFile>
#include <QSet>
#include <QSignalBlocker>
#include <QSettings>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTableWidget>
#include <QToolBar>
#include <QTreeWidget>
#include <QVBoxLayout>

#include "config/presets.h"
#include "io/checkpoint.h"
#include "io/export.h"
#include "imgui_widget.h"

namespace {
constexpr size_t k_maxStats = 4000;  // StepStats kept for per-head/expert curves (about 9 KB each); thinned beyond
constexpr const char* k_userPreset = " (yours)";
constexpr size_t k_maxHistory = 500;  // probe snapshots kept for the heads view's scrubber

// Long runs keep every other element once a list passes its bound: memory stays bounded and the
// whole run stays covered, at half the resolution.
template <class T>
void thinWhenOver(std::vector<T>& v, size_t bound) {
    if (v.size() <= bound) return;
    size_t w = 0;
    for (size_t i = 0; i < v.size(); i += 2) v[w++] = std::move(v[i]);
    v.resize(w);
}

// Writes the whole file or nothing: QSaveFile replaces the old file only after every byte is on
// disk, so a full disk leaves a user's existing preset or CSV as it was. Empty string = written.
QString writeWhole(const QString& path, const std::string& bytes) {
    QSaveFile out(path);
    if (!out.open(QIODevice::WriteOnly) || out.write(bytes.data(), (qint64)bytes.size()) != (qint64)bytes.size() || !out.commit())
        return "could not write " + path + ": " + out.errorString();
    return {};
}
}  // namespace

const QStringList& MainWindow::viewNames() {
    static const QStringList names = [] {
        QStringList n;
        for (const ViewEntry& v : viewTable()) n << v.name;
        return n;
    }();
    return names;
}

MainWindow::MainWindow(const QString& workspace, QWidget* parent) : QMainWindow(parent) {
    setWindowTitle("RouteLab");
    workspace_ = workspace.isEmpty() ? QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) : workspace;
    createActions();
    buildToolbar();
    buildViewArea();
    connectSession();
    startPolling();
    buildConfigDock();
    openRunStore();
    buildDocks();
    loadPresetList();
    presets_->setCurrentText("default");
    buildMenus();
    refreshRuns();
    restoreLayout();
}

void MainWindow::buildToolbar() {
    auto* tb = addToolBar("Run");
    tb->setObjectName("runToolbar");
    presets_ = new QComboBox(this);
    presets_->setToolTip("Preset: loads into the config form; press Train to run it.");
    tb->addWidget(presets_);
    tb->addActions({trainAction_, pauseAction_, stepAction_, retrainAction_});
    live_ = new QLabel("step -  loss -  tok/s -", this);
    tb->addWidget(live_);
}

// The centre: a tab per view above the ImGui widget that draws the current one.
void MainWindow::buildViewArea() {
    auto* central = new QWidget(this);
    auto* lay = new QVBoxLayout(central);
    lay->setContentsMargins(0, 0, 0, 0);
    tabs_ = new QTabBar(central);
    for (const ViewEntry& v : viewTable()) tabs_->addTab(v.name);
    lay->addWidget(tabs_);
    imgui_ = new ImGuiWidget(central);
    lay->addWidget(imgui_, 1);
    setCentralWidget(central);
    imgui_->setDrawFunction([this] {
        if (currentView().draw(run_, viewStates_, outbox_)) imgui_->requestAnotherFrame();  // an animation, at most 15 fps
        if (outbox_.generateRequested) {
            outbox_.generateRequested = false;
            // Leave ImGui's frame before touching the session: queue it.
            QMetaObject::invokeMethod(this, [this] { requestGenerate(); }, Qt::QueuedConnection);
        }
    });
    connect(tabs_, &QTabBar::currentChanged, this, [this] { imgui_->markDirty(); });
}

void MainWindow::connectSession() {
    connect(&session_, &Session::finished, this, [this](int step, float val) {
        poll();
        updateLiveLabel();  // the last step, whatever the once-a-second throttle skipped
        if (store_ && runId_) {
            if (rl::Status s = rl::run_store_finish(*store_, runId_, val); !s) message(QString::fromStdString(s.msg));
            refreshRuns();
        }
        message(QString("run finished at step %1, validation loss %2").arg(step).arg(val, 0, 'f', 4));
        emit runFinished(step);
    });
    connect(&session_, &Session::failed, this, [this](const QString& m) { message(m); });
    connect(&session_, &Session::liveChangeRefused, this, [this](const QString& m) { message(m); });
    connect(&session_, &Session::generated, this, [this] {
        GenerateResult r = session_.takeGeneration();
        run_.generating = false;
        run_.generation = std::move(r.probe);
        run_.generationPromptTokens = r.promptTokens;
        run_.generationError = r.error;
        redrawIfShown(Arrival::Generation);
        emit generationReady();
    });
    connect(&session_, &Session::checkpointSaved, this, [this](const QString& path, int step, bool currentRun) {
        if (store_ && runId_ && currentRun)
            if (rl::Status s = rl::run_store_set_checkpoint(*store_, runId_, path.toStdString()); !s) message(QString::fromStdString(s.msg));
        refreshRuns();
        if (!exportCheckpoint_.isEmpty() && path == exportCheckpoint_) return finishExport(path);
        message(QString("checkpoint saved: %1 (step %2)").arg(path).arg(step));
        emit checkpointSaved(path);
    });
}

// The GUI polls the channels 4 times a second and redraws only when something arrived: on two
// cores with software GL every frame is taken from the trainer (input still redraws at up to 15 fps).
void MainWindow::startPolling() {
    poll_.setInterval(250);
    connect(&poll_, &QTimer::timeout, this, [this] { poll(); });
    poll_.start();
}

void MainWindow::buildConfigDock() {
    config_ = new ConfigDock(this);
    addDockWidget(Qt::LeftDockWidgetArea, config_);
    config_->setLiveSink([this](const rl::LiveCommand& c) {
        if (session_.running()) session_.send(c);
    });
    connect(config_, &ConfigDock::validityChanged, this, [this](bool ok) {
        trainAction_->setEnabled(ok);
        retrainAction_->setEnabled(ok);
    });
    connect(config_, &ConfigDock::savePresetRequested, this, [this] { savePreset(); });
    connect(config_, &ConfigDock::openConfigRequested, this, [this] { openConfig(); });
    connect(presets_, &QComboBox::currentIndexChanged, this, [this] {
        const QString file = presets_->currentData().toString();
        auto cfg = file.isEmpty() ? rl::preset_load(presets_->currentText().toStdString()) : rl::config_load(file.toStdString());
        if (cfg) config_->setConfig(*cfg);
        else message(QString::fromStdString(cfg.status.msg));
    });
}

void MainWindow::openRunStore() {
    if (!QDir().mkpath(workspace_)) {
        message("cannot create the workspace folder " + workspace_ + "; runs will not be stored (start with --workspace DIR)");
    } else {
        auto st = rl::run_store_open(QDir(workspace_).filePath("runs.sqlite").toStdString());
        if (st) store_ = std::move(*st);
        else message(QString::fromStdString(st.status.msg) + "; runs will not be stored this session");
    }
}

// The default size and dock widths, then whatever the user left last time.
void MainWindow::restoreLayout() {
    resize(1600, 1000);
    resizeDocks({config_, runsDock_}, {330, 250}, Qt::Horizontal);
    QSettings st("RouteLab", "RouteLab");
    restoreGeometry(st.value("geometry").toByteArray());
    restoreState(st.value("windowState").toByteArray());
}

// Each run action is made once and shown both in the toolbar and in the Run menu.
void MainWindow::createActions() {
    trainAction_ = new QAction("Train", this);
    trainAction_->setShortcut(QKeySequence("F5"));
    connect(trainAction_, &QAction::triggered, this, [this] { train(); });
    pauseAction_ = new QAction("Pause / resume", this);
    pauseAction_->setIconText("Pause");  // the toolbar's label
    connect(pauseAction_, &QAction::triggered, this, [this] { session_.setPaused(!session_.paused()); });
    stepAction_ = new QAction("Step", this);
    connect(stepAction_, &QAction::triggered, this, [this] {
        session_.setPaused(true);
        session_.stepOnce();
    });
    retrainAction_ = new QAction("Retrain", this);
    retrainAction_->setToolTip("Start over from fresh weights with the form's config.");
    connect(retrainAction_, &QAction::triggered, this, [this] { train(); });
}

void MainWindow::message(const QString& m) { statusBar()->showMessage(m); }

// A new run: its data starts empty and the views start as at launch.
void MainWindow::clearViews(const std::string& runName) {
    run_ = RunData{};
    run_.runName = runName;
    // A new run starts the views over; the user's own settings (the prompt and sampling settings,
    // the curves' smoothing and scale) carry over.
    ViewStates fresh;
    fresh.curves = viewStates_.curves;
    fresh.generate = viewStates_.generate;
    viewStates_ = fresh;
    outbox_ = ViewOutbox{};
    imgui_->markDirty();  // whichever view is up, its data changed
}

const ViewEntry& MainWindow::currentView() const { return viewTable()[tabs_->currentIndex()]; }

void MainWindow::redrawIfShown(unsigned arrived) {
    if (currentView().redrawOn & arrived) imgui_->markDirty();
}
QString MainWindow::statusMessage() const { return statusBar()->currentMessage(); }

QStringList MainWindow::presetNames() const {
    QStringList n;
    for (int i = 0; i < presets_->count(); i++) n << presets_->itemText(i);
    return n;
}

void MainWindow::closeEvent(QCloseEvent* e) {
    QSettings st("RouteLab", "RouteLab");
    st.setValue("geometry", saveGeometry());
    st.setValue("windowState", saveState());
    session_.stop();
    poll();  // the last steps reach the run store
    QMainWindow::closeEvent(e);
}

// ------------------------------------------------------------------------------------------ docks
void MainWindow::buildDocks() {
    probeDock_ = new QDockWidget("Probe text", this);
    probeDock_->setObjectName("probeDock");
    auto* pw = new QWidget(probeDock_);
    auto* pl = new QHBoxLayout(pw);
    probeEdit_ = new QLineEdit(QString::fromStdString(session_.probeText()), pw);
    probeEdit_->setObjectName("probeText");
    probeEdit_->setToolTip("The text the heads, experts, routing and attention views show. Enter applies it.");
    auto* apply = new QPushButton("Apply", pw);
    pl->addWidget(new QLabel("probe:", pw));
    pl->addWidget(probeEdit_, 1);
    pl->addWidget(apply);
    probeDock_->setWidget(pw);
    addDockWidget(Qt::BottomDockWidgetArea, probeDock_);
    auto applyProbe = [this] { setProbeText(probeEdit_->text()); };
    connect(probeEdit_, &QLineEdit::returnPressed, this, applyProbe);
    connect(apply, &QPushButton::clicked, this, applyProbe);

    runsDock_ = new QDockWidget("Runs", this);
    runsDock_->setObjectName("runsDock");
    auto* rw = new QWidget(runsDock_);
    auto* rlay = new QVBoxLayout(rw);
    runs_ = new QTreeWidget(rw);
    runs_->setObjectName("runsList");
    runs_->setHeaderLabels({"run", "steps", "loss", "val", "started"});
    runs_->setRootIsDecorated(false);
    runs_->setSelectionMode(QAbstractItemView::ExtendedSelection);
    runs_->setToolTip("Every run is stored in the workspace. Tick runs to overlay their curves; select two to compare configs.");
    runs_->header()->setSectionResizeMode(QHeaderView::ResizeToContents);
    rlay->addWidget(runs_, 1);
    auto* buttons = new QHBoxLayout();
    auto add = [&](const char* text, auto fn) {
        auto* b = new QPushButton(text, rw);
        connect(b, &QPushButton::clicked, this, fn);
        buttons->addWidget(b);
    };
    add("Compare", [this] { compareRuns(); });
    add("Load config", [this] {
        auto items = runs_->selectedItems();
        if (items.isEmpty()) return message("select a run first");
        auto cfg = rl::config_from_json(items[0]->data(0, Qt::UserRole + 1).toString().toStdString());
        if (cfg) config_->setConfig(*cfg);
        else message(QString::fromStdString(cfg.status.msg));
    });
    add("CSV...", [this] { exportSelectedRun(); });
    add("Delete", [this] { deleteSelectedRun(); });
    rlay->addLayout(buttons);
    runsDock_->setWidget(rw);
    addDockWidget(Qt::RightDockWidgetArea, runsDock_);
    connect(runs_, &QTreeWidget::itemChanged, this, [this] { updateOverlays(); });
}

void MainWindow::refreshRuns() {
    if (!runs_) return;
    QSignalBlocker block(runs_);
    QSet<qint64> ticked;
    for (int i = 0; i < runs_->topLevelItemCount(); i++)
        if (runs_->topLevelItem(i)->checkState(0) == Qt::Checked) ticked.insert(runs_->topLevelItem(i)->data(0, Qt::UserRole).toLongLong());
    runs_->clear();
    if (!store_) return;
    auto list = rl::run_store_list(*store_);
    if (!list) return message(QString::fromStdString(list.status.msg));
    for (const rl::RunRecord& r : *list) {
        auto* it = new QTreeWidgetItem(runs_);
        it->setText(0, QString("#%1 %2%3").arg(r.id).arg(QString::fromStdString(r.name)).arg(r.id == runId_ ? " (current)" : ""));
        it->setText(1, QString::number(r.steps));
        it->setText(2, QString::number(r.final_loss, 'f', 3));
        it->setText(3, r.val_loss < 0 ? "-" : QString::number(r.val_loss, 'f', 3));
        it->setText(4, QString::fromStdString(r.created).replace('T', ' ').left(16));
        it->setToolTip(0, r.checkpoint.empty() ? "no checkpoint saved" : "checkpoint: " + QString::fromStdString(r.checkpoint));
        it->setData(0, Qt::UserRole, (qlonglong)r.id);
        it->setData(0, Qt::UserRole + 1, QString::fromStdString(r.config_json));
        it->setFlags(it->flags() | Qt::ItemIsUserCheckable);
        it->setCheckState(0, ticked.contains(r.id) ? Qt::Checked : Qt::Unchecked);
    }
}

void MainWindow::updateOverlays() {
    QSignalBlocker block(runs_);  // colouring the ticked items must not call this again
    run_.overlays.clear();
    if (!store_) return;
    int colour = 0;
    for (int i = 0; i < runs_->topLevelItemCount(); i++) {
        QTreeWidgetItem* it = runs_->topLevelItem(i);
        if (it->checkState(0) != Qt::Checked) {
            it->setForeground(0, QBrush());
            continue;
        }
        auto c = rl::run_store_curve(*store_, it->data(0, Qt::UserRole).toLongLong());
        if (!c) {
            message(QString::fromStdString(c.status.msg));
            continue;
        }
        const unsigned col = overlayColour(colour++);  // ImU32 keeps red in the low byte
        it->setForeground(0, QColor(col & 0xff, (col >> 8) & 0xff, (col >> 16) & 0xff));
        run_.overlays.push_back({it->text(0).toStdString(), col, std::move(*c)});
    }
    redrawIfShown(Arrival::Overlays);
}

void MainWindow::overlayAllRuns() {
    {
        QSignalBlocker block(runs_);
        for (int i = 0; i < runs_->topLevelItemCount(); i++) {
            QTreeWidgetItem* it = runs_->topLevelItem(i);
            it->setCheckState(0, it->data(0, Qt::UserRole).toLongLong() == runId_ ? Qt::Unchecked : Qt::Checked);
        }
    }
    updateOverlays();
}

void MainWindow::compareRuns() {
    auto items = runs_->selectedItems();
    QString nameA, nameB;
    std::string a, b;
    if (items.size() >= 2) {
        nameA = items[0]->text(0), nameB = items[1]->text(0);
        a = items[0]->data(0, Qt::UserRole + 1).toString().toStdString();
        b = items[1]->data(0, Qt::UserRole + 1).toString().toStdString();
    } else if (items.size() == 1) {  // one run against the form
        auto form = config_->config();
        if (!form) return message(QString::fromStdString(form.status.msg));
        nameA = items[0]->text(0), nameB = "config form";
        a = items[0]->data(0, Qt::UserRole + 1).toString().toStdString();
        b = rl::config_to_json(*form);
    } else {
        return message("select two runs (or one, to compare it with the form)");
    }
    const auto diff = rl::config_diff(a, b);
    QDialog dlg(this);
    dlg.setWindowTitle("Config diff");
    auto* l = new QVBoxLayout(&dlg);
    l->addWidget(new QLabel(diff.empty() ? "The two configs are identical." : QString("%1 key(s) differ").arg(diff.size()), &dlg));
    auto* t = new QTableWidget((int)diff.size(), 3, &dlg);
    t->setHorizontalHeaderLabels({"key", nameA, nameB});
    for (int i = 0; i < (int)diff.size(); i++) {
        t->setItem(i, 0, new QTableWidgetItem(QString::fromStdString(diff[i].key)));
        t->setItem(i, 1, new QTableWidgetItem(QString::fromStdString(diff[i].a)));
        t->setItem(i, 2, new QTableWidgetItem(QString::fromStdString(diff[i].b)));
    }
    t->resizeColumnsToContents();
    l->addWidget(t);
    dlg.resize(700, 400);
    dlg.exec();
}

void MainWindow::exportSelectedRun() {
    auto items = runs_->selectedItems();
    if (items.isEmpty() || !store_) return message("select a run first");
    auto c = rl::run_store_curve(*store_, items[0]->data(0, Qt::UserRole).toLongLong());
    if (!c) return message(QString::fromStdString(c.status.msg));
    const QString f = QFileDialog::getSaveFileName(this, "Export curves as CSV", "run.csv", "CSV (*.csv)");
    if (f.isEmpty()) return;
    const QString err = writeWhole(f, rl::curve_to_csv(*c));
    message(err.isEmpty() ? "wrote " + f : err);
}

void MainWindow::deleteSelectedRun() {
    auto items = runs_->selectedItems();
    if (items.isEmpty() || !store_) return message("select a run first");
    const qint64 id = items[0]->data(0, Qt::UserRole).toLongLong();
    if (id == runId_) return message("this is the current run; start another before deleting it");
    if (QMessageBox::question(this, "Delete run", "Delete " + items[0]->text(0) + " and its curves from the workspace?") != QMessageBox::Yes)
        return;
    if (rl::Status s = rl::run_store_delete(*store_, id); !s) message(QString::fromStdString(s.msg));
    refreshRuns();
    updateOverlays();
}

// ------------------------------------------------------------------------------------ presets, files
void MainWindow::loadPresetList() {
    QSignalBlocker block(presets_);
    const QString current = presets_->currentText();
    presets_->clear();
    for (const auto& n : rl::preset_names()) presets_->addItem(QString::fromStdString(n));
    const QDir dir(QDir(workspace_).filePath("presets"));
    for (const QString& f : dir.entryList({"*.json"}, QDir::Files, QDir::Name))
        presets_->addItem(f.chopped(5) + k_userPreset, dir.filePath(f));
    if (!current.isEmpty()) presets_->setCurrentText(current);
}

void MainWindow::savePreset() {
    auto cfg = config_->config();
    if (!cfg) return message("fix the form first: " + QString::fromStdString(cfg.status.msg));
    bool ok = false;
    const QString name = QInputDialog::getText(this, "Save as preset", "Preset name (letters, digits, - and _):", QLineEdit::Normal,
                                               QString::fromStdString(cfg->name) + "-mine", &ok);
    if (ok && !name.isEmpty()) savePresetAs(name);
}

bool MainWindow::savePresetAs(const QString& name) {
    auto cfg = config_->config();
    if (!cfg) {
        message("fix the form first: " + QString::fromStdString(cfg.status.msg));
        return false;
    }
    if (!QRegularExpression("^[A-Za-z0-9_-]+$").match(name).hasMatch()) {
        message("preset names use letters, digits, - and _ only");
        return false;
    }
    cfg->name = name.toStdString();
    const QString dir = QDir(workspace_).filePath("presets"), file = QDir(dir).filePath(name + ".json");
    const QString err = QDir().mkpath(dir) ? writeWhole(file, rl::config_to_json(*cfg)) : "cannot create the folder " + dir;
    if (!err.isEmpty()) {
        message(err);
        return false;
    }
    loadPresetList();
    presets_->setCurrentText(name + k_userPreset);
    message("saved preset " + file);
    return true;
}

void MainWindow::openConfig() {
    const QString f = QFileDialog::getOpenFileName(this, "Open config", workspace_, "Config (*.json)");
    if (f.isEmpty()) return;
    auto cfg = rl::config_load(f.toStdString());
    if (!cfg) return message(QString::fromStdString(cfg.status.msg));
    config_->setConfig(*cfg);
    message("loaded " + f + " into the form; press Train to run it");
}

void MainWindow::openCorpus() {
    const QString f = QFileDialog::getOpenFileName(this, "Open corpus", QString(), "Text or RustGPT JSON (*.txt *.json);;All files (*)");
    if (f.isEmpty()) return;
    if (!config_->setField("data.corpus", f)) return message("the form has no data.corpus field");
    message("corpus set to " + f + "; press Retrain to train on it");
}

bool MainWindow::openCheckpoint(const QString& path) {
    auto st = Session::prepareFromCheckpoint(path.toStdString());
    if (!st) {
        message(QString::fromStdString(st.status.msg));
        return false;
    }
    session_.stop();
    poll();
    session_.launch(std::move(*st), true);
    clearViews(session_.config().name + " (checkpoint)");
    config_->setConfig(session_.config());
    storedPoints_ = 0;
    runId_ = 0;
    if (store_) {
        auto id = rl::run_store_begin(*store_, run_.runName, rl::config_to_json(session_.config()));
        rl::Status s = id ? rl::run_store_set_checkpoint(*store_, *id, path.toStdString()) : id.status;
        if (id) runId_ = *id;
        if (!s) message(QString::fromStdString(s.msg));
    }
    refreshRuns();
    updateOverlays();
    message("opened " + path + ": paused; Step or Pause continues training (fresh optimizer state)");
    return true;
}

void MainWindow::saveCheckpoint(const QString& path) {
    if (!session_.active()) return message("nothing to save yet: train or open a checkpoint first");
    session_.requestCheckpoint(path.toStdString());
}

void MainWindow::exportRouting(const QString& path, const QString& format) {
    if (!session_.active()) {
        message("nothing to export yet: train or open a checkpoint first");
        emit exportFinished(statusMessage());
        return;
    }
    exportPath_ = path, exportFormat_ = format;
    exportCheckpoint_ = QDir(QDir::tempPath()).filePath(QString("routelab-export-%1.safetensors").arg(QCoreApplication::applicationPid()));
    session_.requestCheckpoint(exportCheckpoint_.toStdString());
}

// The checkpoint of an export arrived: write the target's files from it (this thread only reads the file).
void MainWindow::finishExport(const QString& checkpoint) {
    exportCheckpoint_.clear();
    auto ck = rl::checkpoint_load(checkpoint.toStdString());
    QFile::remove(checkpoint);
    QString msg;
    if (!ck) {
        msg = "export failed: " + QString::fromStdString(ck.status.msg);
    } else if (exportFormat_ == "megatron") {
        const QString err = writeWhole(exportPath_, rl::export_megatron((*ck)->cfg));
        msg = err.isEmpty() ? "wrote Megatron-Core arguments to " + exportPath_ : err;
    } else {
        const QString cfgFile = QDir(exportPath_).filePath("config.json");
        QString err = QDir().mkpath(exportPath_) ? writeWhole(cfgFile, rl::export_hf_config((*ck)->cfg).dump(2) + "\n")
                                                 : "cannot create the folder " + exportPath_;
        msg = err.isEmpty() ? "wrote " + cfgFile : err;
        if (err.isEmpty() && exportFormat_ == "hf-weights") {
            if (rl::Status s = rl::export_hf_weights(exportPath_.toStdString(), (*ck)->model); !s)
                msg += "; weights not written: " + QString::fromStdString(s.msg);
            else
                msg += " and model.safetensors";
        }
    }
    message(msg);
    emit exportFinished(msg);
}

bool MainWindow::exportCsv(const QString& path) {
    const QString err = writeWhole(path, rl::curve_to_csv(run_.curve));
    message(err.isEmpty() ? "wrote " + path : err);
    return err.isEmpty();
}

void MainWindow::setProbeText(const QString& text) {
    if (probeEdit_->text() != text) probeEdit_->setText(text);
    session_.setProbeText(text.toStdString());
    run_.history.clear();  // earlier snapshots show another text
    run_.historyEpoch++;
    message("probe text applied");
}

void MainWindow::requestGenerate() {
    if (!session_.active()) {
        run_.generationError = "Train a model (or open a checkpoint) first: generation runs on its weights.";
        redrawIfShown(Arrival::Generation);
        return;
    }
    GenerateRequest r;
    const GenerateState& g = viewStates_.generate;
    r.prompt = g.prompt;
    r.sample.temperature = g.temperature;
    r.sample.top_k = g.topK;
    r.sample.top_p = g.topP;
    r.sample.seed = (unsigned long long)lastStep() + 1;
    r.maxNew = g.maxNew;
    run_.generating = true;
    run_.generationError.clear();
    session_.requestGenerate(r);
    redrawIfShown(Arrival::Generation);
}

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu("&File");
    file->addAction("Open corpus...", this, [this] { openCorpus(); });
    file->addAction("Open config...", this, [this] { openConfig(); });
    file->addAction("Save form as preset...", this, [this] { savePreset(); });
    file->addSeparator();
    file->addAction("Load checkpoint...", QKeySequence::Open, this, [this] {
        const QString f = QFileDialog::getOpenFileName(this, "Load checkpoint", workspace_, "Checkpoint (*.safetensors)");
        if (!f.isEmpty()) openCheckpoint(f);
    });
    file->addAction("Save checkpoint...", QKeySequence::Save, this, [this] {
        const QString f = QFileDialog::getSaveFileName(this, "Save checkpoint", QDir(workspace_).filePath("routelab.safetensors"),
                                                       "Checkpoint (*.safetensors)");
        if (!f.isEmpty()) saveCheckpoint(f);
    });
    file->addSeparator();
    file->addAction("Export view as PNG...", this, [this] {
        const QString f = QFileDialog::getSaveFileName(this, "Export view as PNG", "routelab-view.png", "PNG (*.png)");
        if (!f.isEmpty() && !imgui_->grabFramebuffer().save(f)) message("could not write " + f);
    });
    file->addAction("Export window as PNG...", this, [this] {
        const QString f = QFileDialog::getSaveFileName(this, "Export window as PNG", "routelab.png", "PNG (*.png)");
        if (!f.isEmpty() && !grab().save(f)) message("could not write " + f);
    });
    file->addAction("Export curves as CSV...", this, [this] {
        const QString f = QFileDialog::getSaveFileName(this, "Export curves as CSV", "routelab-curves.csv", "CSV (*.csv)");
        if (!f.isEmpty()) exportCsv(f);
    });
    file->addSeparator();
    file->addSeparator();
    file->addAction("Export routing for Megatron-Core...", this, [this] {
        const QString f = QFileDialog::getSaveFileName(this, "Megatron-Core arguments", "routelab-megatron-args.txt", "Text (*.txt)");
        if (!f.isEmpty()) exportRouting(f, "megatron");
    });
    file->addAction("Export as Hugging Face config...", this, [this] {
        const QString d = QFileDialog::getExistingDirectory(this, "Folder for config.json");
        if (!d.isEmpty()) exportRouting(d, "hf");
    });
    file->addAction("Export as Hugging Face config + weights...", this, [this] {
        const QString d = QFileDialog::getExistingDirectory(this, "Folder for config.json and model.safetensors");
        if (!d.isEmpty()) exportRouting(d, "hf-weights");
    });
    file->addSeparator();
    file->addAction("Quit", QKeySequence::Quit, this, [this] { close(); });
    QMenu* run = menuBar()->addMenu("&Run");
    run->addActions({trainAction_, pauseAction_, stepAction_, retrainAction_});
    QMenu* view = menuBar()->addMenu("&View");
    view->addAction(config_->toggleViewAction());
    view->addAction(probeDock_->toggleViewAction());
    view->addAction(runsDock_->toggleViewAction());
    view->addSeparator();
    for (size_t i = 0; i < viewTable().size(); i++) {
        const QString name = viewTable()[i].name;
        view->addAction(name, QKeySequence(QString("Ctrl+%1").arg(i + 1)), this, [this, name] { showView(name); });
    }
    QMenu* help = menuBar()->addMenu("&Help");
    help->addAction("What am I looking at?", this, [this] {
        QMessageBox::information(
            this, "RouteLab views",
            "Heads: for the probe text, each row is a token and each column a head; colour is the head's gate "
            "(dark = switched off for that token). S marks shared heads, always on. The slider replays earlier steps.\n\n"
            "Experts: each token of the probe text in the colour of the expert it was sent to first (framed in red = "
            "dropped over capacity); load bars per expert; expert x domain and expert x lexical-class matrices on "
            "validation text, with NMI; each expert's most frequent tokens.\n\n"
            "Routing: point at a token; the diagram follows it through one layer: the router's softmax, the top-k it keeps, "
            "the gates or combine weights, and the weighted sum, for heads and for experts.\n\n"
            "Attention: every head's attention pattern on the probe text (row = query, column = key); hatched rows are "
            "queries for which MoH switched the head off.\n\n"
            "Curves: loss and its parts, load imbalance (CV), dropped tokens, router entropy, and per-head or per-expert "
            "load; EMA smoothing, log-y, values on hover; runs ticked in the Runs dock are overlaid.\n\n"
            "Speedup: when a routed run finishes, the same weights run dense and routed, forward, KV-cache decode and "
            "a training step (dense-masked vs skipping the switched-off heads): the notes' naive estimate, the FLOP "
            "model and the measured speedup per component, and why they differ. With MoH or head pruning, next to it "
            "the routed model against the plain model of the same shape (every head, no router).\n\n"
            "Generate: the model continues a prompt; each token is tinted by its top expert or by its routed-head gate mass.");
    });
    help->addAction("About RouteLab", this, [this] {
        QMessageBox::about(this, "RouteLab", "RouteLab trains a real transformer live and shows its Mixture-of-Heads and "
                                             "Mixture-of-Experts routing as it learns.\nWorkspace: " + workspace_);
    });
}

bool MainWindow::startRun(const rl::Config& cfg) {
    runClock_.start();  // Train -> first numbers on screen, tokenizing and allocating included
    auto st = Session::prepare(cfg);
    if (!st) {  // a bad config or corpus: say so; the current run (if any) goes on
        message(QString::fromStdString(st.status.msg));
        return false;
    }
    session_.stop();
    poll();  // the previous run's last steps reach the store before its data goes
    session_.launch(std::move(*st));
    clearViews(cfg.name);
    session_.setProbeText(probeEdit_->text().toStdString());
    storedPoints_ = 0;
    runId_ = 0;
    if (store_) {
        auto id = rl::run_store_begin(*store_, cfg.name, rl::config_to_json(session_.config()));
        if (id) runId_ = *id;
        else message(QString::fromStdString(id.status.msg));
    }
    refreshRuns();
    updateOverlays();
    message(QString("training %1").arg(QString::fromStdString(cfg.name)));
    return true;
}

void MainWindow::train() {
    auto cfg = config_->config();  // the form, as edited
    if (!cfg) {
        message(QString::fromStdString(cfg.status.msg));
        return;
    }
    startRun(*cfg);
}

void MainWindow::showView(const QString& name) {
    if (const qsizetype i = viewNames().indexOf(name); i >= 0) tabs_->setCurrentIndex((int)i);
    imgui_->markDirty();
}

void MainWindow::updateLiveLabel() {
    if (run_.curve.empty()) return;
    labelClock_.start();
    const auto& s = run_.curve.back();
    live_->setText(QString("step %1  loss %2  tok/s %3").arg(s.step).arg(s.loss, 0, 'f', 4).arg(emaTok_, 0, 'f', 0));
}

void MainWindow::poll() {
    // Which data arrived: the view is redrawn only when it shows some of it (software GL makes
    // every frame, and the window composition after it, cost the trainer).
    unsigned arrived = 0;
    rl::StepStats st;
    while (session_.pollStats(st)) {
        if (run_.curve.empty() && runClock_.isValid()) firstStepSeconds_ = runClock_.nsecsElapsed() / 1e9;
        run_.stats.push_back(st);
        run_.curve.push_back(rl::curve_point(st));
        emaTok_ = emaTok_ == 0 ? st.tok_per_s : 0.9f * emaTok_ + 0.1f * st.tok_per_s;
        arrived |= Arrival::Stats;
    }
    thinWhenOver(run_.stats, k_maxStats);
    if (store_ && runId_ && storedPoints_ < run_.curve.size()) {
        std::vector<rl::CurvePoint> fresh(run_.curve.begin() + storedPoints_, run_.curve.end());
        if (rl::Status s = rl::run_store_append(*store_, runId_, fresh); s) storedPoints_ = run_.curve.size();
        else message(QString::fromStdString(s.msg));
    }
    if (session_.acquireProbe()) {
        run_.probe = session_.probe();
        rl::ProbeSnapshot past = run_.probe;
        for (auto& l : past.layers) {  // the scrubber replays gates and experts; the rest stays with the newest only
            l.attention.clear();
            l.head_probs.clear();
            l.shared_probs.clear();
            l.head_type.clear();
            l.expert_probs.clear();
        }
        run_.history.push_back(std::move(past));
        if (run_.history.size() > k_maxHistory) {
            thinWhenOver(run_.history, k_maxHistory);
            run_.historyEpoch++;  // indices moved
        }
        arrived |= Arrival::Probe;
    }
    if (session_.acquireSpecialization()) {
        run_.spec = session_.specialization();
        run_.hasSpec = true;
        arrived |= Arrival::Specialization;
    }
    if (session_.acquireCost()) {
        run_.cost = session_.cost();
        run_.hasCost = true;
        arrived |= Arrival::Cost;
    }
    // The live label once a second: with a QOpenGLWidget in the window every widget repaint recomposes
    // the whole window in software GL; at 4 Hz the label alone cost training 8-10% of its tok/s here.
    if ((arrived & Arrival::Stats) && (!labelClock_.isValid() || labelClock_.elapsed() >= 1000)) updateLiveLabel();
    redrawIfShown(arrived);
}
