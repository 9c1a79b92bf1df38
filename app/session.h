// Session: owns the training thread, its model and optimizer (DESIGN.md §4). The GUI thread talks
// to it only through atomics (pause/stop/step), an SPSC command ring for live changes, an SPSC
// ring of StepStats and a triple buffer of probe snapshots; rare events arrive as queued signals.
#pragma once
#include <QObject>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "infer/cost.h"
#include "metrics/routing_report.h"
#include "train/live.h"
#include "train/trainer.h"
#include "util/channel.h"

class Session : public QObject {
    Q_OBJECT
public:
    explicit Session(QObject* parent = nullptr) : QObject(parent) {}
    ~Session() override { stop(); }
    // Builds the run (validates, tokenizes the corpus, allocates) and starts training; paused = wait for resume.
    rl::Status start(const rl::Config& cfg, bool paused = false);
    void stop();
    void setPaused(bool p) { paused_ = p; }
    bool paused() const { return paused_; }
    void stepOnce() { stepRequests_++; }
    bool running() const { return thread_.joinable() && !finished_; }
    // Live change: applied by the trainer at the next step boundary.
    bool send(const rl::LiveCommand& c) { return commands_.push(c); }
    void setProbeText(const std::string& t);
    // GUI thread: newest stats / snapshots.
    bool pollStats(rl::StepStats& out) { return stats_.pop(out); }
    bool acquireProbe() { return probes_.acquire(); }
    const rl::ProbeSnapshot& probe() const { return probes_.read_slot(); }
    // The CostReport measured on the trained weights when a run finishes (routed models).
    bool acquireCost() { return costs_.acquire(); }
    const rl::CostReport& cost() const { return costs_.read_slot(); }
    uint64_t droppedStats() const { return stats_.dropped(); }
    const rl::Config& config() const { return cfg_; }

signals:
    void finished(int step);
    void failed(QString message);
    void liveChangeRefused(QString message);

private:
    void loop();
    rl::Config cfg_;
    std::unique_ptr<rl::TrainState> state_;
    std::thread thread_;
    std::atomic<bool> stop_{false}, paused_{false}, finished_{false};
    std::atomic<int> stepRequests_{0};
    rl::SpscRing<rl::StepStats, 256> stats_;
    rl::SpscRing<rl::LiveCommand, 64> commands_;
    rl::TripleBuffer<rl::ProbeSnapshot> probes_;
    rl::TripleBuffer<rl::CostReport> costs_;
    std::mutex probeTextMutex_;  // rare: the user edits the probe text
    std::string probeText_ = "User: What is the capital of France? Assistant: Paris. 12 + 7 = 19.";
    int probeEvery_ = 10;
};
