// The window's actions (made once, shown in the toolbar and the menus), its toolbar and its menus.
#include <QAction>
#include <QActionGroup>
#include <QFileDialog>
#include <QLabel>
#include <QMenu>
#include <QMenuBar>
#include <QMessageBox>
#include <QToolBar>

#include "main_window.h"

namespace {
const char* k_helpViews =
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
    "filter by sweep or tag, point at a line or a row to highlight that run, click to overlay its curves.\n\n"
    "Cluster: what the run's measured expert loads would cost with expert parallelism: each GPU's share of the routed "
    "pairs (the busiest sets the pace), all-to-all bytes, drops at a capacity factor, expert memory and a time range "
    "balanced vs measured, per layer and over training; sliders for EP, GPUs a node and the capacity factor. A model "
    "with its assumptions listed under it, not a measurement.\n\n"
    "Experiments: on a model that holds still, routing changes (top-k, masks, capacity, biases) evaluated next to "
    "the unchanged model; the top-k sweep; bias calibration; specialisation on your domains.";
}  // namespace

void MainWindow::createActions() {
    auto make = [this](const char* text, const char* tip, auto slot) {
        auto* a = new QAction(text, this);
        if (*tip) a->setToolTip(tip);
        connect(a, &QAction::triggered, this, slot);
        return a;
    };
    act_.train = make("Train", "", [this] { train(); });
    act_.train->setShortcut(QKeySequence("F5"));
    act_.pause = make("Pause / resume", "", [this] { runs_->session().setPaused(!runs_->session().paused()); });
    act_.pause->setIconText("Pause");  // the toolbar's label
    act_.step = make("Step", "", [this] {
        runs_->session().setPaused(true);
        runs_->session().stepOnce();
    });
    act_.retrain = make("Retrain", "Start over from fresh weights with the form's config.", [this] { train(); });
    act_.continueRun = make("Continue N steps...", "After the run finished: train N more steps on the same weights and optimizer, in the same stored run.",
                            [this] { continueDialog(); });
    act_.continueRun->setIconText("Continue");
    act_.sweep = make("Sweep...", "Pick keys of the form and values for each; every combination trains as its own run.", [this] { sweepDialog(); });
    act_.stopSweep = make("Stop sweep", "", [this] { sweeps_->stop(); });
    act_.stopSweep->setEnabled(false);
    act_.dark = make("Dark", "", [this] { setTheme("dark"); });
    act_.light = make("Light", "", [this] { setTheme("light"); });
    auto* themes = new QActionGroup(this);
    for (QAction* a : {act_.dark, act_.light}) a->setCheckable(true), themes->addAction(a);
    act_.dark->setChecked(true);
}

void MainWindow::buildToolbar() {
    auto* tb = addToolBar("Run");
    tb->setObjectName("runToolbar");
    presets_ = new PresetPicker(runs_->workspace(), this);
    tb->addWidget(presets_);
    tb->addActions({act_.train, act_.pause, act_.step, act_.retrain, act_.continueRun});
    live_ = new QLabel("step -  loss -  tok/s -", this);
    tb->addWidget(live_);
}

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu("&File");
    file->addAction("Open corpus...", this, [this] { openCorpus(); });
    file->addAction("Open config...", this, [this] { openConfig(); });
    file->addAction("Save form as preset...", this, [this] { savePreset(); });
    file->addSeparator();
    file->addAction("Load checkpoint...", QKeySequence::Open, this, [this] {
        const QString f = QFileDialog::getOpenFileName(this, "Load checkpoint", workspace(), "Checkpoint (*.safetensors)");
        if (!f.isEmpty()) openCheckpoint(f);
    });
    file->addAction("Open model folder...", this, [this] {
        const QString d = QFileDialog::getExistingDirectory(this, "Open a Hugging Face model folder (config.json, *.safetensors, tokenizer.json)",
                                                            workspace());
        if (!d.isEmpty()) openModel(d);
    });
    file->addAction("Save checkpoint...", QKeySequence::Save, this, [this] {
        const QString f = QFileDialog::getSaveFileName(this, "Save checkpoint", QDir(workspace()).filePath("routelab.safetensors"),
                                                       "Checkpoint (*.safetensors)");
        if (!f.isEmpty()) runs_->saveCheckpoint(f);
    });
    file->addSeparator();
    exports_->addActions(file);
    file->addSeparator();
    file->addAction("Quit", QKeySequence::Quit, this, [this] { close(); });
    QMenu* run = menuBar()->addMenu("&Run");
    run->addActions({act_.train, act_.pause, act_.step, act_.retrain, act_.continueRun});
    run->addSeparator();
    run->addActions({act_.sweep, act_.stopSweep});
    QMenu* view = menuBar()->addMenu("&View");
    for (QDockWidget* d : {(QDockWidget*)config_, (QDockWidget*)probeDock_, (QDockWidget*)runsDock_, (QDockWidget*)lessons_})
        view->addAction(d->toggleViewAction());
    view->addMenu("Theme")->addActions({act_.dark, act_.light});
    view->addSeparator();
    for (size_t i = 0; i < viewTable().size(); i++) {
        const QString name = viewTable()[i].name;
        const QKeySequence key = i < 9 ? QKeySequence(QString("Ctrl+%1").arg(i + 1)) : i == 9 ? QKeySequence("Ctrl+0") : QKeySequence();
        view->addAction(name, key, this, [this, name] { showView(name); });
    }
    QMenu* help = menuBar()->addMenu("&Help");
    help->addAction("What am I looking at?", this, [this] { QMessageBox::information(this, "RouteLab views", k_helpViews); });
    help->addAction("About RouteLab", this, [this] {
        QMessageBox::about(this, "RouteLab", "RouteLab trains a real transformer live and shows its Mixture-of-Heads and "
                                             "Mixture-of-Experts routing as it learns.\nWorkspace: " + workspace());
    });
}
