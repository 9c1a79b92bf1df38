// The main window: menus, toolbar (preset picker, Train / Pause / Step / Retrain,
// live step / loss / tok/s), the ImGui views in the centre (heads, experts, routing, attention,
// curves, speedup, generate) and docks for the config form, the probe text and the stored runs.
#pragma once
#include <QComboBox>
#include <QElapsedTimer>
#include <QLabel>
#include <QMainWindow>
#include <QTabBar>
#include <QTimer>
#include <optional>

#include "config_dock.h"
#include "io/run_store.h"
#include "session.h"
#include "views.h"

class ImGuiWidget;
class QAction;
class QLineEdit;
class QTreeWidget;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    // workspace: folder of the run store (runs.sqlite) and the user's presets; empty = the platform's app-data folder.
    explicit MainWindow(const QString& workspace = {}, QWidget* parent = nullptr);
    // Starts a run of the given config (also used by scripted runs).
    bool startRun(const rl::Config& cfg);
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
    void selectPreset(const QString& name) { presets_->setCurrentText(name); }
    QStringList presetNames() const;
    // Saves the form as a user preset in the workspace (the Save-as dialog ends here).
    bool savePresetAs(const QString& name);
    QString statusMessage() const;
    void overlayAllRuns();  // ticks every stored run other than the current one
    Session& session() { return session_; }
    ConfigDock* configDock() { return config_; }
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
    void generationReady();
    void checkpointSaved(QString path);
    void exportFinished(QString message);

protected:
    void closeEvent(QCloseEvent* e) override;

private:
    void poll();
    void updateLiveLabel();
    void train();
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
    void refreshRuns();
    void updateOverlays();
    void compareRuns();
    void exportSelectedRun();
    void deleteSelectedRun();
    void message(const QString& m);
    void finishExport(const QString& checkpoint);
    void clearViews(const std::string& runName);
    const ViewEntry& currentView() const;
    // Redraws the current view when it shows some of what arrived (Arrival bits).
    void redrawIfShown(unsigned arrived);
    Session session_;
    RunData run_;  // written here only; the views read it
    ViewStates viewStates_;
    ViewOutbox outbox_;
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
    QTreeWidget* runs_ = nullptr;
    QAction* trainAction_ = nullptr;
    QAction* pauseAction_ = nullptr;
    QAction* stepAction_ = nullptr;
    QAction* retrainAction_ = nullptr;
    QString workspace_;
    std::optional<rl::RunStore> store_;  // empty when the workspace database cannot be opened (said in the status bar)
    int64_t runId_ = 0;
    size_t storedPoints_ = 0;  // run_.curve rows already in the store
    QElapsedTimer runClock_;
    QElapsedTimer labelClock_;  // live label refresh
    double firstStepSeconds_ = -1;
    QString exportPath_, exportFormat_, exportCheckpoint_;  // an export waiting for its checkpoint
};
