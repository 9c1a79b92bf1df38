// The main window: the shell that wires the rooms (docs/architecture.md §12.1, the table of app/ files).
// It holds the toolbar (preset picker, Train / Pause / Step / Retrain / Continue, the live label),
// the ImGui views in the centre (heads, experts, routing, attention, curves, speedup, generate,
// tuning) and the docks; the run itself is the RunController's, sweeps the SweepRunner's, the
// stored runs the RunsDock's and exports the Exports'. Menus and actions: window_menus.cpp.
#pragma once
#include <QElapsedTimer>
#include <QMainWindow>

#include "config_dock.h"
#include "exports.h"
#include "lessons_dock.h"
#include "preset_picker.h"
#include "probe_dock.h"
#include "run_controller.h"
#include "runs_dock.h"
#include "sweep_runner.h"
#include "views.h"

class ImGuiWidget;
class QAction;
class QLabel;
class QTabBar;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    // workspace: folder of the run store (runs.sqlite) and the user's presets; empty = the per-user
    // workspace the CLI uses too (rl::workspace_default()).
    explicit MainWindow(const QString& workspace = {}, QWidget* parent = nullptr);
    ~MainWindow() override;
    // Train with this config (also used by scripted runs); false with the reason in the status bar.
    bool startRun(const rl::Config& cfg);
    bool openCheckpoint(const QString& path);
    // A Hugging Face model folder, opened to inspect behind a progress dialog (File > Open model folder...).
    bool openModel(const QString& dir);
    void setProbeText(const QString& text);
    void requestGenerate();              // the generate view's prompt and settings
    void runExperiment(rl::ExperimentKind k);  // the experiments view's request of that kind, as its button sends it
    void showView(const QString& name);  // a name in viewTable()
    // The views' theme, "dark" or "light" (View > Theme), kept in QSettings ("theme") for the next launch.
    void setTheme(const QString& name);
    QString theme() const;
    // The preset the window opens on when none is given: it routes heads and experts.
    static constexpr const char* k_firstRunPreset = "moh-moe";
    static const QStringList& viewNames();
    void selectPreset(const QString& name);  // loads it into the form, as picking it does
    QStringList presetNames() const { return presets_->names(); }
    bool savePresetAs(const QString& name);  // the form as a user preset in the workspace
    QString statusMessage() const;
    QString workspace() const { return runs_->workspace(); }

    // The rooms.
    RunController& runs() { return *runs_; }
    const RunController& runs() const { return *runs_; }
    SweepRunner& sweeps() { return *sweeps_; }
    Exports& exports() { return *exports_; }
    RunsDock* runsDock() { return runsDock_; }
    ConfigDock* configDock() { return config_; }
    LessonsDock* lessonsDock() { return lessons_; }
    ImGuiWidget* views() { return imgui_; }
    ViewStates& viewStates() { return viewStates_; }
    const ViewOutbox& viewOutbox() const { return outbox_; }
    // The stages the last run's preparation went through ("training the bpe tokenizer ...", ...);
    // empty for the embedded corpus, which is prepared without a dialog.
    const QStringList& prepareStages() const { return prepareStages_; }

protected:
    void closeEvent(QCloseEvent* e) override;

private:
    // Built once, in this order (the constructor reads as the table of contents).
    void createActions();  // window_menus.cpp
    void buildToolbar();   // window_menus.cpp
    void buildViewArea();
    void buildDocks();
    void connectRooms();
    void connectLessons();
    void buildMenus();  // window_menus.cpp
    void restoreLayout();
    // Named slots.
    void train();
    void continueDialog();
    void sweepDialog();
    void savePreset();
    void openConfig();
    void openCorpus();
    void showLessonRun(const rl::Config& cfg, const QString& view, const QString& lookAt, const QString& spotlight);
    void storeLessonRuns();
    void resetViews();  // a new run: the views start as at launch, the user's own settings kept
    void updateLiveLabel();
    void showSweepProgress(const QString& text);
    void message(const QString& m);
    void applyTheme(bool light);  // setTheme without storing it
    const ViewEntry& currentView() const;
    void redrawIfShown(unsigned arrived);  // the current view, when it shows some of what arrived (Arrival bits)

    RunController* runs_ = nullptr;
    SweepRunner* sweeps_ = nullptr;
    Exports* exports_ = nullptr;
    ConfigDock* config_ = nullptr;
    ProbeDock* probeDock_ = nullptr;
    RunsDock* runsDock_ = nullptr;
    LessonsDock* lessons_ = nullptr;
    PresetPicker* presets_ = nullptr;
    ImGuiWidget* imgui_ = nullptr;
    QTabBar* tabs_ = nullptr;
    QLabel* live_ = nullptr;
    QLabel* sweepLabel_ = nullptr;  // made at the first sweep: a hidden permanent widget still moves the docks by a pixel
    // Each made once; shown in the toolbar and the menus.
    struct Actions {
        QAction *train, *pause, *step, *retrain, *continueRun, *sweep, *stopSweep, *dark, *light;
    } act_{};
    ViewStates viewStates_;
    ViewOutbox outbox_;
    std::string spotlight_, spotlightCaption_;  // a lesson's region to frame in its view, and its words
    QList<qint64> lessonRunIds_;                // the last lesson's stored runs, overlaid when it is shown
    QStringList prepareStages_;
    QElapsedTimer labelClock_;  // the live label's once-a-second refresh
};
