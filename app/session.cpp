#include "session.h"

#include <QMetaObject>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "io/checkpoint.h"
#include "io/hf_inspect.h"
#include "io/resume.h"
#include "train/corpus.h"

using namespace rl;

Status Session::start(const Config& cfg, bool paused) {
    auto st = prepare(cfg);  // the current run keeps going if this fails
    if (!st) return st.status;
    launch(std::move(*st), paused);
    return Status::ok();
}

Status Session::startFromCheckpoint(const std::string& path) {
    auto st = prepareFromCheckpoint(path);
    if (!st) return st.status;
    launch(std::move(*st), true);
    return Status::ok();
}

Result<std::unique_ptr<TrainState>> Session::prepare(const Config& cfg, const DataProgress& progress) {
    return trainer_create(cfg, progress);
}

Result<std::unique_ptr<TrainState>> Session::prepareFromCheckpoint(const std::string& path) {
    auto ck = checkpoint_load(path);
    if (!ck) return ck.status;
    LoadedCheckpoint& c = **ck;
    // Rebuild the run around the checkpoint's config: the corpus gives the batches, the file the weights.
    Config cfg = c.cfg;
    cfg.train.steps = c.info.step + c.cfg.train.steps;
    // The corpus read with the checkpoint's own tokenizer, whatever data.tokenizer would train today.
    auto data = dataset_build(cfg.data, &c.tok);
    if (!data) return Status::error("checkpoint " + path + ": its corpus (" + cfg.data.corpus + ") cannot be read: " + data.status.msg);
    auto st = trainer_create(cfg, std::make_unique<Dataset>(std::move(*data)));
    if (!st) return Status::error("checkpoint " + path + ": its config no longer builds a run: " + st.status.msg);
    TrainState& s = **st;
    if (s.model.params.data.size() != c.model.params.data.size() || s.model.buffers.data.size() != c.model.buffers.data.size())
        return Status::error("checkpoint " + path + ": parameter count differs from its config; the file is damaged");
    model_copy_state(s.model, c.model);
    s.step = c.info.step;
    s.prev_entropy = c.info.attn_entropy;
    return st;
}

void Session::launch(std::unique_ptr<TrainState> state, bool paused, int pauseAt, const std::string& pauseCheckpoint) {
    stop();
    state_ = std::move(state);
    pauseAt_ = pauseAt > state_->step && pauseAt < state_->cfg.train.steps ? pauseAt : 0;
    pausePath_ = pauseCheckpoint;
    if (injectNanAt_ > 0) state_->inject_nan_at = injectNanAt_;
    // The old thread is joined: this (the consumer's) thread empties what it left in the channels,
    // so none of it is taken for the new run's.
    StepStats old;
    while (stats_.pop(old)) {
    }
    probes_.acquire();
    specs_.acquire();
    costs_.acquire();
    LiveCommand stale;  // live edits meant for the previous run (e.g. before opening a checkpoint)
    while (commands_.pop(stale)) {
    }
    run_++;
    cfg_ = state_->cfg;
    stop_ = false;
    finished_ = false;
    diverged_ = false;
    frozen_ = rl::model_frozen(state_->model);
    paused_ = paused;
    stepRequests_ = 0;
    extendBy_ = 0;
    probeDirty_ = false;
    {
        std::lock_guard<std::mutex> lock(requestMutex_);
        generateRequest_.reset();
        checkpointRequest_.reset();
        experimentRequest_.reset();
        experiment_ = {};
        probeIv_ = {};
        probeBiasOff_ = false;
    }
    experimentCache_ = {};
    experimentCacheStep_ = -1;
    experimentCancel_ = false;
    thread_ = std::thread([this] { loop(); });
}

void Session::stop() {
    stop_ = true;
    experimentCancel_ = true;
    if (thread_.joinable()) thread_.join();
}

void Session::setProbeText(const std::string& t) {
    {
        std::lock_guard<std::mutex> lock(requestMutex_);
        probeText_ = t;
    }
    probeDirty_ = true;
}

std::string Session::probeText() {
    std::lock_guard<std::mutex> lock(requestMutex_);
    return probeText_;
}

void Session::requestGenerate(const GenerateRequest& r) {
    std::lock_guard<std::mutex> lock(requestMutex_);
    generateRequest_ = r;
}

void Session::requestCheckpoint(const std::string& path, bool withState) {
    std::lock_guard<std::mutex> lock(requestMutex_);
    checkpointRequest_ = CheckpointRequest{path, withState};
}

bool Session::extend(int n) {
    if (n <= 0 || !thread_.joinable() || !finished_ || diverged_ || frozen_) return false;
    // The trainer is idle after its last step (finished_ is set before it idles): it takes extendBy_
    // at its next boundary. cfg_ is the GUI's copy; the trainer changes its own.
    cfg_.train.steps += n;
    finished_ = false;
    extendBy_ += n;
    return true;
}

GenerateResult Session::takeGeneration() {
    std::lock_guard<std::mutex> lock(requestMutex_);
    return generation_;
}

void Session::publishProbe() {
    std::vector<int> ids = state_->data->tok.encode(probeText());
    // A model folder's context runs to thousands of tokens, and the probe keeps every layer's attention
    // maps (4096 tokens of OLMoE would be 17 GB): its probe reads the first k_inspect_probe tokens.
    if (frozen_ && (int)ids.size() > k_inspect_probe) {
        post([this, n = ids.size()] {
            emit working(QString("the probe text is %1 tokens: the views show its first %2").arg(n).arg(k_inspect_probe));
        });
        ids.resize(k_inspect_probe);
    }
    rl::Interventions iv;
    bool biasOff = false;
    {
        std::lock_guard<std::mutex> lock(requestMutex_);
        iv = probeIv_, biasOff = probeBiasOff_;
    }
    // The experiments view's routing, in place for this probe only (training never sees it).
    std::unique_ptr<RoutingOverride> over;
    if (iv.any() || biasOff)
        if (auto o = RoutingOverride::make(state_->model, state_->cfg, iv, biasOff)) over = std::move(*o);
    probes_.write_slot() = probe_run_ids(state_->model, state_->data->tok, std::move(ids), state_->step);
    over.reset();
    probes_.publish();
}

void Session::publishSpecialization() {
    if (state_->model.cfg.moe.kind == FfnRouting::dense) return;
    if (frozen_) {  // a model folder: seconds per window, so in short windows, said as it goes, and
                    // given up between two windows when the session stops (stop() waits for this thread)
        specs_.write_slot() = specialization_measure(state_->model, state_->data->tok, state_->data->val, k_inspect_tokens,
                                                     1, k_inspect_window, [this](double f) {
                                                         post([this, f] { emit working(QString("expert x domain counts: %1%").arg((int)(100 * f))); });
                                                         return !stop_;
                                                     });
        if (stop_) return;  // counts of part of the text: not published
    } else {
        specs_.write_slot() = specialization_measure(state_->model, state_->data->tok, state_->data->val, specTokens_);
    }
    specs_.publish();
}

// Everything the GUI asked for that is not a training step, run on this (the owning) thread.
void Session::serveRequests(bool& probeDue) {
    TrainState& s = *state_;
    LiveCommand c;
    while (commands_.pop(c)) {
        Status ok = trainer_apply(s, c);
        if (!ok) post([this, m = QString::fromStdString(ok.msg)] { emit liveChangeRefused(m); });
        else post([this, k = QString(live_key_name(c.key)), v = c.value, step = s.step] { emit liveChangeApplied(k, v, step); });
    }
    if (probeDirty_.exchange(false)) probeDue = true;
    std::optional<GenerateRequest> gen;
    std::optional<CheckpointRequest> ckpt;
    std::optional<ExperimentRequest> exp;
    {
        std::lock_guard<std::mutex> lock(requestMutex_);
        gen.swap(generateRequest_);
        ckpt.swap(checkpointRequest_);
        exp.swap(experimentRequest_);
    }
    if (exp) runExperiment(*exp, probeDue);
    if (gen) {
        const GenerationReport g = generate_report(s.model, s.data->tok, gen->prompt, std::clamp(gen->maxNew, 1, 1000),
                                                   gen->sample, s.prev_entropy);
        GenerateResult r;
        r.prompt = gen->prompt;
        r.error = g.error;
        r.note = g.note();
        if (r.error.empty()) {
            r.text = g.text;
            r.promptTokens = g.window_prompt_tokens;
            r.probe = probe_run_ids(s.model, s.data->tok, g.window_ids, s.step, false);
        }
        {
            std::lock_guard<std::mutex> lock(requestMutex_);
            generation_ = std::move(r);
        }
        post([this] { emit generated(); });
    }
    if (ckpt) saveCheckpoint(*ckpt);
    if (costRequest_.exchange(false)) measureCost();
}

void Session::saveCheckpoint(const CheckpointRequest& r) {
    TrainState& s = *state_;
    // With the companion (AdamW moments, sampler RNG, ...) a Continue from this file takes the very
    // step this run would have taken next.
    Status sv = frozen_ ? Status::error("a model folder opened to inspect is not saved as a checkpoint: its weights stay "
                                        "in the folder (export --format hf writes a lab-trained model as one)")
                : r.withState ? run_save(s, r.path)
                              : checkpoint_save(r.path, s.model, s.cfg, s.data->tok, {s.step, s.prev_entropy});
    // Not through post(): the outcome is news even when another run has started since.
    QMetaObject::invokeMethod(
        this,
        [this, ok = sv.is_ok(), m = QString::fromStdString(sv.msg), p = QString::fromStdString(r.path), st = s.step,
         run = run_.load()] {
            if (ok) emit checkpointSaved(p, st, run == run_.load());
            else emit checkpointFailed(m);
        },
        Qt::QueuedConnection);
}

void Session::measureCost() {
    if (frozen_) {  // its probe of dense against routed compute would run at the folder's context length
        post([this] { emit working("the speedup view measures models the lab trains; a model folder's is not measured"); });
        return;
    }
    const ModelConfig& mc = state_->model.cfg;
    if (mc.attention.heads.kind == HeadSelection::all_heads && mc.moe.kind == FfnRouting::dense) return;
    // The trainer thread owns the weights: measure naive / FLOP-model / measured speedups here.
    costs_.write_slot() = cost_measure(state_->model, 0.25, 3);
    costs_.publish();
}

// A sweep's rung: evaluated and saved with its training state, so a resume takes the very next step.
void Session::pauseRun() {
    TrainState& s = *state_;
    pauseAt_ = 0;
    const float val = trainer_eval(s);
    const Status sv = run_save(s, pausePath_);
    finished_ = true;
    post([this, step = s.step, val, p = QString::fromStdString(pausePath_), e = QString::fromStdString(sv.msg)] {
        emit pausedAt(step, val, p, e);
    });
}

void Session::finishRun() {
    TrainState& s = *state_;
    if (measureCost_) measureCost();
    if (stop_) return;  // Retrain or close while measuring: the rest is not wanted
    publishSpecialization();
    if (stop_) return;
    const float val = trainer_eval(s);
    finished_ = true;
    post([this, step = s.step, val] { emit finished(step, val); });
}

void Session::loop() {
    TrainState& s = *state_;
    publishProbe();
    publishSpecialization();
    if (frozen_) {  // a model folder: nothing to train; requests (probe text, generate) are served from here
        finished_ = true;
        post([this] {
            emit working("the model is ready: type a probe text or generate; nothing trains it");
            emit inspected();
        });
    }
    bool done = s.step >= s.cfg.train.steps;
    while (!stop_) {
        bool probeDue = false;
        serveRequests(probeDue);
        if (const int more = extendBy_.exchange(0); more > 0 && done && !diverged_) {  // Continue
            s.cfg.train.steps += more;
            done = false;
        }
        if (done || (paused_ && stepRequests_ == 0)) {
            if (probeDue) publishProbe();
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            continue;
        }
        if (stepRequests_ > 0) stepRequests_--;
        clearProbeInterventions();  // training again: the probes show the model's own routing
        StepStats st = trainer_step(s);
        if (st.non_finite) {
            // trainer_step did not apply it: the model holds the weights of the step before. Stop here and
            // say so; the thread stays up, so the window can still save those weights (a sweep records
            // the point as failed).
            publishProbe();
            diverged_ = true;
            finished_ = true;
            done = true;
            post([this, msg = QString::fromStdString(rl::non_finite_message(st)), good = s.step] { emit failed(msg, good); });
            continue;
        }
        stats_.push(st);  // never waits; a slow GUI loses samples, counted in droppedStats()
        const bool last = st.step >= s.cfg.train.steps, pause = pauseAt_ > 0 && st.step >= pauseAt_;
        if (probeDue || st.step % probeEvery_ == 0 || last || pause) publishProbe();
        if (st.step % specEvery_ == 0 && !last) publishSpecialization();
        if (last) {
            finishRun();
            done = true;
        } else if (pause) {
            pauseRun();
            done = true;
        }
    }
    // A checkpoint asked for just before stop() is still written (the user expects the file).
    std::optional<CheckpointRequest> ckpt;
    {
        std::lock_guard<std::mutex> lock(requestMutex_);
        ckpt.swap(checkpointRequest_);
    }
    if (ckpt) saveCheckpoint(*ckpt);
    finished_ = true;
}
