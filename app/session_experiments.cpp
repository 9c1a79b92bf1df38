// The session's experiments (the experiments view; experiments/experiment.h): run on the trainer
// thread, which owns the model, between requests; progress comes back at most ~7 times a second.
#include <chrono>

#include "session.h"

using namespace rl;

void Session::requestExperiment(const ExperimentRequest& r) {
    std::lock_guard<std::mutex> lock(requestMutex_);
    if (experimentRequest_) dropQueued();  // an older one that never started: said cancelled
    experimentRequest_ = r;
    if (experimentRunning_) experimentCancel_ = true;  // the newer request replaces the running one
}

void Session::cancelExperiment() {
    std::lock_guard<std::mutex> lock(requestMutex_);
    if (experimentRequest_) dropQueued();
    if (experimentRunning_) experimentCancel_ = true;
}

// With requestMutex_ held: the queued request is dropped, and the window told (its id ends "running").
void Session::dropQueued() {
    experiment_ = {};
    experiment_.kind = experimentRequest_->kind, experiment_.id = experimentRequest_->id;
    experiment_.done = experiment_.cancelled = true;
    experimentRequest_.reset();
    post([this] { emit experimentUpdated(); });
}

void Session::clearProbeInterventions() {
    std::lock_guard<std::mutex> lock(requestMutex_);
    probeIv_ = {}, probeBiasOff_ = false;
}

ExperimentResult Session::takeExperiment() {
    std::lock_guard<std::mutex> lock(requestMutex_);
    return experiment_;
}

void Session::setProbeInterventions(const Interventions& iv, bool biasOff) {
    {
        std::lock_guard<std::mutex> lock(requestMutex_);
        probeIv_ = iv, probeBiasOff_ = biasOff;
    }
    probeDirty_ = true;
}

void Session::putExperiment(const ExperimentResult& r) {
    {
        std::lock_guard<std::mutex> lock(requestMutex_);
        experiment_ = r;
    }
    post([this] { emit experimentUpdated(); });
}

void Session::runExperiment(const ExperimentRequest& r, bool& probeDue) {
    TrainState& s = *state_;
    // The weights move under a training run (this thread would interleave steps with the experiment's
    // forwards); a paused or finished run, or a model folder, holds still. A failed run has none to trust.
    if (!(finished_ || paused_) || diverged_) {
        ExperimentResult no;
        no.kind = r.kind, no.id = r.id, no.done = true;
        no.error = diverged_ ? "the run failed: experiments need weights that trained without a NaN"
                             : "experiments run on a model that holds still: pause the run or wait for it to finish";
        putExperiment(no);
        return;
    }
    {
        std::lock_guard<std::mutex> lock(requestMutex_);  // one step with requestExperiment's check: no gap
        experimentCancel_ = stop_.load();                  // a cancel meant for the one before is not this one's; a stop is
        experimentRunning_ = true;
    }
    if (s.step != experimentCacheStep_) experimentCache_ = {}, experimentCacheStep_ = s.step;  // the weights moved
    auto last = std::chrono::steady_clock::now() - std::chrono::seconds(1);
    auto progress = [&](const ExperimentResult& p) {
        const auto now = std::chrono::steady_clock::now();
        if (now - last < std::chrono::milliseconds(150)) return;
        last = now;
        putExperiment(p);
    };
    ExperimentResult out = experiment_run(s.model, s.cfg, s.data->tok, s.data->val.ids, r, experimentCache_, progress,
                                          &experimentCancel_);
    experimentRunning_ = false;
    if (r.kind == ExperimentKind::calibrate && out.error.empty()) {
        s.cfg.model.moe.expert_bias = s.model.cfg.moe.expert_bias;  // the model has biases now: a Continue trains with them
        post([this, on = s.cfg.model.moe.expert_bias] { cfg_.model.moe.expert_bias = on; });  // and the window's copy
        probeDue = true;
    }
    if (r.kind == ExperimentKind::compare && out.error.empty()) {
        std::lock_guard<std::mutex> lock(requestMutex_);
        probeIv_ = out.applied, probeBiasOff_ = r.bias_off;  // the other views show the routing the numbers are of
        probeDue = true;
    }
    if (stop_) return;
    putExperiment(out);
}
