// The main window: menus, toolbar (preset picker, Train / Pause / Step / Retrain / Continue,
// live step / loss / tok/s), the ImGui views in the centre (heads, experts, routing, attention,
// curves, speedup, generate, tuning) and docks for the config form, the probe text and the stored
// runs. It keeps each run's status in the store (docs/architecture.md §13) and runs sweeps.
#pragma once
#include <QColor>
#include <QComboBox>
#include <QElapsedTimer>
#include <QLabel>
#include <QHash>
#include <QMainWindow>
#include <QTabBar>
#include <QTimer>
#include <functional>
#include <optional>

#include "config/sweep.h"
#include "config_dock.h"
#include "io/run_store.h"
#include "session.h"
#include "views.h"

class ImGuiWidget;
class QAction;
class QCheckBox;
class QLineEdit;
class QTreeWidget;
class QTreeWidgetItem;

class LessonsDock;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    // workspace: folder of the run store (runs.sqlite) and the user's presets; empty = the platform's app-data folder.
    explicit MainWindow(const QString& workspace = {}, QWidget* parent = nullptr);
    ~MainWindow() override;
    // Starts a run of the given config (also used by scripted runs); a run in progress is marked
    // interrupted ("replaced by a new run at step N"), a sweep in progress stops.
    bool startRun(const rl::Config& cfg);
    // Continue: the finished run trains n more steps in the same store row (run_store_reopen).
    bool continueRun(int n);
    // Continue after a restart: the stored run's latest checkpoint through run_resume (exact with
    // its companion file, else a fresh optimizer; the message says which), n more steps. The same
    // store row when the checkpoint is at the run's last stored step, else a new row that starts
    // with the stored curve up to the checkpoint.
    bool continueFromCheckpoint(qint64 runId, int n);
    // Sweeps (core/config/sweep.h): the points run one after another, each a run with RunStart{sweep};
    // a point whose config is invalid or whose run fails is stored as failed and the sweep goes on.
    // baseDir resolves a relative "config"; adjustBase edits the base config before each point's
    // overrides (scripted runs: --demo-steps, --corpus).
    bool startSweep(const QString& json, const QString& defaultName, const QString& baseDir = {},
                    const std::function<void(rl::Config&)>& adjustBase = {});
    bool startSweepFile(const QString& path, const std::function<void(rl::Config&)>& adjustBase = {});
    // Run > Stop sweep: the point in progress ends interrupted, the rest do not run.
    void stopSweep();
    bool sweepActive() const { return sweep_.has_value(); }
    // The Sweep dialog's product: writes the form's config to <workspace>/sweeps/<name>.config.json and
    // returns the sweep JSON over it (also saved, as <name>.json, for routelab-cli sweep); each pair is
    // a key of the form and its comma-separated values. Empty with *error set when a value is wrong.
    QString sweepFromForm(const QString& name, const QList<QPair<QString, QString>>& keyValues, QString* error);
    // Runs dock edits, stored at once (a CLI sees them too).
    bool renameRun(qint64 id, const QString& name);
    bool setRunTags(qint64 id, const QString& commaSeparated);
    bool setRunColour(qint64 id, const QColor& colour);  // an invalid colour = the palette's
    void setRunsFilter(const QString& text);               // matches name, tag, sweep, status
    void setOverlayTicked(qint64 id, bool on);
    // The comparison table of these runs: id, name, status, steps, losses, final metrics and the config
    // keys that differ among them (views/run_table.h). A path ending in .md is Markdown, else CSV.
    QString comparisonTable(const QList<qint64>& ids, bool markdown) const;
    bool exportComparison(const QList<qint64>& ids, const QString& path);
    QList<qint64> selectedRunIds() const;
    // The Runs dock's toggles: curves over seconds of training, the raw min/max band around smoothed losses.
    void setCurveOptions(bool wallTime, bool band);
    void refreshRuns();  // re-lists the store (also every 3 s: a CLI may write the same workspace)
    qint64 currentRunId() const { return runId_; }
    bool openCheckpoint(const QString& path);
    void saveCheckpoint(const QString& path);  // written by the trainer thread; checkpointSaved follows
    bool exportCsv(const QString& path);
    // File > Export routing (docs/export.md): the current run's routing as Megatron-Core arguments
    // (format "megatron", a file) or a Hugging Face folder ("hf": config.json; "hf-weights": also
    // model.safetensors where it maps exactly). The weights and the resolved config come from a
    // checkpoint the trainer writes first; exportFinished follows with the message shown.
    void exportRouting(const QString& path, const QString& format);
    void setProbeText(const QString& text);
    void requestGenerate();                    // the generate view's prompt and settings
    void showView(const QString& name);        // a name in viewTable()
    // The views' theme, "dark" or "light" (View > Theme), kept in QSettings ("theme") for the next launch.
    void setTheme(const QString& name);
    QString theme() const;
    // File > Export view as PNG (2x): the view rendered at twice its size (sharp text, not scaled up).
    // The image's size in *size; false with the reason in the status bar.
    bool exportView2x(const QString& path, QSize* size = nullptr);
    // The preset the window opens on when none is given: it routes heads and experts.
    static constexpr const char* k_firstRunPreset = "moh-moe";
    void selectPreset(const QString& name) { presets_->setCurrentText(name); }
    QStringList presetNames() const;
    // Saves the form as a user preset in the workspace (the Save-as dialog ends here).
    bool savePresetAs(const QString& name);
    QString statusMessage() const;
    void overlayAllRuns();  // ticks every stored run other than the current one
    Session& session() { return session_; }
    ConfigDock* configDock() { return config_; }
    LessonsDock* lessonsDock() { return lessons_; }
    // The stages the last run's preparation went through ("training the bpe tokenizer ...", ...);
    // empty for the embedded corpus, which is prepared without a dialog.
    const QStringList& prepareStages() const { return prepareStages_; }
    ImGuiWidget* views() { return imgui_; }
    const RunData& runData() const { return run_; }
    ViewStates& viewStates() { return viewStates_; }
    const ViewOutbox& viewOutbox() const { return outbox_; }
    QString workspace() const { return workspace_; }
    int lastStep() const { return run_.curve.empty() ? 0 : run_.curve.back().step; }
    static const QStringList& viewNames();
    // Seconds from Train to the first step's numbers in the window (-1 before).
    double firstStepSeconds() const { return firstStepSeconds_; }

signals:
    void runFinished(int step);
    void runFailed(QString message);
    void sweepFinished(int finished, int failed);
    void generationReady();
    void checkpointSaved(QString path);
    void exportFinished(QString message);

protected:
    void closeEvent(QCloseEvent* e) override;

private:
    void poll();
    void updateLiveLabel();
    void train();
    // prepare + launch without touching a sweep (its points start here); a Status on failure.
    rl::Status beginRun(const rl::Config& cfg, const rl::RunStart& start);
    // The current run's end in the store, once: a no-op unless the window's run is still running there.
    void endCurrentRun(rl::RunStatus status, const QString& why);
    void replaceCurrentRun();  // stop the session; its run, if still training, is interrupted
    void shutdown();           // close or destroy: the run training now is interrupted
    void runNextSweepPoint();
    void updateSweepLabel(const QString& point);
    void sweepDialog();
    void continueDialog();
    void runsContextMenu(const QPoint& at);
    void applyRunsFilter();
    void syncRunItem(QTreeWidgetItem* it, const rl::RunRecord& r);
    const rl::RunRecord* storedRun(qint64 id) const;
    void createActions();
    void buildToolbar();
    void buildViewArea();
    void connectSession();
    void startPolling();
    void buildConfigDock();
    void openRunStore();
    void restoreLayout();
    void buildMenus();
    void buildDocks();
    void loadPresetList();
    void savePreset();
    void openConfig();
    void openCorpus();
    void updateOverlays();
    void storeLessonRuns();
    rl::Result<std::unique_ptr<rl::TrainState>> prepareRun(const rl::Config& cfg);
    void compareRuns();
    void exportSelectedRun();
    void deleteSelectedRun();
    void message(const QString& m);
    QString exportFolderDialog(const QString& caption);
    void applyTheme(bool light);  // setTheme without storing it
    void finishExport(const QString& checkpoint);
    void clearViews(const std::string& runName);
    const ViewEntry& currentView() const;
    // Redraws the current view when it shows some of what arrived (Arrival bits).
    void redrawIfShown(unsigned arrived);
    Session session_;
    RunData run_;  // written here only; the views read it
    ViewStates viewStates_;
    ViewOutbox outbox_;
    std::string spotlight_, spotlightCaption_;  // a lesson's region to frame in its view, and its words
    QList<qint64> lessonRunIds_;
    bool deviceNoteShown_ = false;  // train.device = auto's note was shown (once per window)
    bool preparing_ = false;      // prepareRun's dialog is up (its event loop runs): no second run meanwhile
    QStringList prepareStages_;   // what the last preparation said it was doing, in order                // the last lesson's stored runs, overlaid when it is shown
    ImGuiWidget* imgui_ = nullptr;
    QComboBox* presets_ = nullptr;
    QLabel* live_ = nullptr;
    QTabBar* tabs_ = nullptr;
    QTimer poll_;
    float emaTok_ = 0;
    ConfigDock* config_ = nullptr;
    QDockWidget* probeDock_ = nullptr;
    QLineEdit* probeEdit_ = nullptr;
    QDockWidget* runsDock_ = nullptr;
    LessonsDock* lessons_ = nullptr;
    QTreeWidget* runs_ = nullptr;
    QAction* trainAction_ = nullptr;
    QAction* pauseAction_ = nullptr;
    QAction* stepAction_ = nullptr;
    QAction* retrainAction_ = nullptr;
    QAction* continueAction_ = nullptr;
    QAction* sweepAction_ = nullptr;
    QAction* stopSweepAction_ = nullptr;
    QAction* darkAction_ = nullptr;
    QAction* lightAction_ = nullptr;
    QLineEdit* runsFilter_ = nullptr;
    QCheckBox* wallTime_ = nullptr;
    QCheckBox* band_ = nullptr;
    QLabel* sweepLabel_ = nullptr;
    QTimer runsRefresh_;
    QString workspace_;
    std::optional<rl::RunStore> store_;  // empty when the workspace database cannot be opened (said in the status bar)
    int64_t runId_ = 0;
    rl::RunStatus runStatus_ = rl::RunStatus::finished;  // runId_'s status as this window last wrote it
    bool shutDown_ = false;
    // A sweep in progress: its points, the next one to start, and how they went.
    struct SweepQueue {
        QString name;
        rl::Config base;
        std::vector<rl::SweepPoint> points;
        size_t next = 0;
        int finished = 0, failed = 0;
        int64_t pointRun = 0;  // the store row of the point training now
    };
    std::optional<SweepQueue> sweep_;
    size_t storedPoints_ = 0;  // run_.curve rows already in the store
    QElapsedTimer runClock_;
    QElapsedTimer labelClock_;  // live label refresh
    double firstStepSeconds_ = -1;
    QString exportPath_, exportFormat_, exportCheckpoint_;  // an export waiting for its checkpoint
    QHash<QString, qint64> checkpointRuns_;  // Save checkpoint...: the stored run each pending file belongs to
};
