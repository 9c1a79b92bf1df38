#include "session.h"

#include <QMetaObject>
#include <chrono>

using namespace rl;

Status Session::start(const Config& cfg, bool paused) {
    stop();
    auto st = trainer_create(cfg);
    if (!st) return st.status;
    state_ = std::move(*st);
    cfg_ = state_->cfg;
    stop_ = false;
    finished_ = false;
    paused_ = paused;
    stepRequests_ = 0;
    thread_ = std::thread([this] { loop(); });
    return Status::ok();
}

void Session::stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
}

void Session::setProbeText(const std::string& t) {
    std::lock_guard<std::mutex> lock(probeTextMutex_);
    probeText_ = t;
}

void Session::loop() {
    TrainState& s = *state_;
    auto publishProbe = [&] {
        std::string text;
        {
            std::lock_guard<std::mutex> lock(probeTextMutex_);
            text = probeText_;
        }
        probes_.write_slot() = probe_run(s.model, s.data->tok, text, s.step);
        probes_.publish();
    };
    publishProbe();
    while (!stop_) {
        LiveCommand c;
        while (commands_.pop(c)) {
            Status ok = trainer_apply(s, c);
            if (!ok) QMetaObject::invokeMethod(this, [this, m = QString::fromStdString(ok.msg)] { emit liveChangeRefused(m); },
                                               Qt::QueuedConnection);
        }
        if (paused_ && stepRequests_ == 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            continue;
        }
        if (stepRequests_ > 0) stepRequests_--;
        StepStats st = trainer_step(s);
        stats_.push(st);  // never waits; a slow GUI loses samples, counted in droppedStats()
        if (st.step % probeEvery_ == 0 || st.step >= s.cfg.train.steps) publishProbe();
        if (st.step >= s.cfg.train.steps) break;
    }
    const ModelConfig& mc = s.model.cfg;
    if (!stop_ && (mc.attention.heads.kind != HeadSelection::all_heads || mc.moe.kind != FfnRouting::dense)) {
        // The trainer thread owns the weights: measure naive / FLOP-model / measured speedups here.
        costs_.write_slot() = cost_measure(s.model, 0.25, 3);
        costs_.publish();
    }
    finished_ = true;
    const int step = s.step;
    QMetaObject::invokeMethod(this, [this, step] { emit finished(step); }, Qt::QueuedConnection);
}
