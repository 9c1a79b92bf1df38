#include "main_window.h"

#include <QCloseEvent>
#include <QFileDialog>
#include <QInputDialog>
#include <QLabel>
#include <QMessageBox>
#include <QSettings>
#include <QStatusBar>
#include <QTabBar>
#include <QVBoxLayout>

#include "imgui_widget.h"
#include "prepare_dialog.h"
#include "sweep_dialog.h"
#include "widgets.h"

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
    runs_ = new RunController(workspace, this);
    sweeps_ = new SweepRunner(*runs_, this);
    createActions();
    buildToolbar();
    buildViewArea();
    exports_ = new Exports(*runs_, imgui_, this, &viewStates_.cluster);
    buildDocks();
    connectRooms();
    connectLessons();
    presets_->setCurrentText(k_firstRunPreset);  // its config into the form
    buildMenus();
    runsDock_->refresh();
    restoreLayout();
    applyTheme(QSettings("RouteLab", "RouteLab").value("theme").toString() == "light");  // what View > Theme chose last
    if (!runs_->storeProblem().isEmpty()) message(runs_->storeProblem());
}

// Closing the window (or destroying it without a close, as scripted runs and tests do) ends the run
// in the store: a run still training is interrupted at the step it reached.
MainWindow::~MainWindow() {
    sweeps_->abandon();
    runs_->shutdown();
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
        if (currentView().draw(runs_->data(), viewStates_, outbox_)) imgui_->requestAnotherFrame();  // an animation, at most 15 fps
        if (outbox_.remeasureRequested) outbox_.remeasureRequested = false, runs_->requestCostMeasure();
        // Leave ImGui's frame before touching the session or the docks: queued.
        if (outbox_.generateRequested) {
            outbox_.generateRequested = false;
            QMetaObject::invokeMethod(this, [this] { requestGenerate(); }, Qt::QueuedConnection);
        }
        if (outbox_.experiment) {
            QMetaObject::invokeMethod(this, [this, r = *outbox_.experiment] { runs_->requestExperiment(r); }, Qt::QueuedConnection);
            outbox_.experiment.reset();
        }
        if (outbox_.experimentCancel) outbox_.experimentCancel = false, runs_->cancelExperiment();
        if (!outbox_.saveBiases.empty()) {
            QMetaObject::invokeMethod(this, [this, p = QString::fromStdString(outbox_.saveBiases)] { runs_->saveBiases(p); },
                                      Qt::QueuedConnection);
            outbox_.saveBiases.clear();
        }
        if (const int64_t id = outbox_.toggleOverlay) {  // a run clicked in the tuning view
            outbox_.toggleOverlay = 0;
            QMetaObject::invokeMethod(this, [this, id] { runsDock_->toggleOverlay(id); }, Qt::QueuedConnection);
        }
    });
    connect(tabs_, &QTabBar::currentChanged, this, [this] { imgui_->markDirty(); });
}

// Left the config form, below the probe text, on the right the lessons and the stored runs.
void MainWindow::buildDocks() {
    config_ = new ConfigDock(this);
    addDockWidget(Qt::LeftDockWidgetArea, config_);
    probeDock_ = new ProbeDock(QString::fromStdString(runs_->session().probeText()), this);
    addDockWidget(Qt::BottomDockWidgetArea, probeDock_);
    lessons_ = new LessonsDock(this);
    addDockWidget(Qt::RightDockWidgetArea, lessons_);
    runsDock_ = new RunsDock(*runs_, [this] { return config_->config(); }, this);
    addDockWidget(Qt::RightDockWidgetArea, runsDock_);
}

void MainWindow::connectRooms() {
    runs_->setPreparer([this](const rl::Config& c) { return prepareWithDialog(this, c, prepareStages_); });
    runs_->setFolderOpener([this](const std::string& dir) { return openModelWithDialog(this, dir, prepareStages_); });
    connect(runs_, &RunController::message, this, &MainWindow::message);
    connect(runs_, &RunController::runReset, this, &MainWindow::resetViews);
    connect(runs_, &RunController::configAdopted, config_, &ConfigDock::setConfig);
    connect(runs_, &RunController::modelConfigAdopted, config_, &ConfigDock::setModelConfig);
    connect(runs_, &RunController::arrived, this, &MainWindow::redrawIfShown);
    // The live label once a second: with a QOpenGLWidget in the window every widget repaint recomposes
    // the whole window in software GL; at 4 Hz the label alone cost training 8-10% of its tok/s here.
    connect(runs_, &RunController::statsArrived, this, [this] {
        if (!labelClock_.isValid() || labelClock_.elapsed() >= 1000) updateLiveLabel();
    });
    connect(runs_, &RunController::runFinished, this, &MainWindow::updateLiveLabel);  // the last step, whatever the throttle skipped
    connect(sweeps_, &SweepRunner::message, this, &MainWindow::message);
    connect(sweeps_, &SweepRunner::progress, this, &MainWindow::showSweepProgress);
    connect(sweeps_, &SweepRunner::activeChanged, act_.stopSweep, &QAction::setEnabled);
    connect(exports_, &Exports::message, this, &MainWindow::message);
    connect(runsDock_, &RunsDock::message, this, &MainWindow::message);
    connect(runsDock_, &RunsDock::viewDataChanged, this, &MainWindow::redrawIfShown);
    connect(runsDock_, &RunsDock::loadConfig, config_, &ConfigDock::setConfig);
    connect(runsDock_, &RunsDock::curveOptionsChanged, this, [this](bool wallTime, bool band) {
        viewStates_.curves.wallTime = wallTime, viewStates_.curves.band = band;
        redrawIfShown(Arrival::Overlays);
    });
    connect(probeDock_, &ProbeDock::applied, this, &MainWindow::setProbeText);
    connect(presets_, &PresetPicker::configChosen, config_, &ConfigDock::setConfig);
    connect(presets_, &PresetPicker::message, this, &MainWindow::message);
    config_->setLiveSink([this](const rl::LiveCommand& c) {
        if (runs_->session().running()) runs_->session().send(c);
    });
    connect(config_, &ConfigDock::validityChanged, this, [this](bool ok) {
        act_.train->setEnabled(ok);
        act_.retrain->setEnabled(ok);
    });
    connect(config_, &ConfigDock::savePresetRequested, this, &MainWindow::savePreset);
    connect(config_, &ConfigDock::openConfigRequested, this, &MainWindow::openConfig);
}

// Lessons: a lesson trains on its own thread, so the window's run pauses; Show replays its last run here.
void MainWindow::connectLessons() {
    connect(lessons_, &LessonsDock::aboutToRun, this, [this] {
        if (runs_->session().running()) runs_->session().setPaused(true);
        message("lesson running (the window's training is paused: two cores)");
    });
    connect(lessons_, &LessonsDock::finished, this, [this](const QString& name, const QString& c) {
        message("lesson " + name + ": " + c.left(160) + (c.size() > 160 ? "..." : ""));
        if (!c.startsWith("failed")) storeLessonRuns();
    });
    connect(lessons_, &LessonsDock::showRequested, this, &MainWindow::showLessonRun);
}

void MainWindow::showLessonRun(const rl::Config& cfg, const QString& view, const QString& lookAt, const QString& spotlight) {
    if (config_->hasEditsBeyond(runs_->session().config())) {  // the lesson's config would replace them unasked
        const auto answer = QMessageBox::question(this, "Show the lesson's run",
                                                  "The Config form has edits that are neither trained nor saved; the lesson's run replaces the form.\n"
                                                  "Save them as a preset first?",
                                                  QMessageBox::Save | QMessageBox::Discard | QMessageBox::Cancel, QMessageBox::Save);
        if (answer == QMessageBox::Cancel) return;
        if (answer == QMessageBox::Save) savePreset();
    }
    config_->setConfig(cfg);
    presets_->showName(QString::fromStdString(cfg.name));  // without loading it over the form
    if (!startRun(cfg)) return;
    // Framed in the view until another run starts (resetViews clears it).
    spotlight_ = spotlight.toStdString(), spotlightCaption_ = lookAt.toStdString();
    const auto& results = lessons_->lastResults();
    if (const qint64 id = runs_->currentRunId(); id && !results.empty()) {  // named and tagged like the lesson's other runs
        runsDock_->renameRun(id, QString::fromStdString(results.back().spec.label));
        runsDock_->setRunTags(id, "lesson:" + lessons_->lastName());
    }
    for (qint64 id : lessonRunIds_) runsDock_->setOverlayTicked(id, true);  // the lesson's other runs, next to this one
    showView(view);
    message("lesson: the same run again, in the window; in the " + view + " view, look at " + lookAt);
}

// A lesson's runs before its last (the last is replayed by Show) go to the run store, tagged with the
// lesson, so that the window can draw them next to the replay and the user can find them later.
void MainWindow::storeLessonRuns() {
    lessonRunIds_.clear();
    rl::RunStore* store = runs_->store();
    if (!store) return;
    const auto& results = lessons_->lastResults();
    const rl::RunStart start{"", {"lesson:" + lessons_->lastName().toStdString()}};
    for (size_t i = 0; i + 1 < results.size(); i++) {
        const rl::LessonResult& r = results[i];
        std::vector<rl::CurvePoint> curve;
        std::vector<rl::StepLoads> loads;
        for (const auto& st : r.curve) curve.push_back(rl::curve_point(st)), loads.push_back(rl::step_loads(st));
        auto id = rl::recorder_record(*store, r.spec.label, rl::config_to_json(r.cfg), start, curve, rl::RunStatus::finished, "",
                                      r.val_loss, loads);
        if (!id) return message(QString::fromStdString(id.status.msg));
        lessonRunIds_ << *id;
    }
    runsDock_->refresh();
}

// The default size and dock widths, then whatever the user left last time.
void MainWindow::restoreLayout() {
    resize(1600, 1000);
    resizeDocks({config_, runsDock_}, {330, 340}, Qt::Horizontal);
    QSettings st("RouteLab", "RouteLab");
    restoreGeometry(st.value("geometry").toByteArray());
    restoreState(st.value("windowState").toByteArray());
}

void MainWindow::closeEvent(QCloseEvent* e) {
    if (runs_->preparing()) {  // the preparation's worker and dialog live on this window's stack: close once it is done
        e->ignore();
        message("a run is being prepared (its text tokenized): close again when it is done");
        return;
    }
    QSettings st("RouteLab", "RouteLab");
    st.setValue("geometry", saveGeometry());
    st.setValue("windowState", saveState());
    sweeps_->abandon();  // the points not started yet are not runs
    runs_->shutdown();
    QMainWindow::closeEvent(e);
}

bool MainWindow::startRun(const rl::Config& cfg) {
    const rl::Status st = runs_->startRun(cfg);
    if (!st) message(QString::fromStdString(st.msg));  // a bad config or corpus: say so; the current run (if any) goes on
    return st.is_ok();
}

bool MainWindow::openCheckpoint(const QString& path) {
    const rl::Status st = runs_->openCheckpoint(path);
    if (!st) message(QString::fromStdString(st.msg));
    return st.is_ok();
}

bool MainWindow::openModel(const QString& dir) {
    const rl::Status st = runs_->openModel(dir);
    if (!st) message(QString::fromStdString(st.msg));
    return st.is_ok();
}

void MainWindow::train() {
    auto cfg = config_->config();  // the form, as edited
    if (!cfg) return message(QString::fromStdString(cfg.status.msg));
    startRun(*cfg);
}

void MainWindow::continueDialog() {
    const Session& s = runs_->session();
    if (!s.active() || runs_->currentRunStatus() != rl::RunStatus::finished || s.diverged())
        return message("Continue needs a finished run in the window; a stored run continues from its checkpoint "
                       "(Runs dock: right-click > Continue from checkpoint)");
    bool ok = false;
    const int n = QInputDialog::getInt(this, "Continue", "More steps:", std::max(1, s.config().train.steps / 2), 1, 1000000, 1, &ok);
    if (!ok) return;
    if (rl::Status st = runs_->continueRun(n); !st) message(QString::fromStdString(st.msg));
}

void MainWindow::sweepDialog() {
    auto form = config_->config();
    if (!form) return message("fix the form first: " + QString::fromStdString(form.status.msg));
    SweepDialog dlg(*form, workspace(), *sweeps_, this);
    dlg.exec();
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
    return presets_->saveAs(name, *cfg);
}

void MainWindow::selectPreset(const QString& name) { presets_->setCurrentText(name); }

void MainWindow::openConfig() {
    const QString f = QFileDialog::getOpenFileName(this, "Open config", workspace(), "Config (*.json)");
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

void MainWindow::setProbeText(const QString& text) {
    probeDock_->setText(text);
    runs_->setProbeText(text);
}

void MainWindow::requestGenerate() {
    GenerateRequest r;
    const GenerateState& g = viewStates_.generate;
    r.prompt = g.prompt;
    r.sample.temperature = g.temperature;
    r.sample.top_k = g.topK;
    r.sample.top_p = g.topP;
    r.maxNew = g.maxNew;
    r.sample.min_new = std::min(g.minNew, g.maxNew);
    runs_->requestGenerate(r);
}

void MainWindow::runExperiment(rl::ExperimentKind k) {
    runs_->requestExperiment(experimentRequest(viewStates_.experiments, k));
    showView("experiments");
}

// A new run starts the views over; the user's own settings (the prompt and sampling settings, the
// curves' smoothing and scale, the tuning view's, which shows the workspace's runs, the experiments'
// texts, the cluster asked about) carry over.
void MainWindow::resetViews() {
    spotlight_.clear(), spotlightCaption_.clear();  // a lesson's frame belongs to the lesson's run
    ViewStates fresh;
    fresh.curves = viewStates_.curves;
    fresh.generate = viewStates_.generate;
    fresh.tuning = viewStates_.tuning;
    ExperimentsState& e = fresh.experiments;  // its texts and sizes; the routing keys start as the new model's
    const ExperimentsState& was = viewStates_.experiments;
    std::copy(std::begin(was.textFile), std::end(was.textFile), e.textFile);
    std::copy(std::begin(was.domains), std::end(was.domains), e.domains);
    std::copy(std::begin(was.biasFile), std::end(was.biasFile), e.biasFile);
    e.tokens = was.tokens, e.context = was.context, e.domainTokens = was.domainTokens, e.live = was.live;
    fresh.cluster.set = viewStates_.cluster.set;  // the cluster asked about; its report is the new run's
    viewStates_ = fresh;
    outbox_ = ViewOutbox{};
    imgui_->markDirty();  // whichever view is up, its data changed
}

void MainWindow::updateLiveLabel() {
    const auto& curve = runs_->data().curve;
    if (curve.empty()) return;
    labelClock_.start();
    const auto& s = curve.back();
    live_->setText(QString("step %1  loss %2  tok/s %3").arg(s.step).arg(s.loss, 0, 'f', 4).arg(runs_->tokPerSecond(), 0, 'f', 0));
}

void MainWindow::showSweepProgress(const QString& text) {
    if (!sweepLabel_) {
        sweepLabel_ = new QLabel(this);
        sweepLabel_->setObjectName("sweepProgress");
        statusBar()->addPermanentWidget(sweepLabel_);
    }
    sweepLabel_->setText(text);
    sweepLabel_->setVisible(!text.isEmpty());
}

const ViewEntry& MainWindow::currentView() const { return viewTable()[tabs_->currentIndex()]; }

void MainWindow::redrawIfShown(unsigned arrived) {
    if (currentView().redrawOn & arrived) imgui_->markDirty();
}

void MainWindow::showView(const QString& name) {
    if (const qsizetype i = viewNames().indexOf(name); i >= 0) tabs_->setCurrentIndex((int)i);
    imgui_->markDirty();
}

void MainWindow::applyTheme(bool light) {
    imgui_->setLightTheme(light);
    (light ? act_.light : act_.dark)->setChecked(true);
}

void MainWindow::setTheme(const QString& name) {
    const bool light = name == "light";
    applyTheme(light);
    QSettings("RouteLab", "RouteLab").setValue("theme", light ? "light" : "dark");
}

QString MainWindow::theme() const { return imgui_->lightTheme() ? "light" : "dark"; }

QString MainWindow::statusMessage() const { return statusBar()->currentMessage(); }

void MainWindow::message(const QString& m) { statusBar()->showMessage(m); }
