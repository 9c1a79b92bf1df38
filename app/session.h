// Session: owns the training thread, its model and optimizer (docs/architecture.md §2). The GUI thread talks
// to it only through atomics (pause/stop/step), an SPSC command ring for live changes, an SPSC
// ring of StepStats and triple buffers of snapshots; rare requests (generate, save a checkpoint)
// go through a mutex-guarded slot and their results come back as queued signals. After the last
// step the thread stays up, serving those requests on the trained weights, until stop().
#pragma once
#include <QObject>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "experiments/experiment.h"
#include "infer/cost.h"
#include "infer/generate.h"
#include "metrics/routing_report.h"
#include "train/live.h"
#include "train/trainer.h"
#include "util/channel.h"

struct GenerateRequest {
    std::string prompt;
    rl::SampleOptions sample;
    int maxNew = 40;
};
struct GenerateResult {
    std::string prompt, text;   // text: prompt followed by the generated tokens
    int promptTokens = 0;       // tokens of probe.tokens that came from the prompt
    rl::ProbeSnapshot probe;    // routing of the whole text (its last seq_len tokens)
    std::string error;          // why nothing was generated (e.g. expert-choice routing is not causal)
    std::string note;           // how it ended, when the end token ended it (GenerationReport::note)
};

class Session : public QObject {
    Q_OBJECT
public:
    explicit Session(QObject* parent = nullptr) : QObject(parent) {}
    ~Session() override { stop(); }
    // Builds a run (validates, tokenizes the corpus, allocates); nothing running is touched, so on an
    // error the current run goes on.
    // progress: what is being done (trainer_create's); may be called from the thread that prepares.
    static rl::Result<std::unique_ptr<rl::TrainState>> prepare(const rl::Config& cfg, const rl::DataProgress& progress = {});
    // A run around a checkpoint: its config and weights at its step; training continues for another
    // train.steps steps (fresh optimizer moments: the file holds weights only).
    static rl::Result<std::unique_ptr<rl::TrainState>> prepareFromCheckpoint(const std::string& path);
    // Stops the current run and starts this one; paused = wait for resume or Step. Call from the
    // thread that polls: it empties what the previous run left in the channels. pauseAt > 0 (a sweep's
    // rung, docs/tuning.md): at that step, short of train.steps, the run is evaluated, saved with its
    // training state to pauseCheckpoint and stops (pausedAt); a resume from the file goes on exactly.
    void launch(std::unique_ptr<rl::TrainState> state, bool paused = false, int pauseAt = 0, const std::string& pauseCheckpoint = {});
    // Continue: after the last step (the thread still holds the trained state), n more steps; the
    // schedule's length becomes step + n, as a resume from a checkpoint with run_resume(ckpt, step + n)
    // would have it. False when the run has not finished (or failed).
    bool extend(int n);
    // Cost measurement at the end of routed runs (the speedup view); a sweep's points skip it.
    void setMeasureCost(bool on) { measureCost_ = on; }
    // prepare + launch; checkpoints open paused.
    rl::Status start(const rl::Config& cfg, bool paused = false);
    // Tests (--inject-nan-at): the next launched run's loss at this step is NaN (0 = never).
    void setInjectNanAt(int step) { injectNanAt_ = step; }
    rl::Status startFromCheckpoint(const std::string& path);
    void stop();
    void setPaused(bool p) { paused_ = p; }
    bool paused() const { return paused_; }
    void stepOnce() { stepRequests_++; }
    bool running() const { return thread_.joinable() && !finished_; }
    bool diverged() const { return diverged_; }  // training stopped on a non-finite loss (failed was emitted)
    bool active() const { return thread_.joinable(); }  // a model exists (training or finished)
    // The run is a model folder opened to inspect (io/hf_inspect.h): nothing trains it.
    bool frozen() const { return frozen_; }
    // Live change: applied by the trainer at the next step boundary.
    bool send(const rl::LiveCommand& c) { return commands_.push(c); }
    // The views follow the probe text: a new snapshot is published at the next boundary.
    void setProbeText(const std::string& t);
    std::string probeText();
    void requestGenerate(const GenerateRequest& r);
    // The speedup view's Re-measure: the cost measured again on the current weights (a routed model).
    void requestCostMeasure() { costRequest_ = true; }
    // withState: also the companion training state (run_save), so a later Continue is exact; an
    // export only needs the weights.
    void requestCheckpoint(const std::string& path, bool withState = true);
    GenerateResult takeGeneration();
    // The experiments view (session_experiments.cpp): one experiment at a time on the trainer thread,
    // once nothing trains the model (a finished run, a model folder). A newer request cancels the one
    // running; its partial results and the final one come back through takeExperiment.
    void requestExperiment(const rl::ExperimentRequest& r);
    void cancelExperiment();
    rl::ExperimentResult takeExperiment();
    // The routing the views' probe is taken with (the experiments view's interventions; none = the model's).
    void setProbeInterventions(const rl::Interventions& iv, bool biasOff);
    // Back to the model's own routing in the probe (training goes on: its probes show what trains).
    void clearProbeInterventions();
    // GUI thread: newest stats / snapshots.
    bool pollStats(rl::StepStats& out) { return stats_.pop(out); }
    bool acquireProbe() { return probes_.acquire(); }
    const rl::ProbeSnapshot& probe() const { return probes_.read_slot(); }
    // Expert x class counts and top tokens on validation text (MoE models; every specEvery steps).
    bool acquireSpecialization() { return specs_.acquire(); }
    const rl::Specialization& specialization() const { return specs_.read_slot(); }
    // The CostReport measured on the trained weights when a routed run finishes.
    bool acquireCost() { return costs_.acquire(); }
    const rl::CostReport& cost() const { return costs_.read_slot(); }
    uint64_t droppedStats() const { return stats_.dropped(); }
    const rl::Config& config() const { return cfg_; }

signals:
    void finished(int step, float valLoss);
    // The run stopped at its pauseAt step: its validation loss there, and the checkpoint written (or why not).
    void pausedAt(int step, float valLoss, QString checkpoint, QString error);
    // The run cannot go on: a step's loss or gradient norm was NaN or infinite ("step 25: the loss is
    // NaN"). That step was not applied; training stopped with the weights of lastGoodStep, and the
    // thread stays up (requestCheckpoint still saves them).
    void failed(QString message, int lastGoodStep);
    // A checkpoint could not be written; the run goes on.
    void checkpointFailed(QString message);
    void liveChangeRefused(QString message);
    // A live change took effect at the boundary after `step` (the window says so).
    void liveChangeApplied(QString key, float value, int step);
    void generated();
    // An experiment's progress or its result (takeExperiment).
    void experimentUpdated();
    // What a frozen model's thread is reading (a model folder: seconds per pass), for the status line.
    void working(QString what);
    // A frozen model's first probe and its expert x domain counts are published.
    void inspected();
    // Also for a run that was replaced meanwhile (the file is written all the same): currentRun says which.
    void checkpointSaved(QString path, int step, bool currentRun);

private:
    void loop();
    void serveRequests(bool& probeDue);
    void publishProbe();
    void publishSpecialization();
    void finishRun();
    void pauseRun();
    void measureCost();  // routed models only; publishes for acquireCost
    void runExperiment(const rl::ExperimentRequest& r, bool& probeDue);  // session_experiments.cpp
    void putExperiment(const rl::ExperimentResult& r);
    void dropQueued();
    // Queued to the GUI thread, and dropped there if another run was launched in between: a late
    // "finished" or "generated" of the previous run must not land on the new one.
    template <class F>
    void post(F&& f) {
        QMetaObject::invokeMethod(
            this, [this, run = run_.load(), f = std::forward<F>(f)]() mutable {
                if (run == run_.load()) f();
            },
            Qt::QueuedConnection);
    }
    std::atomic<int> run_{0};  // launches so far; stamped on posted signals

    rl::Config cfg_;
    std::unique_ptr<rl::TrainState> state_;
    std::thread thread_;
    std::atomic<bool> stop_{false}, paused_{false}, finished_{false}, probeDirty_{false}, diverged_{false};
    std::atomic<bool> measureCost_{true};
    std::atomic<bool> frozen_{false};  // set at launch: the state's model has no gradients
    std::atomic<int> stepRequests_{0};
    int injectNanAt_ = 0;
    int pauseAt_ = 0;          // launch's pauseAt, set before the thread starts
    std::string pausePath_;
    std::atomic<int> extendBy_{0};  // Continue: steps to add, taken by the trainer at its next boundary
    rl::SpscRing<rl::StepStats, 256> stats_;
    rl::SpscRing<rl::LiveCommand, 64> commands_;
    rl::TripleBuffer<rl::ProbeSnapshot> probes_;
    rl::TripleBuffer<rl::Specialization> specs_;
    rl::TripleBuffer<rl::CostReport> costs_;
    std::mutex requestMutex_;  // rare: probe text, generate and checkpoint requests, generation result
    std::string probeText_ = "User: What is the capital of France? Assistant: Paris. 12 + 7 = 19.";
    std::optional<GenerateRequest> generateRequest_;
    std::atomic<bool> costRequest_{false};
    struct CheckpointRequest {
        std::string path;
        bool withState = true;
    };
    std::optional<CheckpointRequest> checkpointRequest_;
    void saveCheckpoint(const CheckpointRequest& r);
    GenerateResult generation_;
    std::optional<rl::ExperimentRequest> experimentRequest_;
    rl::ExperimentResult experiment_;      // newest progress or result
    rl::ExperimentCache experimentCache_;  // trainer thread only
    int experimentCacheStep_ = -1;         // the step its unchanged-model report was measured at
    rl::Interventions probeIv_;
    bool probeBiasOff_ = false;
    std::atomic<bool> experimentCancel_{false}, experimentRunning_{false};
    int probeEvery_ = 10;
    int specEvery_ = 100;
    int specTokens_ = 4096;
};
