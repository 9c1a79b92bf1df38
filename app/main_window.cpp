#include "main_window.h"

#include <QCloseEvent>
#include <QFileDialog>
#include <QMenuBar>
#include <QMessageBox>
#include <QSettings>
#include <QStatusBar>
#include <QToolBar>
#include <QVBoxLayout>

#include "config/presets.h"
#include "imgui_widget.h"

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
    setWindowTitle("RouteLab");
    auto* tb = addToolBar("Run");
    tb->setObjectName("runToolbar");
    presets_ = new QComboBox(this);
    for (const auto& n : rl::preset_names()) presets_->addItem(QString::fromStdString(n));
    presets_->setCurrentText("default");
    tb->addWidget(presets_);
    trainAction_ = tb->addAction("Train", this, [this] { train(); });
    tb->addAction("Pause", this, [this] { session_.setPaused(!session_.paused()); });
    tb->addAction("Step", this, [this] {
        session_.setPaused(true);
        session_.stepOnce();
    });
    retrainAction_ = tb->addAction("Retrain", this, [this] { train(); });
    live_ = new QLabel("step -  loss -  tok/s -", this);
    tb->addWidget(live_);

    auto* central = new QWidget(this);
    auto* lay = new QVBoxLayout(central);
    lay->setContentsMargins(0, 0, 0, 0);
    tabs_ = new QTabBar(central);
    for (const char* v : {"heads", "experts", "curves", "speedup"}) tabs_->addTab(v);
    lay->addWidget(tabs_);
    imgui_ = new ImGuiWidget(central);
    lay->addWidget(imgui_, 1);
    setCentralWidget(central);
    imgui_->setDrawFunction([this] {
        const QString v = tabs_->tabText(tabs_->currentIndex());
        if (v == "heads") drawHeadsView(data_);
        else if (v == "experts") drawExpertsView(data_);
        else if (v == "speedup") drawSpeedupView(data_);
        else drawCurvesView(data_);
    });
    connect(tabs_, &QTabBar::currentChanged, this, [this] { imgui_->markDirty(); });
    connect(&session_, &Session::finished, this, [this](int step) {
        poll();
        emit runFinished(step);
    });
    connect(&session_, &Session::failed, this, [this](const QString& m) { statusBar()->showMessage(m); });
    // The GUI polls the channels 4 times a second and redraws only when something arrived: on two
    // cores with software GL every frame is taken from the trainer (input still redraws at up to 15 fps).
    poll_.setInterval(250);
    connect(&poll_, &QTimer::timeout, this, [this] { poll(); });
    poll_.start();

    config_ = new ConfigDock(this);
    addDockWidget(Qt::LeftDockWidgetArea, config_);
    config_->setLiveSink([this](const rl::LiveCommand& c) {
        if (session_.running()) session_.send(c);
    });
    connect(config_, &ConfigDock::validityChanged, this, [this](bool ok) {
        trainAction_->setEnabled(ok);
        retrainAction_->setEnabled(ok);
    });
    auto loadPreset = [this] {
        auto cfg = rl::preset_load(presets_->currentText().toStdString());
        if (cfg) config_->setConfig(*cfg);
    };
    connect(presets_, &QComboBox::currentTextChanged, this, loadPreset);
    connect(&session_, &Session::liveChangeRefused, this, [this](const QString& m) { statusBar()->showMessage(m); });
    loadPreset();
    buildMenus();
    resize(1400, 900);
    QSettings st("RouteLab", "RouteLab");
    restoreGeometry(st.value("geometry").toByteArray());
    restoreState(st.value("windowState").toByteArray());
}

void MainWindow::closeEvent(QCloseEvent* e) {
    QSettings st("RouteLab", "RouteLab");
    st.setValue("geometry", saveGeometry());
    st.setValue("windowState", saveState());
    session_.stop();
    QMainWindow::closeEvent(e);
}

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu("&File");
    file->addAction("Export view as PNG...", this, [this] {
        const QString f = QFileDialog::getSaveFileName(this, "Export PNG", "routelab.png", "PNG (*.png)");
        if (!f.isEmpty() && !grab().save(f)) statusBar()->showMessage("could not write " + f);
    });
    file->addAction("Quit", this, [this] { close(); });
    QMenu* run = menuBar()->addMenu("&Run");
    run->addAction(trainAction_);
    run->addAction("Pause / resume", this, [this] { session_.setPaused(!session_.paused()); });
    run->addAction("Step", this, [this] {
        session_.setPaused(true);
        session_.stepOnce();
    });
    run->addAction(retrainAction_);
    QMenu* view = menuBar()->addMenu("&View");
    view->addAction(config_->toggleViewAction());
    for (const char* v : {"heads", "experts", "curves", "speedup"}) view->addAction(v, this, [this, v] { showView(v); });
    QMenu* help = menuBar()->addMenu("&Help");
    help->addAction("What am I looking at?", this, [this] {
        QMessageBox::information(
            this, "RouteLab views",
            "Heads: for the probe text, each row is a token and each column a head; colour is the head's gate "
            "(dark = switched off for that token). S marks shared heads, always on. The slider replays earlier steps.\n\n"
            "Experts: each token of the probe text in the colour of the expert it was sent to first; bars show how "
            "many tokens each expert received this step (balanced = all bars equal).\n\n"
            "Curves: the training loss, its cross-entropy part, and the mean load imbalance (CV) of the routers.");
    });
    help->addAction("About RouteLab", this, [this] {
        QMessageBox::about(this, "RouteLab", "RouteLab trains a real transformer live and shows its Mixture-of-Heads and "
                                             "Mixture-of-Experts routing as it learns.");
    });
}

bool MainWindow::startRun(const rl::Config& cfg) {
    data_ = ViewData{};
    rl::Status s = session_.start(cfg);
    if (!s) {
        statusBar()->showMessage(QString::fromStdString(s.msg));
        return false;
    }
    statusBar()->showMessage(QString("training %1").arg(QString::fromStdString(cfg.name)));
    return true;
}

void MainWindow::train() {
    auto cfg = config_->config();  // the form, as edited
    if (!cfg) {
        statusBar()->showMessage(QString::fromStdString(cfg.status.msg));
        return;
    }
    startRun(*cfg);
}

void MainWindow::showView(const QString& name) {
    for (int i = 0; i < tabs_->count(); i++)
        if (tabs_->tabText(i) == name) tabs_->setCurrentIndex(i);
    imgui_->markDirty();
}

void MainWindow::poll() {
    bool changed = false;
    rl::StepStats st;
    while (session_.pollStats(st)) {
        data_.stats.push_back(st);
        emaTok_ = emaTok_ == 0 ? st.tok_per_s : 0.9f * emaTok_ + 0.1f * st.tok_per_s;
        changed = true;
    }
    if (session_.acquireProbe()) {
        data_.probe = session_.probe();
        data_.history.push_back(data_.probe);
        changed = true;
    }
    if (session_.acquireCost()) {
        data_.cost = session_.cost();
        data_.hasCost = true;
        changed = true;
    }
    if (changed && !data_.stats.empty()) {
        const auto& s = data_.stats.back();
        live_->setText(QString("step %1  loss %2  tok/s %3").arg(s.step).arg(s.loss, 0, 'f', 4).arg(emaTok_, 0, 'f', 0));
    }
    if (changed) imgui_->markDirty();
}
