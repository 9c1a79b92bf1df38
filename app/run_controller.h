// The window's run, without widgets (docs/architecture.md §12): the Session (the trainer thread),
// RunData (what the views read), the run's row in the workspace's store (io/run_recorder.h, the
// recorder the CLI uses too) and the poll that moves the trainer's numbers across. Every way a run
// starts in the window (Train, Retrain, open checkpoint, Continue from checkpoint, a sweep's point,
// a lesson's replay) ends in adopt(); Continue trains the same session on.
#pragma once
#include <QElapsedTimer>
#include <QHash>
#include <QObject>
#include <QSet>
#include <QStringList>
#include <QTimer>
#include <functional>
#include <memory>
#include <optional>

#include "io/run_recorder.h"
#include "session.h"
#include "views.h"

// Where a sweep's run stops short of its last step (a rung) and the file it is saved to there.
struct RunPause {
    int step = 0;  // 0 = runs to its end
    std::string checkpoint;
};

class RunController : public QObject {
    Q_OBJECT
public:
    // Where a run comes from: a sweep's point neither stops the sweep nor measures its speedup.
    enum class Origin { user, sweep };
    // What adopt() takes over: a prepared state and how its store row starts.
    struct NewRun {
        std::unique_ptr<rl::TrainState> state;
        std::string name;                     // the row's and the views' name
        rl::RunStart start;                   // its sweep and tags
        Origin origin = Origin::user;
        bool paused = false;                  // an opened checkpoint waits for Step or Pause
        int64_t sameRow = 0;                  // go on in this stored row instead of a new one
        std::vector<rl::CurvePoint> history;  // the stored curve up to the start (a continued run)
        std::vector<rl::StepLoads> historyLoads;  // and its stored routing loads
        std::string checkpoint;               // the file it was opened from, recorded on the row
        bool record = true;                   // false: no row (a model folder opened to inspect trains nothing)
        int pauseAt = 0;                      // a sweep's rung: stop there, saved to pauseCheckpoint (Session::launch)
        std::string pauseCheckpoint;
    };

    // How a model folder is opened (the window: on a thread, behind a progress dialog).
    using FolderOpener = std::function<rl::Result<std::unique_ptr<rl::TrainState>>(const std::string& dir)>;
    // How a file corpus is prepared (the window: on a thread, behind a progress dialog).
    using Preparer = std::function<rl::Result<std::unique_ptr<rl::TrainState>>(const rl::Config&)>;

    // workspace: its runs.sqlite is opened (created) here; without it runs are not stored (said).
    explicit RunController(const QString& workspace, QObject* parent = nullptr);
    ~RunController() override;

    // Validates, checks memory, prepares and adopts; on an error nothing running is touched.
    rl::Status startRun(const rl::Config& cfg, const rl::RunStart& start = {}, Origin origin = Origin::user, const RunPause& pause = {});
    // A sweep's paused run goes on from its newest checkpoint, exactly, in its row, with its own
    // schedule (train.steps unchanged), to its end or the next pause.
    rl::Status resumeRun(qint64 runId, const RunPause& pause);
    // A checkpoint's weights, paused, in a new row that records the file.
    rl::Status openCheckpoint(const QString& path);
    // A Hugging Face model folder to inspect (io/hf_inspect.h): its routing of the probe text and the
    // embedded corpus, and generation; nothing trains and no row is stored.
    rl::Status openModel(const QString& dir);
    void setFolderOpener(FolderOpener f) { folderOpener_ = std::move(f); }
    // The finished run trains n more steps in the same session and row (run_store_reopen).
    rl::Status continueRun(int n);
    // A stored run's newest checkpoint on disk through run_resume, n more steps: the same row when
    // nothing was stored past the checkpoint, else a new row that starts with the curve up to it.
    rl::Status continueFromCheckpoint(qint64 runId, int n);
    // The one way a run takes the session: the current run, if still training, is interrupted
    // ("replaced by a new run at step N"); the views start over; the new row begins.
    void adopt(NewRun r);
    // Stops training; the run, if still training, ends with status and why ("%1" in why: the step
    // it reached, its last steps polled first).
    void stopRun(rl::RunStatus status, const QString& why);
    // Closing: the run still training is interrupted ("the window was closed at step N").
    void shutdown();

    void saveCheckpoint(const QString& path);  // recorded on the run it was asked for; checkpointSaved follows
    // A weights-only file for an export: not recorded; exportCheckpointReady or checkpointFailed follows.
    void requestExportCheckpoint(const QString& path);
    void setProbeText(const QString& text);
    void requestGenerate(GenerateRequest r);
    void requestCostMeasure();
    // The experiments view's request (a newer one cancels the one running), its Cancel, and its
    // calibration's biases written to a file (run_controller_experiments.cpp).
    void requestExperiment(rl::ExperimentRequest r);
    void cancelExperiment();
    void saveBiases(const QString& path);
    void setSweepActive(bool on) { sweepActive_ = on; }  // Continue waits for a sweep to end
    void setPreparer(Preparer p) { preparer_ = std::move(p); }
    bool preparing() const { return preparing_; }

    Session& session() { return session_; }
    RunData& data() { return run_; }  // the Runs dock writes its runs and overlays
    const RunData& data() const { return run_; }
    rl::RunStore* store() { return store_ ? &*store_ : nullptr; }
    const QString& workspace() const { return workspace_; }
    const QString& storeProblem() const { return storeProblem_; }  // why runs are not stored ("" = they are)
    qint64 currentRunId() const { return rec_.id; }
    bool currentRunTraining() const { return rec_.id && rec_.status == rl::RunStatus::running; }
    rl::RunStatus currentRunStatus() const { return rec_.status; }
    int lastStep() const { return run_.curve.empty() ? 0 : run_.curve.back().step; }
    double firstStepSeconds() const { return firstStepSeconds_; }  // Train -> first numbers (-1 before)
    float tokPerSecond() const { return emaTok_; }                 // smoothed over steps
    void poll();

signals:
    void message(QString text);
    void takingOver();                       // a user's run replaces whatever runs (a sweep stops)
    void runReset();                         // a new run: RunData started over, the views start as at launch
    void configAdopted(const rl::Config& cfg);  // a run's config the form should show (checkpoints)
    void modelConfigAdopted(const rl::Config& cfg);  // an opened model folder's settings, for the form
    void arrived(unsigned arrival);          // Arrival bits: data the views may show
    void statsArrived();                     // the live label's step and loss
    void runsChanged();                      // rows began, ended or changed: re-list the store
    void runFinished(int step);
    void runPaused(int step);                // stopped at its RunPause step, saved, its row interrupted ("paused at step N")
    void modelInspected();                   // an opened model folder's probe and counts arrived
    void runFailed(QString message);
    void generationReady();
    void checkpointSaved(QString path);
    void exportCheckpointReady(QString path);
    void checkpointFailed(QString message);

private:
    void connectSession();
    void onFailed(const QString& what, int goodStep);
    void onPaused(int step, float val, const QString& checkpoint, const QString& error);
    // The run's newest checkpoint on disk through run_resume (more > 0: that many steps past it, the
    // schedule's length then; 0: its own), with its stored curve and loads up to the checkpoint's step
    // (*step); sameRow set when nothing was stored past it; *inexact: why it is not exact ("" = exact).
    rl::Result<NewRun> resumed(qint64 id, int more, int* step, std::string* inexact);
    void onCheckpointSaved(const QString& path, int step, bool currentRun);
    void storeNewPoints();
    void takeProbe();
    void takeExperiment();
    rl::Result<std::unique_ptr<rl::TrainState>> prepare(const rl::Config& cfg);
    void say(const QString& m) { emit message(m); }
    bool recorded(bool ok);  // a failed store write said; the next write tries again

    Session session_;
    RunData run_;
    QString workspace_, storeProblem_;
    QString probeText_;  // the probe dock's text, given to each new run
    std::optional<rl::RunStore> store_;  // none when the workspace's database cannot be opened (said)
    rl::RunRecorder rec_;                // the current run's row
    size_t storedPoints_ = 0;            // run_.curve rows already in the store
    size_t storedLoads_ = 0;             // run_.loads rows already in the store
    QTimer poll_;
    QElapsedTimer runClock_;
    double firstStepSeconds_ = -1;
    float emaTok_ = 0;
    bool deviceNoteShown_ = false;  // train.device = auto's note was shown (once per window)
    bool preparing_ = false;        // the preparer is working: no second run meanwhile
    bool sweepActive_ = false;
    bool shutDown_ = false;
    int experimentIds_ = 0;         // requests numbered so that a late result of a replaced one is known
    Preparer preparer_;
    FolderOpener folderOpener_;
    QHash<QString, qint64> checkpointRuns_;  // Save checkpoint...: the stored run each pending file belongs to
    QSet<QString> exportFiles_;              // checkpoints written for exports: not the run's
};
