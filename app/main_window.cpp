#include "main_window.h"

#include <QAction>
#include <QActionGroup>
#include <QCheckBox>
#include <QCloseEvent>
#include <QColorDialog>
#include <QCoreApplication>
#include <QDialog>
#include <QDir>
#include <QDockWidget>
#include <QEventLoop>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QInputDialog>
#include <QLineEdit>
#include <QMenu>
#include <QMenuBar>
#include <QMessageBox>
#include <QProgressDialog>
#include <QPushButton>
#include <QRegularExpression>
#include <QSet>
#include <QSignalBlocker>
#include <QSettings>
#include <QShortcut>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTableWidget>
#include <QToolBar>
#include <QTreeWidget>
#include <QVBoxLayout>
#include <cmath>

#include <nlohmann/json.hpp>

#include <optional>
#include <thread>

#include "backend/ops.h"
#include "config/presets.h"
#include "util/atomic_file.h"
#include "io/checkpoint.h"
#include "io/export.h"
#include "io/resume.h"
#include "imgui_widget.h"
#include "lessons_dock.h"
#include "run_table.h"
#include "train/memory.h"
#include "widgets.h"
#include "util/json_leaves.h"

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

// Writes the whole file or nothing (util/atomic_file.h, as the CLI and checkpoints): a full disk
// leaves a user's existing preset or CSV as it was, and the message says why. Empty string = written.
QString writeWhole(const QString& path, const std::string& bytes) {
    const rl::Status s = rl::atomic_file_write(QFile::encodeName(path).toStdString(), bytes);
    return s ? QString() : QString::fromStdString(s.msg);
}

// Runs dock columns.
enum RunColumn { ColRun, ColStatus, ColSteps, ColLoss, ColVal, ColStarted, ColCorpus, ColSweep, ColTags, ColCount };

// "#rrggbb" as the views' ImU32 (red in the low byte); false when empty or malformed.
bool parseColour(const std::string& hex, unsigned& out) {
    const QColor c(QString::fromStdString(hex));
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

// A sweep point's run name: the sweep and the grid values, keys by their last part
// ("beta-aux beta=0.01 aux_weight=0.001"); the full keys stay in the label and the stored config.
std::string pointName(const QString& sweep, const std::string& label) {
    std::string out = sweep.toStdString();
    size_t at = 0;
    while (at < label.size()) {
        size_t end = label.find(' ', at);
        if (end == std::string::npos) end = label.size();
        const std::string kv = label.substr(at, end - at);
        const size_t eq = kv.find('='), dot = kv.rfind('.', eq);
        out += " " + (dot == std::string::npos ? kv : kv.substr(dot + 1));
        at = end + 1;
    }
    return out;
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
    presets_->setCurrentText(k_firstRunPreset);
    buildMenus();
    refreshRuns();
    restoreLayout();
    applyTheme(QSettings("RouteLab", "RouteLab").value("theme").toString() == "light");  // what View > Theme chose last
    // A CLI (routelab-cli train/sweep) may write the same store meanwhile: re-list every 3 s. One
    // SELECT; the dock and the tuning view change only when a run's shown fields did.
    runsRefresh_.setInterval(3000);
    connect(&runsRefresh_, &QTimer::timeout, this, [this] { refreshRuns(); });
    runsRefresh_.start();
}

MainWindow::~MainWindow() { shutdown(); }

void MainWindow::buildToolbar() {
    auto* tb = addToolBar("Run");
    tb->setObjectName("runToolbar");
    presets_ = new QComboBox(this);
    presets_->setToolTip("Preset: loads into the config form; press Train to run it.");
    tb->addWidget(presets_);
    tb->addActions({trainAction_, pauseAction_, stepAction_, retrainAction_, continueAction_});
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
        setSpotlight(spotlight_, spotlightCaption_);  // this window's, for the frame being drawn
        outbox_.spotlit.clear();
        outbox_.targets.clear();
        if (currentView().draw(run_, viewStates_, outbox_)) imgui_->requestAnotherFrame();  // an animation, at most 15 fps
        if (outbox_.remeasureRequested) {
            outbox_.remeasureRequested = false;
            run_.measuring = true;
            session_.requestCostMeasure();
        }
        if (outbox_.generateRequested) {
            outbox_.generateRequested = false;
            // Leave ImGui's frame before touching the session: queue it.
            QMetaObject::invokeMethod(this, [this] { requestGenerate(); }, Qt::QueuedConnection);
        }
        if (const int64_t id = outbox_.toggleOverlay) {  // a run clicked in the tuning view
            outbox_.toggleOverlay = 0;
            QMetaObject::invokeMethod(this, [this, id] {
                const bool on = std::none_of(run_.overlays.begin(), run_.overlays.end(), [id](const OverlayRun& o) { return o.id == id; });
                setOverlayTicked(id, on);
            }, Qt::QueuedConnection);
        }
    });
    connect(tabs_, &QTabBar::currentChanged, this, [this] { imgui_->markDirty(); });
}

void MainWindow::connectSession() {
    connect(&session_, &Session::finished, this, [this](int step, float val) {
        poll();
        updateLiveLabel();  // the last step, whatever the once-a-second throttle skipped
        if (store_ && runId_ && runStatus_ == rl::RunStatus::running) {
            if (rl::Status s = rl::run_store_finish(*store_, runId_, val); !s) message(QString::fromStdString(s.msg));
            runStatus_ = rl::RunStatus::finished;
            refreshRuns();
        }
        message(QString("run finished at step %1, validation loss %2").arg(step).arg(val, 0, 'f', 4));
        emit runFinished(step);
        if (sweep_) {
            sweep_->finished++;
            QTimer::singleShot(0, this, [this] { runNextSweepPoint(); });  // leave this signal before the next launch
        }
    });
    connect(&session_, &Session::failed, this, [this](const QString& what, int goodStep) {
        poll();  // its last good steps reach the store first
        // The weights of the last good step become the run's checkpoint (written by the trainer thread,
        // which still holds them; checkpointSaved records it on the run).
        QString m = what;
        if (store_ && runId_) {
            const QString dir = QDir(workspace_).filePath("checkpoints");
            const QString path = QDir(dir).filePath(QString("run-%1-step-%2.safetensors").arg(runId_).arg(goodStep));
            if (QDir().mkpath(dir)) {
                session_.requestCheckpoint(path.toStdString());
                m += QString("; training stopped with the weights of step %1, saved to %2").arg(goodStep).arg(path);
            }
        }
        m += " (Retrain, or lower train.lr / raise train.warmup_steps, to go on)";
        endCurrentRun(rl::RunStatus::failed, m);
        message(m);
        emit runFailed(m);
        if (sweep_) {
            sweep_->failed++;
            QTimer::singleShot(0, this, [this] { runNextSweepPoint(); });
        }
    });
    connect(&session_, &Session::checkpointFailed, this, [this](const QString& m) {
        message(m);
        if (!exportCheckpoint_.isEmpty()) {
            exportCheckpoint_.clear();
            emit exportFinished("export failed: " + m);
        }
    });
    connect(&session_, &Session::liveChangeRefused, this, [this](const QString& m) { message(m); });
    connect(&session_, &Session::liveChangeApplied, this, [this](const QString& key, float value, int step) {
        message(QString("live: %1 = %2 from step %3 on (the curves show its effect from there)").arg(key).arg(value).arg(step + 1));
    });
    connect(&session_, &Session::generated, this, [this] {
        GenerateResult r = session_.takeGeneration();
        run_.generating = false;
        run_.generation = std::move(r.probe);
        run_.generationPromptTokens = r.promptTokens;
        run_.generationError = r.error;
        run_.generationNote = r.note;
        redrawIfShown(Arrival::Generation);
        emit generationReady();
    });
    connect(&session_, &Session::checkpointSaved, this, [this](const QString& path, int step, bool currentRun) {
        const bool exporting = !exportCheckpoint_.isEmpty() && path == exportCheckpoint_;  // a temporary file, not the run's
        // Kept with the run it was asked for, also when a Retrain replaced that run during the write.
        const qint64 owner = checkpointRuns_.take(path), run = owner ? owner : (currentRun ? runId_ : 0);
        if (store_ && run && !exporting)
            if (rl::Status s = rl::run_store_set_checkpoint(*store_, run, path.toStdString(), step); !s)
                message(QString::fromStdString(s.msg));
        refreshRuns();
        if (exporting) return finishExport(path);
        // A failed run's last good weights: the failure message (which names the file) stays up.
        if (!(currentRun && runStatus_ == rl::RunStatus::failed)) message(QString("checkpoint saved: %1 (step %2)").arg(path).arg(step));
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
        if (trainAction_) trainAction_->setEnabled(ok);  // null while the window is being built
        if (retrainAction_) retrainAction_->setEnabled(ok);
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
    resizeDocks({config_, runsDock_}, {330, 340}, Qt::Horizontal);
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
    continueAction_ = new QAction("Continue N steps...", this);
    continueAction_->setIconText("Continue");
    continueAction_->setToolTip("After the run finished: train N more steps on the same weights and optimizer, in the same stored run.");
    connect(continueAction_, &QAction::triggered, this, [this] { continueDialog(); });
    sweepAction_ = new QAction("Sweep...", this);
    sweepAction_->setToolTip("Pick keys of the form and values for each; every combination trains as its own run.");
    connect(sweepAction_, &QAction::triggered, this, [this] { sweepDialog(); });
    stopSweepAction_ = new QAction("Stop sweep", this);
    stopSweepAction_->setEnabled(false);
    connect(stopSweepAction_, &QAction::triggered, this, [this] { stopSweep(); });
}

void MainWindow::message(const QString& m) { statusBar()->showMessage(m); }

// A new run: its data starts empty and the views start as at launch.
void MainWindow::clearViews(const std::string& runName) {
    std::vector<rl::RunRecord> runs = std::move(run_.runs);  // the workspace's runs are not the run's data
    run_ = RunData{};
    run_.runs = std::move(runs);
    run_.runName = runName;
    // A new run starts the views over; the user's own settings (the prompt and sampling settings,
    // the curves' smoothing and scale) carry over.
    ViewStates fresh;
    fresh.curves = viewStates_.curves;
    fresh.generate = viewStates_.generate;
    fresh.tuning = viewStates_.tuning;  // it shows the workspace's runs, not this run's
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
    if (preparing_) {  // prepareRun's worker and dialog live on this window's stack: close once it is done
        e->ignore();
        message("a run is being prepared (its text tokenized): close again when it is done");
        return;
    }
    QSettings st("RouteLab", "RouteLab");
    st.setValue("geometry", saveGeometry());
    st.setValue("windowState", saveState());
    shutdown();
    QMainWindow::closeEvent(e);
}

// Closing the window (or destroying it without a close, as scripted runs and tests do) ends the run
// in the store: a run still training is interrupted at the step it reached.
void MainWindow::shutdown() {
    if (shutDown_) return;
    shutDown_ = true;
    runsRefresh_.stop();
    sweep_.reset();  // the points not started yet are not runs
    session_.stop();
    poll();  // the last steps reach the run store
    endCurrentRun(rl::RunStatus::interrupted, QString("the window was closed at step %1").arg(lastStep()));
}

void MainWindow::endCurrentRun(rl::RunStatus status, const QString& why) {
    if (!store_ || !runId_ || runStatus_ != rl::RunStatus::running) return;
    runStatus_ = status;
    if (rl::Status s = rl::run_store_end(*store_, runId_, status, why.toStdString()); !s) message(QString::fromStdString(s.msg));
}

// Before another run takes the session: the current one, if it was still training, is interrupted.
void MainWindow::replaceCurrentRun() {
    session_.stop();
    poll();  // the previous run's last steps reach the store before its data goes
    endCurrentRun(rl::RunStatus::interrupted, QString("replaced by a new run at step %1").arg(lastStep()));
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

    // Lessons: a lesson trains on its own thread, so the window's run pauses; Show replays its last run here.
    lessons_ = new LessonsDock(this);
    addDockWidget(Qt::RightDockWidgetArea, lessons_);
    connect(lessons_, &LessonsDock::aboutToRun, this, [this] {
        if (session_.running()) session_.setPaused(true);
        message("lesson running (the window's training is paused: two cores)");
    });
    connect(lessons_, &LessonsDock::finished, this, [this](const QString& name, const QString& c) {
        message("lesson " + name + ": " + c.left(160) + (c.size() > 160 ? "..." : ""));
        if (!c.startsWith("failed")) storeLessonRuns();
    });
    connect(lessons_, &LessonsDock::showRequested, this,
            [this](const rl::Config& cfg, const QString& view, const QString& lookAt, const QString& spotlight) {
        if (config_->hasEditsBeyond(session_.config())) {  // the lesson's config would replace them unasked
            const auto answer = QMessageBox::question(
                this, "Show the lesson's run",
                "The Config form has edits that are neither trained nor saved; the lesson's run replaces the form.\n"
                "Save them as a preset first?",
                QMessageBox::Save | QMessageBox::Discard | QMessageBox::Cancel, QMessageBox::Save);
            if (answer == QMessageBox::Cancel) return;
            if (answer == QMessageBox::Save) savePreset();
        }
        config_->setConfig(cfg);
        {
            QSignalBlocker block(presets_);  // the picker names the lesson's preset without loading it over the form
            presets_->setCurrentText(QString::fromStdString(cfg.name));
        }
        if (startRun(cfg)) {
            // Framed in the view until another run starts (beginRun clears it).
            spotlight_ = spotlight.toStdString(), spotlightCaption_ = lookAt.toStdString();
            const auto& results = lessons_->lastResults();
            if (runId_ && !results.empty()) {  // named and tagged like the lesson's other runs
                renameRun(runId_, QString::fromStdString(results.back().spec.label));
                setRunTags(runId_, "lesson:" + lessons_->lastName());
            }
            for (qint64 id : lessonRunIds_) setOverlayTicked(id, true);  // the lesson's other runs, next to this one
            showView(view);
            message("lesson: the same run again, in the window; in the " + view + " view, look at " + lookAt);
        }
    });

    runsDock_ = new QDockWidget("Runs", this);
    runsDock_->setObjectName("runsDock");
    auto* rw = new QWidget(runsDock_);
    auto* rlay = new QVBoxLayout(rw);
    runsFilter_ = new QLineEdit(rw);
    runsFilter_->setObjectName("runsFilter");
    runsFilter_->setPlaceholderText("filter: name, tag, sweep or status");
    runsFilter_->setClearButtonEnabled(true);
    connect(runsFilter_, &QLineEdit::textChanged, this, [this] { applyRunsFilter(); });
    rlay->addWidget(runsFilter_);
    runs_ = new QTreeWidget(rw);
    runs_->setObjectName("runsList");
    runs_->setHeaderLabels({"run", "status", "steps", "loss", "val", "started", "corpus", "sweep", "tags"});
    runs_->setRootIsDecorated(false);
    runs_->setSelectionMode(QAbstractItemView::ExtendedSelection);
    runs_->setToolTip("Every run is stored in the workspace. Tick runs to overlay their curves; select two to compare configs; "
                      "right-click to rename, tag, colour, continue or export a comparison table.");
    // Status, steps and losses sized to their text; the run's name takes what is left at the dock's
    // default width and is elided in the middle (its #id and its end both tell runs apart).
    runs_->header()->setSectionResizeMode(QHeaderView::ResizeToContents);
    runs_->header()->setSectionResizeMode(ColRun, QHeaderView::Interactive);
    runs_->header()->resizeSection(ColRun, 150);
    runs_->setTextElideMode(Qt::ElideMiddle);
    runs_->setContextMenuPolicy(Qt::CustomContextMenu);
    connect(runs_, &QTreeWidget::customContextMenuRequested, this, [this](const QPoint& at) { runsContextMenu(at); });
    // Double-click: the tags cell edits tags, any other cell renames; F2 renames too.
    connect(runs_, &QTreeWidget::itemDoubleClicked, this, [this](QTreeWidgetItem* it, int column) {
        const qint64 id = it->data(0, Qt::UserRole).toLongLong();
        const rl::RunRecord* r = storedRun(id);
        if (!r) return;
        bool ok = false;
        if (column == ColTags) {
            QString tags;
            for (const auto& t : r->tags) tags += (tags.isEmpty() ? "" : ", ") + QString::fromStdString(t);
            const QString t = QInputDialog::getText(this, "Tags", "Tags (comma-separated):", QLineEdit::Normal, tags, &ok);
            if (ok) setRunTags(id, t);
        } else {
            const QString n = QInputDialog::getText(this, "Rename run", "Name:", QLineEdit::Normal, QString::fromStdString(r->name), &ok);
            if (ok && !n.trimmed().isEmpty()) renameRun(id, n.trimmed());
        }
    });
    auto* f2 = new QShortcut(QKeySequence(Qt::Key_F2), runs_, nullptr, nullptr, Qt::WidgetShortcut);
    connect(f2, &QShortcut::activated, this, [this] {
        if (QTreeWidgetItem* it = runs_->currentItem()) emit runs_->itemDoubleClicked(it, ColRun);
    });
    rlay->addWidget(runs_, 1);
    // How ticked runs are overlaid in the curves view.
    auto* opts = new QHBoxLayout();
    wallTime_ = new QCheckBox("x: wall time", rw);
    wallTime_->setObjectName("overlayWallTime");
    wallTime_->setToolTip("Curves over seconds of training instead of steps: runs of different speed side by side.");
    band_ = new QCheckBox("min/max band", rw);
    band_->setObjectName("overlayBand");
    band_->setToolTip("With EMA smoothing: shade the raw min..max of each run's loss over the window the EMA averages "
                      "(round(1/(1-EMA)) steps).");
    connect(wallTime_, &QCheckBox::toggled, this, [this](bool on) {
        viewStates_.curves.wallTime = on;
        redrawIfShown(Arrival::Overlays);
    });
    connect(band_, &QCheckBox::toggled, this, [this](bool on) {
        viewStates_.curves.band = on;
        redrawIfShown(Arrival::Overlays);
    });
    opts->addWidget(wallTime_);
    opts->addWidget(band_);
    opts->addStretch(1);
    rlay->addLayout(opts);
    auto* buttons = new QGridLayout();  // two rows: the dock stays narrow, the views keep their width
    int nButtons = 0;
    auto add = [&](const char* text, const char* tip, auto fn) {
        auto* b = new QPushButton(text, rw);
        b->setToolTip(tip);
        connect(b, &QPushButton::clicked, this, fn);
        buttons->addWidget(b, nButtons / 3, nButtons % 3);
        nButtons++;
    };
    add("Compare", "Config diff of two selected runs (one: against the form).", [this] { compareRuns(); });
    add("Load config", "Put the selected run's config in the form.", [this] {
        auto items = runs_->selectedItems();
        if (items.isEmpty()) return message("select a run first");
        auto cfg = rl::config_from_json(items[0]->data(0, Qt::UserRole + 1).toString().toStdString());
        if (cfg) config_->setConfig(*cfg);
        else message(QString::fromStdString(cfg.status.msg));
    });
    add("CSV...", "The selected run's curves as CSV.", [this] { exportSelectedRun(); });
    add("Table...", "The selected runs side by side (status, metrics, the config keys that differ) as CSV or Markdown.", [this] {
        const QList<qint64> ids = selectedRunIds();
        if (ids.isEmpty()) return message("select the runs to compare first");
        const QString f = QFileDialog::getSaveFileName(this, "Export comparison table", "runs.csv", "CSV (*.csv);;Markdown (*.md)");
        if (!f.isEmpty()) exportComparison(ids, f);
    });
    add("Delete", "Delete the selected run and its curves from the workspace.", [this] { deleteSelectedRun(); });
    rlay->addLayout(buttons);
    runsDock_->setWidget(rw);
    addDockWidget(Qt::RightDockWidgetArea, runsDock_);
    connect(runs_, &QTreeWidget::itemChanged, this, [this] { updateOverlays(); });
}

const rl::RunRecord* MainWindow::storedRun(qint64 id) const {
    for (const auto& r : run_.runs)
        if (r.id == id) return &r;
    return nullptr;
}

void MainWindow::syncRunItem(QTreeWidgetItem* it, const rl::RunRecord& r) {
    it->setText(ColRun, QString("#%1 %2%3").arg(r.id).arg(QString::fromStdString(r.name)).arg(r.id == runId_ ? " (current)" : ""));
    it->setText(ColStatus, rl::run_status_name(r.status));
    it->setToolTip(ColStatus, r.status_message.empty() ? QString(rl::run_status_name(r.status)) + (r.ended.empty() ? "" : " at " + QString::fromStdString(r.ended))
                                                       : QString::fromStdString(r.status_message));
    static const QMap<rl::RunStatus, QColor> colours = {{rl::RunStatus::running, QColor(40, 110, 200)},
                                                        {rl::RunStatus::finished, QColor(40, 140, 60)},
                                                        {rl::RunStatus::interrupted, QColor(190, 130, 20)},
                                                        {rl::RunStatus::failed, QColor(190, 50, 40)}};
    it->setForeground(ColStatus, colours.value(r.status));
    it->setText(ColSteps, QString::number(r.steps));
    it->setText(ColLoss, r.steps > 0 ? QString::number(r.final_loss, 'f', 3) : "-");
    it->setText(ColVal, r.val_loss < 0 ? "-" : QString::number(r.val_loss, 'f', 3));
    it->setText(ColStarted, QString::fromStdString(r.created).replace('T', ' ').left(16));
    it->setText(ColCorpus, QString::fromStdString(r.corpus));
    it->setText(ColSweep, QString::fromStdString(r.sweep));
    QStringList tags;
    for (const auto& t : r.tags) tags << QString::fromStdString(t);
    it->setText(ColTags, tags.join(", "));
    it->setToolTip(ColRun, r.checkpoint.empty() ? "no checkpoint saved" : "checkpoint: " + QString::fromStdString(r.checkpoint));
    unsigned col = 0;
    if (parseColour(r.colour, col)) {  // the run's own colour, also its overlay's
        QPixmap swatch(10, 10);
        swatch.fill(QColor(QString::fromStdString(r.colour)));
        it->setIcon(ColRun, QIcon(swatch));
    } else {
        it->setIcon(ColRun, QIcon());
    }
    it->setData(0, Qt::UserRole, (qlonglong)r.id);
    it->setData(0, Qt::UserRole + 1, QString::fromStdString(r.config_json));
    it->setFlags(it->flags() | Qt::ItemIsUserCheckable);
}

// Re-lists the store and updates the dock in place (selection, ticks and scrolling stay), and the
// tuning view's copy; nothing is touched when no shown field changed (the 3-second refresh).
void MainWindow::refreshRuns() {
    if (!runs_ || !store_) return;
    auto list = rl::run_store_list(*store_);
    if (!list) return message(QString::fromStdString(list.status.msg));
    const bool same = list->size() == run_.runs.size() && run_.currentRunId == runId_ &&
                      std::equal(list->begin(), list->end(), run_.runs.begin(), sameShown) && runs_->topLevelItemCount() == (int)list->size();
    if (same) return;
    QSignalBlocker block(runs_);
    QHash<qint64, QTreeWidgetItem*> items;
    for (int i = 0; i < runs_->topLevelItemCount(); i++) items[runs_->topLevelItem(i)->data(0, Qt::UserRole).toLongLong()] = runs_->topLevelItem(i);
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
            runs_->insertTopLevelItem(i, it);
        } else if (runs_->indexOfTopLevelItem(it) != i) {
            const bool sel = it->isSelected();
            runs_->takeTopLevelItem(runs_->indexOfTopLevelItem(it));
            runs_->insertTopLevelItem(i, it);
            it->setSelected(sel);
        }
        syncRunItem(it, r);
    }
    run_.runs = std::move(*list);
    run_.currentRunId = runId_;
    applyRunsFilter();
    redrawIfShown(Arrival::Runs);
}

void MainWindow::applyRunsFilter() {
    const QString f = runsFilter_ ? runsFilter_->text().trimmed() : QString();
    for (int i = 0; i < runs_->topLevelItemCount(); i++) {
        QTreeWidgetItem* it = runs_->topLevelItem(i);
        const rl::RunRecord* r = storedRun(it->data(0, Qt::UserRole).toLongLong());
        bool show = f.isEmpty();
        if (!show && r) {
            QStringList hay = {QString::fromStdString(r->name), QString::fromStdString(r->sweep), rl::run_status_name(r->status)};
            for (const auto& t : r->tags) hay << QString::fromStdString(t);
            for (const QString& h : hay) show = show || h.contains(f, Qt::CaseInsensitive);
        }
        it->setHidden(!show);
    }
}

void MainWindow::setRunsFilter(const QString& text) { runsFilter_->setText(text); }

void MainWindow::setCurveOptions(bool wallTime, bool band) {
    wallTime_->setChecked(wallTime);  // toggled -> the curves state and a redraw
    band_->setChecked(band);
}

// A lesson's runs before its last (the last is replayed by Show) go to the run store, tagged with the
// lesson, so that the window can draw them next to the replay and the user can find them later.
void MainWindow::storeLessonRuns() {
    lessonRunIds_.clear();
    if (!store_) return;
    const auto& results = lessons_->lastResults();
    const std::string tag = "lesson:" + lessons_->lastName().toStdString();
    for (size_t i = 0; i + 1 < results.size(); i++) {
        const rl::LessonResult& r = results[i];
        auto id = rl::run_store_begin(*store_, r.spec.label, rl::config_to_json(r.cfg), rl::RunStart{"", {tag}});
        std::vector<rl::CurvePoint> curve;
        for (const auto& st : r.curve) curve.push_back(rl::curve_point(st));
        rl::Status s = id ? rl::run_store_append(*store_, *id, curve) : id.status;
        if (s) s = rl::run_store_finish(*store_, *id, r.val_loss);
        if (!s) return message(QString::fromStdString(s.msg));
        lessonRunIds_ << *id;
    }
    refreshRuns();
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
        const qint64 id = it->data(0, Qt::UserRole).toLongLong();
        auto c = rl::run_store_curve(*store_, id);
        if (!c) {
            message(QString::fromStdString(c.status.msg));
            continue;
        }
        unsigned col = overlayColour(colour++);  // ImU32 keeps red in the low byte
        if (const rl::RunRecord* r = storedRun(id)) parseColour(r->colour, col);  // the run's own colour wins
        it->setForeground(0, QColor(col & 0xff, (col >> 8) & 0xff, (col >> 16) & 0xff));
        std::string name = it->text(0).toStdString();
        if (const auto cut = name.find(" (current)"); cut != std::string::npos) name.erase(cut);
        run_.overlays.push_back({id, name, col, std::move(*c)});
    }
    redrawIfShown(Arrival::Overlays);
}

void MainWindow::setOverlayTicked(qint64 id, bool on) {
    for (int i = 0; i < runs_->topLevelItemCount(); i++)
        if (QTreeWidgetItem* it = runs_->topLevelItem(i); it->data(0, Qt::UserRole).toLongLong() == id)
            it->setCheckState(0, on ? Qt::Checked : Qt::Unchecked);  // itemChanged -> updateOverlays
}

QList<qint64> MainWindow::selectedRunIds() const {
    QList<qint64> ids;
    for (int i = 0; i < runs_->topLevelItemCount(); i++)  // in the dock's order, not the click order
        if (runs_->topLevelItem(i)->isSelected()) ids << runs_->topLevelItem(i)->data(0, Qt::UserRole).toLongLong();
    return ids;
}

bool MainWindow::renameRun(qint64 id, const QString& name) {
    if (!store_) return false;
    if (rl::Status s = rl::run_store_rename(*store_, id, name.toStdString()); !s) {
        message(QString::fromStdString(s.msg));
        return false;
    }
    if (id == runId_) run_.runName = name.toStdString();
    refreshRuns();
    updateOverlays();  // a ticked run's legend follows
    return true;
}

bool MainWindow::setRunTags(qint64 id, const QString& commaSeparated) {
    if (!store_) return false;
    std::vector<std::string> tags;
    for (const QString& t : commaSeparated.split(',', Qt::SkipEmptyParts))
        if (!t.trimmed().isEmpty()) tags.push_back(t.trimmed().toStdString());
    if (rl::Status s = rl::run_store_set_tags(*store_, id, tags); !s) {
        message(QString::fromStdString(s.msg));
        return false;
    }
    refreshRuns();
    return true;
}

bool MainWindow::setRunColour(qint64 id, const QColor& colour) {
    if (!store_) return false;
    const std::string hex = colour.isValid() ? colour.name(QColor::HexRgb).toStdString() : std::string();
    if (rl::Status s = rl::run_store_set_colour(*store_, id, hex); !s) {
        message(QString::fromStdString(s.msg));
        return false;
    }
    refreshRuns();
    updateOverlays();
    return true;
}

QString MainWindow::comparisonTable(const QList<qint64>& ids, bool markdown) const {
    std::vector<rl::RunRecord> runs;
    for (qint64 id : ids)
        if (const rl::RunRecord* r = storedRun(id)) runs.push_back(*r);
    return QString::fromStdString(markdown ? comparisonMarkdown(runs) : comparisonCsv(runs));
}

bool MainWindow::exportComparison(const QList<qint64>& ids, const QString& path) {
    const bool md = path.endsWith(".md", Qt::CaseInsensitive) || path.endsWith(".markdown", Qt::CaseInsensitive);
    const QString err = writeWhole(path, comparisonTable(ids, md).toStdString());
    message(err.isEmpty() ? QString("wrote the comparison of %1 runs to %2").arg(ids.size()).arg(path) : err);
    return err.isEmpty();
}

void MainWindow::runsContextMenu(const QPoint& at) {
    QTreeWidgetItem* it = runs_->itemAt(at);
    if (!it) return;
    if (!it->isSelected()) {
        runs_->clearSelection();
        it->setSelected(true);
    }
    runs_->setCurrentItem(it);
    const qint64 id = it->data(0, Qt::UserRole).toLongLong();
    const rl::RunRecord* r = storedRun(id);
    if (!r) return;
    QMenu menu(this);
    menu.addAction("Rename...", this, [this, it] { emit runs_->itemDoubleClicked(it, ColRun); });
    menu.addAction("Tags...", this, [this, it] { emit runs_->itemDoubleClicked(it, ColTags); });
    menu.addAction("Colour...", this, [this, id, hex = r->colour] {
        const QColor c = QColorDialog::getColor(hex.empty() ? QColor(255, 110, 255) : QColor(QString::fromStdString(hex)), this, "Run colour");
        if (c.isValid()) setRunColour(id, c);
    });
    if (!r->colour.empty()) menu.addAction("Palette colour", this, [this, id] { setRunColour(id, QColor()); });
    menu.addSeparator();
    QAction* cont = menu.addAction("Continue from checkpoint...", this, [this, id] {
        bool ok = false;
        const int n = QInputDialog::getInt(this, "Continue from checkpoint", "More steps:", 200, 1, 1000000, 1, &ok);
        if (ok) continueFromCheckpoint(id, n);
    });
    cont->setEnabled(!r->checkpoint.empty());
    if (r->checkpoint.empty()) cont->setToolTip("this run has no checkpoint (File > Save checkpoint writes one)");
    menu.addSeparator();
    menu.addAction("Compare", this, [this] { compareRuns(); });
    menu.addAction("Export comparison table...", this, [this] {
        const QString f = QFileDialog::getSaveFileName(this, "Export comparison table", "runs.csv", "CSV (*.csv);;Markdown (*.md)");
        if (!f.isEmpty()) exportComparison(selectedRunIds(), f);
    });
    menu.addAction("Export curves as CSV...", this, [this] { exportSelectedRun(); });
    menu.addSeparator();
    menu.addAction("Delete", this, [this] { deleteSelectedRun(); });
    menu.exec(runs_->viewport()->mapToGlobal(at));
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
    if (sweep_) stopSweep();
    replaceCurrentRun();
    session_.setMeasureCost(true);
    session_.launch(std::move(*st), true);
    clearViews(session_.config().name + " (checkpoint)");
    config_->setConfig(session_.config());
    storedPoints_ = 0;
    runId_ = 0;
    if (store_) {
        auto id = rl::run_store_begin(*store_, run_.runName, rl::config_to_json(session_.config()));
        rl::Status s = id ? rl::run_store_set_checkpoint(*store_, *id, path.toStdString()) : id.status;
        if (id) runId_ = *id, runStatus_ = rl::RunStatus::running;
        if (!s) message(QString::fromStdString(s.msg));
    }
    refreshRuns();
    updateOverlays();
    message("opened " + path + ": paused; Step or Pause continues training (fresh optimizer state)");
    return true;
}

void MainWindow::saveCheckpoint(const QString& path) {
    if (!session_.active()) return message("nothing to save yet: train or open a checkpoint first");
    if (runId_) checkpointRuns_[path] = runId_;
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
    session_.requestCheckpoint(exportCheckpoint_.toStdString(), false);  // the weights only: no companion state
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
    r.sample.min_new = std::min(g.minNew, g.maxNew);
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
    file->addAction("Export view as PNG (2x)...", this, [this] {
        const QString f = QFileDialog::getSaveFileName(this, "Export view as PNG (2x)", "routelab-view@2x.png", "PNG (*.png)");
        QSize size;
        if (!f.isEmpty() && exportView2x(f, &size)) message(QString("wrote %1 (%2 x %3 px)").arg(f).arg(size.width()).arg(size.height()));
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
        const QString d = exportFolderDialog("Export as Hugging Face config: the folder for config.json");
        if (!d.isEmpty()) exportRouting(d, "hf");
    });
    file->addAction("Export as Hugging Face config + weights...", this, [this] {
        const QString d = exportFolderDialog("Export as Hugging Face config + weights: the folder for config.json and model.safetensors");
        if (!d.isEmpty()) exportRouting(d, "hf-weights");
    });
    file->addSeparator();
    file->addAction("Quit", QKeySequence::Quit, this, [this] { close(); });
    QMenu* run = menuBar()->addMenu("&Run");
    run->addActions({trainAction_, pauseAction_, stepAction_, retrainAction_, continueAction_});
    run->addSeparator();
    run->addActions({sweepAction_, stopSweepAction_});
    QMenu* view = menuBar()->addMenu("&View");
    view->addAction(config_->toggleViewAction());
    view->addAction(probeDock_->toggleViewAction());
    view->addAction(runsDock_->toggleViewAction());
    view->addAction(lessons_->toggleViewAction());
    QMenu* theme = view->addMenu("Theme");
    auto* themes = new QActionGroup(this);
    darkAction_ = theme->addAction("Dark", this, [this] { setTheme("dark"); });
    lightAction_ = theme->addAction("Light", this, [this] { setTheme("light"); });
    for (QAction* a : {darkAction_, lightAction_}) a->setCheckable(true), themes->addAction(a);
    darkAction_->setChecked(true);
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
            "Curves: loss and its parts; load imbalance (CV) and dropped tokens on their own axis; the router losses in "
            "force (weight above 0) and router entropy; per-head or per-expert load; EMA smoothing, log-y, values on "
            "hover; runs ticked in the Runs dock are overlaid.\n\n"
            "Speedup: when a routed run finishes, the same weights run dense and routed, forward, KV-cache decode and "
            "a training step (dense-masked vs skipping the switched-off heads): the notes' naive estimate, the FLOP "
            "model and the measured speedup per component, and why they differ. With MoH or head pruning, next to it "
            "the routed model against the plain model of the same shape (every head, no router). A measurement whose "
            "rounds disagree, or that beats its own FLOP model, is flagged: Re-measure on a quiet machine.\n\n"
            "Generate: the model continues a prompt; each token is tinted by its top expert or by its routed-head gate mass.\n\n"
            "Tuning: every stored run ranked by validation loss, with the config keys that differ among them and their "
            "final balance; a parallel-coordinates plot of chosen keys against validation loss (the best run starred); "
            "filter by sweep or tag, point at a line or a row to highlight that run, click to overlay its curves.");
    });
    help->addAction("About RouteLab", this, [this] {
        QMessageBox::about(this, "RouteLab", "RouteLab trains a real transformer live and shows its Mixture-of-Heads and "
                                             "Mixture-of-Experts routing as it learns.\nWorkspace: " + workspace_);
    });
}

// A folder to export into, existing or new: a save dialog whose name is the folder's (created if
// missing), since Qt's folder picker accepts only folders that already exist.
QString MainWindow::exportFolderDialog(const QString& caption) {
    QFileDialog dlg(this, caption, QDir(workspace_).filePath("export-" + QString::fromStdString(run_.runName)));
    dlg.setAcceptMode(QFileDialog::AcceptSave);
    dlg.setFileMode(QFileDialog::AnyFile);
    dlg.setLabelText(QFileDialog::Accept, "Export here");
    dlg.setLabelText(QFileDialog::FileName, "Folder:");
    dlg.setOption(QFileDialog::DontConfirmOverwrite);
    if (dlg.exec() != QDialog::Accepted || dlg.selectedFiles().isEmpty()) return {};
    const QString d = dlg.selectedFiles().first();
    if (!QDir().mkpath(d)) {
        message("cannot create the folder " + d + ": choose another place");
        return {};
    }
    return d;
}

bool MainWindow::startRun(const rl::Config& cfg) {
    if (sweep_) stopSweep();  // the user's run takes over
    rl::Status st = beginRun(cfg, {});
    if (!st) message(QString::fromStdString(st.msg));  // a bad config or corpus: say so; the current run (if any) goes on
    return st.is_ok();
}

rl::Status MainWindow::beginRun(const rl::Config& cfg, const rl::RunStart& start) {
    if (preparing_) return rl::Status::error("a run is being prepared (its text tokenized): wait for it, then try again");
    runClock_.start();  // Train -> first numbers on screen, tokenizing and allocating included
    spotlight_.clear(), spotlightCaption_.clear();  // a lesson's frame belongs to the lesson's run
    // Up front, before the corpus is read: the run with the window's speedup measurement at its end
    // must fit (trainer_create checks again with the real vocabulary, the training alone).
    if (rl::Status v = rl::config_validate(cfg); !v) return v;
    if (rl::Status m = rl::memory_check_config(cfg, !sweep_); !m) return m;
    auto st = prepareRun(cfg);
    if (!st) return st.status;
    replaceCurrentRun();
    // What train.device = auto chose and why ("no NVIDIA driver ...; training on the CPU"): said on the
    // first run of the window only, then the status line just names the device.
    const QString device = QString::fromUtf8((*st)->model.ops->device);
    QString deviceNote = deviceNoteShown_ ? QString() : QString::fromStdString((*st)->device_note);
    if (!deviceNote.isEmpty()) deviceNoteShown_ = true;
    session_.setMeasureCost(!sweep_);  // a sweep's points skip the speedup measurement: the table ranks losses
    session_.launch(std::move(*st));
    clearViews(cfg.name);
    session_.setProbeText(probeEdit_->text().toStdString());
    storedPoints_ = 0;
    runId_ = 0;
    if (store_) {
        auto id = rl::run_store_begin(*store_, cfg.name, rl::config_to_json(session_.config()), start);
        if (id) runId_ = *id, runStatus_ = rl::RunStatus::running;
        else message(QString::fromStdString(id.status.msg));
    }
    refreshRuns();
    updateOverlays();
    message(QString("training %1 on the %2").arg(QString::fromStdString(cfg.name), device == "cpu" ? "CPU" : device) +
            (deviceNote.isEmpty() ? QString() : " (" + deviceNote + ")"));
    return rl::Status::ok();
}

// Tokenizing a user's text takes seconds (SentencePiece on megabytes; architecture §15), so a file
// corpus is prepared on a thread of its own behind a progress dialog: the window keeps painting and
// the current run keeps training. The embedded corpus takes milliseconds and is prepared here.
rl::Result<std::unique_ptr<rl::TrainState>> MainWindow::prepareRun(const rl::Config& cfg) {
    prepareStages_.clear();
    if (cfg.data.corpus == "embedded") return Session::prepare(cfg);
    QProgressDialog dialog("Preparing " + QString::fromStdString(cfg.data.corpus) + "...", QString(), 0, 0, this);
    dialog.setWindowTitle("Preparing the run");
    dialog.setWindowModality(Qt::WindowModal);  // no second Train while this one tokenizes
    dialog.setMinimumDuration(400);             // a small file is done before it would show
    dialog.setMinimumWidth(520);
    QEventLoop loop;
    std::optional<rl::Result<std::unique_ptr<rl::TrainState>>> result;
    preparing_ = true;
    std::thread worker([&] {
        result.emplace(Session::prepare(cfg, [this, &dialog](const std::string& stage, double fraction) {
            // Queued to the dialog: dropped if it is gone (it outlives the worker, but be safe).
            QMetaObject::invokeMethod(&dialog, [this, &dialog, s = QString::fromStdString(stage), fraction] {
                if (prepareStages_.isEmpty() || prepareStages_.back() != s) prepareStages_ << s;
                dialog.setLabelText(s + (fraction >= 0 ? QString(" (%1%)").arg((int)(100 * fraction)) : QString("...")));
                if (fraction < 0) dialog.setRange(0, 0);  // busy: SentencePiece does not say how far it is
                else dialog.setRange(0, 100), dialog.setValue((int)(100 * fraction));
            }, Qt::QueuedConnection);
        }));
        QMetaObject::invokeMethod(&loop, "quit", Qt::QueuedConnection);
    });
    loop.exec();
    worker.join();
    QCoreApplication::sendPostedEvents(&dialog);  // the last stages reach prepareStages_
    preparing_ = false;
    return std::move(*result);
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

void MainWindow::applyTheme(bool light) {
    imgui_->setLightTheme(light);
    if (lightAction_) (light ? lightAction_ : darkAction_)->setChecked(true);
}

void MainWindow::setTheme(const QString& name) {
    const bool light = name == "light";
    applyTheme(light);
    QSettings("RouteLab", "RouteLab").setValue("theme", light ? "light" : "dark");
}

QString MainWindow::theme() const { return imgui_->lightTheme() ? "light" : "dark"; }

bool MainWindow::exportView2x(const QString& path, QSize* size) {
    const QImage img = imgui_->renderImage(2);
    if (img.isNull()) {
        message("could not render the view at 2x (no OpenGL context yet)");
        return false;
    }
    if (!img.save(path, "PNG")) {
        message("could not write " + path);
        return false;
    }
    if (size) *size = img.size();
    return true;
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
        run_.measuring = false;
        arrived |= Arrival::Cost;
    }
    // The live label once a second: with a QOpenGLWidget in the window every widget repaint recomposes
    // the whole window in software GL; at 4 Hz the label alone cost training 8-10% of its tok/s here.
    if ((arrived & Arrival::Stats) && (!labelClock_.isValid() || labelClock_.elapsed() >= 1000)) updateLiveLabel();
    redrawIfShown(arrived);
}

// ------------------------------------------------------------------------------------ continue
void MainWindow::continueDialog() {
    if (!session_.active() || runStatus_ != rl::RunStatus::finished || session_.diverged())
        return message("Continue needs a finished run in the window; a stored run continues from its checkpoint "
                       "(Runs dock: right-click > Continue from checkpoint)");
    bool ok = false;
    const int n = QInputDialog::getInt(this, "Continue", "More steps:", std::max(1, session_.config().train.steps / 2), 1, 1000000, 1, &ok);
    if (ok) continueRun(n);
}

bool MainWindow::continueRun(int n) {
    if (sweep_) {
        message("a sweep is running; Continue after it (or Run > Stop sweep)");
        return false;
    }
    if (!session_.active() || runStatus_ != rl::RunStatus::finished || session_.diverged()) {
        message("Continue needs a finished run in the window; a stored run continues from its checkpoint");
        return false;
    }
    const int from = lastStep();
    if (!session_.extend(n)) {
        message("the run cannot be continued (it did not finish)");
        return false;
    }
    if (store_ && runId_) {
        if (rl::Status s = rl::run_store_reopen(*store_, runId_); !s) message(QString::fromStdString(s.msg));
        else runStatus_ = rl::RunStatus::running;
    }
    refreshRuns();
    message(QString("continuing run #%1 from step %2 for %3 more steps (same weights and optimizer)").arg(runId_).arg(from).arg(n));
    return true;
}

bool MainWindow::continueFromCheckpoint(qint64 id, int n) {
    if (!store_) return false;
    auto rec = rl::run_store_get(*store_, id);
    if (!rec) {
        message(QString::fromStdString(rec.status.msg));
        return false;
    }
    if (id == runId_ && runStatus_ == rl::RunStatus::running) {
        message("this run is training now; Continue extends it once it finished");
        return false;
    }
    // The newest checkpoint still on disk, with the step it was written at.
    int step = -1;
    std::string path;
    if (auto cks = rl::run_store_checkpoints(*store_, id); cks)
        for (const auto& [st, p] : *cks)
            if (QFileInfo::exists(QString::fromStdString(p))) step = st, path = p;
    if (path.empty()) {
        message(QString("run #%1 has no checkpoint on disk to continue from (File > Save checkpoint writes one)").arg(id));
        return false;
    }
    auto resumed = rl::run_resume(path, step + n);
    if (!resumed) {
        message(QString::fromStdString(resumed.status.msg));
        return false;
    }
    auto curve = rl::run_store_curve(*store_, id);
    std::vector<rl::CurvePoint> history;
    if (curve)
        for (const auto& p : *curve)
            if (p.step <= step) history.push_back(p);
    if (!resumed->exact && !history.empty() && history.back().step == step)
        resumed->state->wall_s = history.back().wall_s;  // wall time keeps rising (x by wall time)
    // The same row when nothing was stored past the checkpoint; else the row's later steps are another
    // history, and the continuation is a new row that starts with the steps up to the checkpoint.
    const bool sameRow = rec->steps == step;
    if (sweep_) stopSweep();
    replaceCurrentRun();
    session_.setMeasureCost(true);
    const std::string name = sameRow ? rec->name : rec->name + " (from #" + std::to_string(id) + " at step " + std::to_string(step) + ")";
    session_.launch(std::move(resumed->state));
    clearViews(name);
    session_.setProbeText(probeEdit_->text().toStdString());
    config_->setConfig(session_.config());
    run_.curve = history;
    runId_ = 0;
    storedPoints_ = sameRow ? history.size() : 0;  // a new row gets the history at the next poll
    if (sameRow) {
        if (rl::Status s = rl::run_store_reopen(*store_, id); s) runId_ = id, runStatus_ = rl::RunStatus::running;
        else message(QString::fromStdString(s.msg));
    } else {
        auto nid = rl::run_store_begin(*store_, name, rl::config_to_json(session_.config()), rl::RunStart{"", rec->tags});
        if (nid) runId_ = *nid, runStatus_ = rl::RunStatus::running;
        else message(QString::fromStdString(nid.status.msg));
    }
    poll();
    refreshRuns();
    updateOverlays();
    message(QString("continuing run #%1 from its checkpoint at step %2 for %3 more steps%4: %5")
                .arg(id)
                .arg(step)
                .arg(n)
                .arg(sameRow ? QString() : QString(" as run #%1").arg(runId_))
                .arg(resumed->exact ? "exact (optimizer moments, sampler and step restored from the companion file)"
                                    : "not exact, fresh optimizer: " + QString::fromStdString(resumed->note)));
    return true;
}

// -------------------------------------------------------------------------------------- sweeps
bool MainWindow::startSweepFile(const QString& path, const std::function<void(rl::Config&)>& adjustBase) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) {
        message("cannot read the sweep " + path + ": " + f.errorString());
        return false;
    }
    const QFileInfo info(path);
    return startSweep(QString::fromUtf8(f.readAll()), info.completeBaseName(), info.absolutePath(), adjustBase);
}

bool MainWindow::startSweep(const QString& json, const QString& defaultName, const QString& baseDir,
                            const std::function<void(rl::Config&)>& adjustBase) {
    auto sw = rl::sweep_parse(json.toStdString(), defaultName.toStdString());
    if (!sw) {
        message(QString::fromStdString(sw.status.msg));
        return false;
    }
    rl::Result<rl::Config> base = rl::Status::error("");
    if (!sw->config_path.empty()) {
        QString p = QString::fromStdString(sw->config_path);
        if (QFileInfo(p).isRelative() && !baseDir.isEmpty() && !QFileInfo::exists(p)) p = QDir(baseDir).filePath(p);
        base = rl::config_load(p.toStdString());
    } else {
        base = rl::preset_load(sw->preset);
        const QString mine = QDir(workspace_).filePath("presets/" + QString::fromStdString(sw->preset) + ".json");
        if (!base && QFileInfo::exists(mine)) base = rl::config_load(mine.toStdString());  // one of the user's presets
    }
    if (!base) {
        message("sweep " + QString::fromStdString(sw->name) + ": " + QString::fromStdString(base.status.msg));
        return false;
    }
    if (sw->points.empty()) {
        message("sweep " + QString::fromStdString(sw->name) + " has no points");
        return false;
    }
    if (sweep_) stopSweep();
    if (adjustBase) adjustBase(*base);
    SweepQueue q;
    q.name = QString::fromStdString(sw->name);
    q.base = *base;
    q.points = sw->points;
    sweep_ = std::move(q);
    stopSweepAction_->setEnabled(true);
    runNextSweepPoint();
    return true;
}

// Starts the next point that builds a run; points that do not are stored as failed on the way.
void MainWindow::runNextSweepPoint() {
    if (!sweep_) return;
    SweepQueue& q = *sweep_;
    const rl::RunStart start{q.name.toStdString(), {}};
    while (q.next < q.points.size()) {
        const size_t i = q.next++;
        const rl::SweepPoint& p = q.points[i];
        rl::Config cfg = q.base;
        rl::Status st = rl::Status::ok();
        for (const auto& set : p.sets)
            if (st = rl::config_apply_override(cfg, set); !st) break;
        cfg.name = pointName(q.name, p.label);
        updateSweepLabel(QString::fromStdString(p.label));
        if (st) st = beginRun(cfg, start);
        if (st) {
            q.pointRun = runId_;
            return;  // finished or failed from the session moves on
        }
        // Invalid: a row of its own, failed with the reason, so the sweep's table shows every point.
        q.failed++;
        message(QString("sweep %1: point %2/%3 failed: %4").arg(q.name).arg(i + 1).arg(q.points.size()).arg(QString::fromStdString(st.msg)));
        if (store_) {
            auto id = rl::run_store_begin(*store_, cfg.name, rl::config_to_json(cfg), start);
            rl::Status e = id ? rl::run_store_end(*store_, *id, rl::RunStatus::failed, st.msg) : id.status;
            if (!e) message(QString::fromStdString(e.msg));
        }
        refreshRuns();
    }
    // Every point ran.
    const QString name = q.name;
    const int done = q.finished, failed = q.failed, total = (int)q.points.size();
    sweep_.reset();
    stopSweepAction_->setEnabled(false);
    session_.setMeasureCost(true);
    updateSweepLabel({});
    refreshRuns();
    message(QString("sweep %1 done: %2 of %3 points finished, %4 failed; the tuning view ranks them").arg(name).arg(done).arg(total).arg(failed));
    emit sweepFinished(done, failed);
}

void MainWindow::stopSweep() {
    if (!sweep_) return;
    const QString name = sweep_->name;
    const size_t at = sweep_->next, total = sweep_->points.size();
    const bool pointTraining = sweep_->pointRun && sweep_->pointRun == runId_ && runStatus_ == rl::RunStatus::running;
    sweep_.reset();
    stopSweepAction_->setEnabled(false);
    session_.setMeasureCost(true);
    updateSweepLabel({});
    if (pointTraining) {  // its point ends here too
        session_.stop();
        poll();
        endCurrentRun(rl::RunStatus::interrupted, QString("the sweep was stopped at step %1").arg(lastStep()));
    }
    refreshRuns();
    message(QString("sweep %1 stopped at point %2/%3").arg(name).arg(at).arg(total));
}

void MainWindow::updateSweepLabel(const QString& point) {
    if (!sweepLabel_) {
        sweepLabel_ = new QLabel(this);
        sweepLabel_->setObjectName("sweepProgress");
        statusBar()->addPermanentWidget(sweepLabel_);
    }
    if (!sweep_) {
        sweepLabel_->clear();
        sweepLabel_->hide();
        return;
    }
    QString t = QString("sweep %1: point %2/%3  %4").arg(sweep_->name).arg(sweep_->next).arg(sweep_->points.size()).arg(point);
    if (sweep_->failed) t += QString("  (%1 failed)").arg(sweep_->failed);
    sweepLabel_->setText(t);
    sweepLabel_->show();
}

QString MainWindow::sweepFromForm(const QString& name, const QList<QPair<QString, QString>>& keyValues, QString* error) {
    using ojson = nlohmann::ordered_json;  // the grid keeps the order the keys were picked in
    auto fail = [&](const QString& m) {
        if (error) *error = m;
        return QString();
    };
    auto form = config_->config();
    if (!form) return fail("fix the form first: " + QString::fromStdString(form.status.msg));
    if (!QRegularExpression("^[A-Za-z0-9_.-]+$").match(name).hasMatch()) return fail("sweep names use letters, digits, '.', '-' and '_' only");
    std::vector<std::pair<std::string, nlohmann::json>> leaves;
    rl::json_leaves(nlohmann::json::parse(rl::config_to_json(*form)), leaves);
    ojson grid = ojson::object();
    for (const auto& [key, text] : keyValues) {
        const std::string k = key.toStdString();
        auto leaf = std::find_if(leaves.begin(), leaves.end(), [&](const auto& l) { return l.first == k; });
        if (leaf == leaves.end()) return fail("the form has no key " + key);
        ojson values = ojson::array();
        for (const QString& raw : text.split(',', Qt::SkipEmptyParts)) {
            const QString v = raw.trimmed();
            if (v.isEmpty()) continue;
            if (leaf->second.is_number()) {
                const ojson n = ojson::parse(v.toStdString(), nullptr, false);
                if (n.is_discarded() || !n.is_number()) return fail(key + ": '" + v + "' is not a number");
                values.push_back(n);
            } else if (leaf->second.is_boolean()) {
                if (v != "true" && v != "false") return fail(key + ": '" + v + "' is not true or false");
                values.push_back(v == "true");
            } else {
                values.push_back(v.toStdString());
            }
        }
        if (values.empty()) return fail(key + ": give at least one value");
        grid[k] = values;
    }
    if (grid.empty()) return fail("pick at least one key and give it values");
    const QString dir = QDir(workspace_).filePath("sweeps"), cfgFile = QDir(dir).filePath(name + ".config.json");
    if (!QDir().mkpath(dir)) return fail("cannot create the folder " + dir);
    if (QString e = writeWhole(cfgFile, rl::config_to_json(*form)); !e.isEmpty()) return fail(e);
    const ojson sweep = {{"name", name.toStdString()}, {"config", cfgFile.toStdString()}, {"grid", grid}};
    const QString text = QString::fromStdString(sweep.dump(2) + "\n");
    if (QString e = writeWhole(QDir(dir).filePath(name + ".json"), text.toStdString()); !e.isEmpty()) return fail(e);
    return text;
}

// Run > Sweep...: every numeric, boolean or choice key of the form with a cell for its values.
void MainWindow::sweepDialog() {
    auto form = config_->config();
    if (!form) return message("fix the form first: " + QString::fromStdString(form.status.msg));
    std::vector<std::pair<std::string, nlohmann::json>> leaves;
    rl::json_leaves(nlohmann::json::parse(rl::config_to_json(*form)), leaves);
    QDialog dlg(this);
    dlg.setWindowTitle("Sweep over the form's config");
    auto* l = new QVBoxLayout(&dlg);
    auto* intro = new QLabel("Give values (comma-separated) to the keys to sweep; every combination trains as its own run, one "
                             "after another, tagged with the sweep. The other keys keep the form's values.", &dlg);
    intro->setWordWrap(true);
    l->addWidget(intro);
    auto* nameRow = new QHBoxLayout();
    auto* name = new QLineEdit(QString::fromStdString(form->name) + "-sweep", &dlg);
    name->setObjectName("sweepName");
    nameRow->addWidget(new QLabel("name:", &dlg));
    nameRow->addWidget(name, 1);
    auto* find = new QLineEdit(&dlg);
    find->setPlaceholderText("find a key");
    nameRow->addWidget(find, 1);
    l->addLayout(nameRow);
    auto* table = new QTableWidget(0, 3, &dlg);
    table->setHorizontalHeaderLabels({"key", "form", "values to sweep"});
    for (const auto& [k, v] : leaves) {
        if (k == "name" || k == "description" || k == "data.corpus" || !(v.is_number() || v.is_boolean() || v.is_string())) continue;
        const int r = table->rowCount();
        table->insertRow(r);
        auto* key = new QTableWidgetItem(QString::fromStdString(k));
        key->setFlags(key->flags() & ~Qt::ItemIsEditable);
        auto* cur = new QTableWidgetItem(QString::fromStdString(v.is_string() ? v.get<std::string>() : v.dump()));
        cur->setFlags(cur->flags() & ~Qt::ItemIsEditable);
        table->setItem(r, 0, key);
        table->setItem(r, 1, cur);
        table->setItem(r, 2, new QTableWidgetItem());
    }
    table->resizeColumnsToContents();
    table->horizontalHeader()->setStretchLastSection(true);
    l->addWidget(table, 1);
    connect(find, &QLineEdit::textChanged, &dlg, [table](const QString& f) {
        for (int r = 0; r < table->rowCount(); r++) table->setRowHidden(r, !table->item(r, 0)->text().contains(f, Qt::CaseInsensitive));
    });
    auto* status = new QLabel(&dlg);
    status->setWordWrap(true);
    l->addWidget(status);
    auto* buttons = new QHBoxLayout();
    auto* run = new QPushButton("Run sweep", &dlg);
    auto* cancel = new QPushButton("Cancel", &dlg);
    buttons->addStretch(1);
    buttons->addWidget(run);
    buttons->addWidget(cancel);
    l->addLayout(buttons);
    auto picked = [table] {
        QList<QPair<QString, QString>> kv;
        for (int r = 0; r < table->rowCount(); r++)
            if (!table->item(r, 2)->text().trimmed().isEmpty()) kv << qMakePair(table->item(r, 0)->text(), table->item(r, 2)->text());
        return kv;
    };
    // The point count as the values are typed (the values' own checks run on Run sweep).
    connect(table, &QTableWidget::itemChanged, &dlg, [=] {
        long points = 1;
        QStringList keys;
        for (const auto& [k, v] : picked()) points *= std::max<qsizetype>(1, v.split(',', Qt::SkipEmptyParts).size()), keys << k.section('.', -1);
        status->setText(keys.isEmpty() ? "no key picked yet" : QString("%1 points over %2").arg(points).arg(keys.join(" x ")));
    });
    connect(cancel, &QPushButton::clicked, &dlg, &QDialog::reject);
    connect(run, &QPushButton::clicked, &dlg, [&] {
        QString err;
        const QString json = sweepFromForm(name->text().trimmed(), picked(), &err);
        if (json.isEmpty()) return status->setText("<span style='color:#c0392b'>" + err.toHtmlEscaped() + "</span>");
        if (startSweep(json, name->text().trimmed(), workspace_)) dlg.accept();
        else status->setText("<span style='color:#c0392b'>" + statusMessage().toHtmlEscaped() + "</span>");
    });
    dlg.resize(720, 560);
    dlg.exec();
}
