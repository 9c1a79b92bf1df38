#include "run_controller.h"

#include <QDir>
#include <QFileInfo>

#include "backend/ops.h"
#include "io/hf_inspect.h"
#include "io/resume.h"
#include "metrics/cluster_cost.h"
#include "train/memory.h"

namespace {
constexpr size_t k_maxStats = 4000;   // StepStats kept for per-head/expert curves (about 9 KB each); thinned beyond
constexpr size_t k_maxHistory = 500;  // probe snapshots kept for the heads view's scrubber

// Long runs keep every other element once a list passes its bound: memory stays bounded and the
// whole run stays covered, at half the resolution.
template <class T>
void thinWhenOver(std::vector<T>& v, size_t bound) {
    if (v.size() <= bound) return;
    size_t w = 0;
    for (size_t i = 0; i < v.size(); i += 2) v[w++] = std::move(v[i]);
    v.resize(w);
}

QString q(const std::string& s) { return QString::fromStdString(s); }
}  // namespace

RunController::RunController(const QString& workspace, QObject* parent) : QObject(parent) {
    // The CLI's default too (io/run_recorder.h): runs trained there are listed here.
    workspace_ = workspace.isEmpty() ? q(rl::workspace_default()) : workspace;
    if (auto st = rl::workspace_open_store(workspace_.toStdString()); st) store_ = std::move(*st), rec_.store = store_;
    else storeProblem_ = q(st.status.msg) + "; runs will not be stored this session (start with --workspace DIR)";
    probeText_ = q(session_.probeText());
    connectSession();
    // The GUI polls the channels 4 times a second and redraws only when something arrived: on two
    // cores with software GL every frame is taken from the trainer (input still redraws at up to 15 fps).
    poll_.setInterval(250);
    connect(&poll_, &QTimer::timeout, this, [this] { poll(); });
    poll_.start();
}

RunController::~RunController() { shutdown(); }

// A write the store refused (a CLI holding it, a full disk) is said, and the next write tries again.
bool RunController::recorded(bool ok) {
    if (!ok && !rec_.error.empty()) say(q(rec_.error)), rec_.error.clear();
    rec_.store = store_;
    return ok;
}

void RunController::connectSession() {
    connect(&session_, &Session::finished, this, [this](int step, float val) {
        poll();
        if (currentRunTraining()) {
            recorded(rl::recorder_end(rec_, rl::RunStatus::finished, "", val));
            emit runsChanged();
        }
        say(QString("run finished at step %1, validation loss %2").arg(step).arg(val, 0, 'f', 4));
        emit runFinished(step);
    });
    connect(&session_, &Session::failed, this, [this](const QString& what, int goodStep) { onFailed(what, goodStep); });
    connect(&session_, &Session::pausedAt, this, &RunController::onPaused);
    connect(&session_, &Session::checkpointFailed, this, [this](const QString& m) {
        say(m);
        emit checkpointFailed(m);
    });
    connect(&session_, &Session::liveChangeRefused, this, [this](const QString& m) { say(m); });
    connect(&session_, &Session::working, this, [this](const QString& m) { say(m); });
    connect(&session_, &Session::inspected, this, [this] {
        poll();  // the probe and the counts into RunData before anyone looks
        emit modelInspected();
    });
    connect(&session_, &Session::liveChangeApplied, this, [this](const QString& key, float value, int step) {
        say(QString("live: %1 = %2 from step %3 on (the curves show its effect from there)").arg(key).arg(value).arg(step + 1));
    });
    connect(&session_, &Session::generated, this, [this] {
        GenerateResult r = session_.takeGeneration();
        run_.generating = false;
        run_.generation = std::move(r.probe);
        run_.generationPromptTokens = r.promptTokens;
        run_.generationError = r.error;
        run_.generationNote = r.note;
        emit arrived(Arrival::Generation);
        emit generationReady();
    });
    connect(&session_, &Session::experimentUpdated, this, &RunController::takeExperiment);
    connect(&session_, &Session::checkpointSaved, this,
            [this](const QString& path, int step, bool currentRun) { onCheckpointSaved(path, step, currentRun); });
}

// The weights of the last good step become the run's checkpoint (written by the trainer thread,
// which still holds them; onCheckpointSaved records it on the run).
void RunController::onFailed(const QString& what, int goodStep) {
    poll();  // its last good steps reach the store first
    QString m = what;
    if (rec_.store && rec_.id) {
        const QString dir = QDir(workspace_).filePath("checkpoints");
        const QString path = QDir(dir).filePath(QString("run-%1-step-%2.safetensors").arg(rec_.id).arg(goodStep));
        if (QDir().mkpath(dir)) {
            checkpointRuns_[path] = rec_.id;
            session_.requestCheckpoint(path.toStdString());
            m += QString("; training stopped with the weights of step %1, saved to %2").arg(goodStep).arg(path);
        }
    }
    m += " (Retrain, or lower train.lr / raise train.warmup_steps, to go on)";
    // Not stopped: the thread stays up to write those weights.
    if (currentRunTraining()) recorded(rl::recorder_end(rec_, rl::RunStatus::failed, m.toStdString()));
    say(m);
    emit runFailed(m);
}

void RunController::onCheckpointSaved(const QString& path, int step, bool currentRun) {
    if (exportFiles_.remove(path)) return emit exportCheckpointReady(path);  // a temporary file, not the run's
    // Kept with the run it was asked for, also when a Retrain replaced that run during the write.
    const qint64 owner = checkpointRuns_.take(path), id = owner ? owner : (currentRun ? rec_.id : 0);
    if (store_ && id)
        if (rl::Status s = rl::run_store_set_checkpoint(*store_, id, path.toStdString(), step); !s) say(q(s.msg));
    emit runsChanged();
    // A failed run's last good weights: the failure message (which names the file) stays up.
    if (!(currentRun && rec_.status == rl::RunStatus::failed)) say(QString("checkpoint saved: %1 (step %2)").arg(path).arg(step));
    emit checkpointSaved(path);
}

void RunController::stopRun(rl::RunStatus status, const QString& why) {
    session_.stop();
    poll();  // the run's last steps reach the store before it ends there
    if (currentRunTraining()) recorded(rl::recorder_end(rec_, status, (why.contains("%1") ? why.arg(lastStep()) : why).toStdString()));
}

// Closing the window (or destroying it without a close, as scripted runs and tests do) ends the run
// in the store: a run still training is interrupted at the step it reached.
void RunController::shutdown() {
    if (shutDown_) return;
    shutDown_ = true;
    poll_.stop();
    stopRun(rl::RunStatus::interrupted, "the window was closed at step %1");
}

rl::Status RunController::startRun(const rl::Config& cfg, const rl::RunStart& start, Origin origin, const RunPause& pause) {
    if (preparing_) return rl::Status::error("a run is being prepared (its text tokenized): wait for it, then try again");
    if (origin == Origin::user) emit takingOver();  // the user's run takes over from a sweep
    runClock_.start();  // Train -> first numbers on screen, tokenizing and allocating included
    // Up front, before the corpus is read: the run with the window's speedup measurement at its end
    // must fit (trainer_create checks again with the real vocabulary, the training alone).
    if (rl::Status v = rl::config_validate(cfg); !v) return v;
    if (rl::Status m = rl::memory_check_config(cfg, origin == Origin::user); !m) return m;
    auto st = prepare(cfg);
    if (!st) return st.status;
    // What train.device = auto chose and why ("no NVIDIA driver ...; training on the CPU"): said on the
    // first run of the window only, then the status line just names the device.
    const QString device = QString::fromUtf8((*st)->model.ops->device);
    QString deviceNote = deviceNoteShown_ ? QString() : q((*st)->device_note);
    if (!deviceNote.isEmpty()) deviceNoteShown_ = true;
    NewRun r{std::move(*st), cfg.name, start, origin};
    r.pauseAt = pause.step, r.pauseCheckpoint = pause.checkpoint;
    adopt(std::move(r));
    say(QString("training %1 on the %2").arg(q(cfg.name), device == "cpu" ? "CPU" : device) +
        (deviceNote.isEmpty() ? QString() : " (" + deviceNote + ")"));
    return rl::Status::ok();
}

rl::Result<std::unique_ptr<rl::TrainState>> RunController::prepare(const rl::Config& cfg) {
    if (!preparer_) return Session::prepare(cfg);
    preparing_ = true;
    auto st = preparer_(cfg);
    preparing_ = false;
    return st;
}

void RunController::adopt(NewRun r) {
    stopRun(rl::RunStatus::interrupted, "replaced by a new run at step %1");
    session_.setMeasureCost(r.origin == Origin::user);  // a sweep's points skip the speedup measurement: the table ranks losses
    session_.launch(std::move(r.state), r.paused, r.pauseAt, r.pauseCheckpoint);
    std::vector<rl::RunRecord> runs = std::move(run_.runs);  // the workspace's runs are not the run's data
    run_ = RunData{};
    run_.runs = std::move(runs);
    run_.runName = r.name;
    const bool history = !r.history.empty();
    run_.curve = std::move(r.history);
    run_.loads = std::move(r.historyLoads);
    const rl::ModelConfig& mc = session_.config().model;
    run_.shape = {mc.d_model, mc.moe.top_k, mc.moe.d_ff_expert, mc.moe.kind == rl::FfnRouting::dense ? 0 : mc.moe.n_experts,
                  rl::cluster_step_pairs(session_.config())};
    emit runReset();
    session_.setProbeText(probeText_.toStdString());
    if (!r.record) {
        rec_.id = 0;  // the previous row was ended by stopRun; this run has none
        rec_.status = rl::RunStatus::finished;
    } else {
        const bool ok = r.sameRow ? rl::recorder_reopen(rec_, r.sameRow)
                                  : rl::recorder_begin(rec_, r.name, rl::config_to_json(session_.config()), r.start);
        if (ok && !r.checkpoint.empty()) rl::recorder_checkpoint(rec_, r.checkpoint);
        recorded(ok);
    }
    storedPoints_ = r.sameRow ? run_.curve.size() : 0;  // a new row gets the history at the next poll
    storedLoads_ = r.sameRow ? run_.loads.size() : 0;
    if (history) poll();
    emit runsChanged();
}

rl::Status RunController::openCheckpoint(const QString& path) {
    auto st = Session::prepareFromCheckpoint(path.toStdString());
    if (!st) return st.status;
    emit takingOver();
    const std::string name = (*st)->cfg.name + " (checkpoint)";
    NewRun r{std::move(*st), name, {}, Origin::user, true};
    r.checkpoint = path.toStdString();
    adopt(std::move(r));
    emit configAdopted(session_.config());
    say("opened " + path + ": paused; Step or Pause continues training (fresh optimizer state)");
    return rl::Status::ok();
}

rl::Status RunController::openModel(const QString& dir) {
    if (preparing_) return rl::Status::error("a run is being prepared; open the model after it");
    preparing_ = true;
    auto st = folderOpener_ ? folderOpener_(dir.toStdString()) : rl::hf_inspect_state(dir.toStdString());
    preparing_ = false;
    if (!st) return st.status;
    emit takingOver();
    const rl::ModelConfig& m = (*st)->cfg.model;
    const QString name = QString::fromStdString((*st)->cfg.name);
    NewRun r{std::move(*st), name.toStdString() + " (model)", {}, Origin::user, false};
    r.record = false;
    adopt(std::move(r));
    emit modelConfigAdopted(session_.config());  // the form shows the model's settings (Train refuses imported ones)
    say(QString("opened %1: %2 layers, %3 experts (top-%4); the probe text is read through it, then %5 tokens of the "
                "embedded corpus for the expert x domain counts. Nothing trains it.")
            .arg(name)
            .arg(m.n_layers)
            .arg(m.moe.kind == rl::FfnRouting::dense ? 0 : m.moe.n_experts)
            .arg(m.moe.top_k)
            .arg(rl::k_inspect_tokens));
    return rl::Status::ok();
}

rl::Status RunController::continueRun(int n) {
    if (sweepActive_) return rl::Status::error("a sweep is running; Continue after it (or Run > Stop sweep)");
    if (session_.frozen()) return rl::Status::error("a model folder opened to inspect is not trained: Continue trains runs of the lab's own");
    if (!session_.active() || rec_.status != rl::RunStatus::finished || session_.diverged())
        return rl::Status::error("Continue needs a finished run in the window; a stored run continues from its checkpoint");
    const int from = lastStep();
    const qint64 id = rec_.id;
    if (!session_.extend(n)) return rl::Status::error("the run cannot be continued (it did not finish)");
    if (rec_.store && id) recorded(rl::recorder_reopen(rec_, id));
    emit runsChanged();
    say(QString("continuing run #%1 from step %2 for %3 more steps (same weights and optimizer)").arg(id).arg(from).arg(n));
    return rl::Status::ok();
}

rl::Result<RunController::NewRun> RunController::resumed(qint64 id, int more, int* stepOut, std::string* inexact) {
    if (!store_) return rl::Status::error("no run store in this session: continue from a checkpoint with File > Load checkpoint");
    auto rec = rl::run_store_get(*store_, id);
    if (!rec) return rec.status;
    if (id == rec_.id && currentRunTraining()) return rl::Status::error("this run is training now; Continue extends it once it finished");
    // The newest checkpoint still on disk, with the step it was written at.
    int step = -1;
    std::string path;
    if (auto cks = rl::run_store_checkpoints(*store_, id); cks)
        for (const auto& [st, p] : *cks)
            if (QFileInfo::exists(q(p))) step = st, path = p;
    if (path.empty())
        return rl::Status::error("run #" + std::to_string(id) + " has no checkpoint on disk to continue from (File > Save checkpoint writes one)");
    auto resumed = rl::run_resume(path, more > 0 ? step + more : 0);
    if (!resumed) return resumed.status;
    std::vector<rl::CurvePoint> history;
    if (auto curve = rl::run_store_curve(*store_, id); curve)
        for (const auto& p : *curve)
            if (p.step <= step) history.push_back(p);
    std::vector<rl::StepLoads> historyLoads;
    if (auto loads = rl::run_store_loads(*store_, id); loads)
        for (auto& p : *loads)
            if (p.step <= step) historyLoads.push_back(std::move(p));
    if (!resumed->exact && !history.empty() && history.back().step == step)
        resumed->state->wall_s = history.back().wall_s;  // wall time keeps rising (x by wall time)
    // The same row when nothing was stored past the checkpoint; else the row's later steps are another
    // history, and the continuation is a new row that starts with the steps up to the checkpoint.
    const bool sameRow = rec->steps == step;
    NewRun r{std::move(resumed->state), sameRow ? rec->name : rec->name + " (from #" + std::to_string(id) + " at step " + std::to_string(step) + ")",
             rl::RunStart{"", rec->tags}};
    r.sameRow = sameRow ? id : 0;
    r.history = std::move(history);
    r.historyLoads = std::move(historyLoads);
    *inexact = resumed->exact ? "" : resumed->note;
    *stepOut = step;
    return r;
}

rl::Status RunController::continueFromCheckpoint(qint64 id, int n) {
    int step = 0;
    std::string inexact;
    auto r = resumed(id, n, &step, &inexact);
    if (!r) return r.status;
    const QString note = q(inexact);
    emit takingOver();
    adopt(std::move(*r));
    emit configAdopted(session_.config());
    say(QString("continuing run #%1 from its checkpoint at step %2 for %3 more steps%4: %5")
            .arg(id)
            .arg(step)
            .arg(n)
            .arg(rec_.id == id ? QString() : QString(" as run #%1").arg(rec_.id))
            .arg(note.isEmpty() ? "exact (optimizer moments, sampler and step restored from the companion file)"
                                : "not exact, fresh optimizer: " + note));
    return rl::Status::ok();
}

rl::Status RunController::resumeRun(qint64 id, const RunPause& pause) {
    int step = 0;
    std::string inexact;
    auto r = resumed(id, 0, &step, &inexact);
    if (!r) return r.status;
    if (!inexact.empty()) return rl::Status::error("run #" + std::to_string(id) + " cannot go on exactly: " + inexact);
    if (!r->sameRow) return rl::Status::error("run #" + std::to_string(id) + " has steps stored past its checkpoint at step " + std::to_string(step));
    if (pause.step && pause.step <= step)
        return rl::Status::error("run #" + std::to_string(id) + " is at step " + std::to_string(step) + ", past the pause asked at " + std::to_string(pause.step));
    auto rec = rl::run_store_get(*store_, id);
    r->start.sweep = rec ? rec->sweep : "";
    r->origin = Origin::sweep, r->pauseAt = pause.step, r->pauseCheckpoint = pause.checkpoint;
    adopt(std::move(*r));
    say(QString("run #%1 goes on from step %2 (exact)").arg(id).arg(step));
    return rl::Status::ok();
}

void RunController::onPaused(int step, float val, const QString& checkpoint, const QString& error) {
    poll();
    const bool row = currentRunTraining();  // the store may have refused the row: the sweep still moves on
    if (!error.isEmpty()) {
        if (row) recorded(rl::recorder_end(rec_, rl::RunStatus::failed, "could not be saved at step " + std::to_string(step) + ": " + error.toStdString(), val));
        emit runsChanged();
        return emit runFailed(error);
    }
    if (row) {
        recorded(rl::recorder_checkpoint(rec_, checkpoint.toStdString(), step));
        recorded(rl::recorder_end(rec_, rl::RunStatus::interrupted,
                                  "paused at step " + std::to_string(step) + " of " + std::to_string(session_.config().train.steps) +
                                      " for its sweep's next rung (Continue from checkpoint goes on)",
                                  val));
    }
    emit runsChanged();
    say(QString("run paused at step %1, validation loss %2").arg(step).arg(val, 0, 'f', 4));
    emit runPaused(step);
}

void RunController::saveCheckpoint(const QString& path) {
    if (!session_.active()) return say("nothing to save yet: train or open a checkpoint first");
    if (rec_.id) checkpointRuns_[path] = rec_.id;
    session_.requestCheckpoint(path.toStdString());
}

void RunController::requestExportCheckpoint(const QString& path) {
    exportFiles_.insert(path);
    session_.requestCheckpoint(path.toStdString(), false);  // the weights only: no companion state
}

void RunController::setProbeText(const QString& text) {
    probeText_ = text;
    session_.setProbeText(text.toStdString());
    run_.history.clear();  // earlier snapshots show another text
    run_.historyEpoch++;
    say("probe text applied");
}

void RunController::requestGenerate(GenerateRequest r) {
    if (!session_.active()) {
        run_.generationError = "Train a model (or open a checkpoint) first: generation runs on its weights.";
        emit arrived(Arrival::Generation);
        return;
    }
    r.sample.seed = (unsigned long long)lastStep() + 1;
    run_.generating = true;
    run_.generationError.clear();
    session_.requestGenerate(r);
    emit arrived(Arrival::Generation);
}

void RunController::requestCostMeasure() {
    run_.measuring = true;
    session_.requestCostMeasure();
}

// New points to the run's row (one transaction a poll).
void RunController::storeNewPoints() {
    if (!rec_.store || !rec_.id || storedPoints_ >= run_.curve.size()) return;
    rec_.pending.assign(run_.curve.begin() + (std::ptrdiff_t)storedPoints_, run_.curve.end());
    rec_.pending_loads.assign(run_.loads.begin() + (std::ptrdiff_t)std::min(storedLoads_, run_.loads.size()), run_.loads.end());
    if (recorded(rl::recorder_flush(rec_))) storedPoints_ = run_.curve.size(), storedLoads_ = run_.loads.size();
}

void RunController::takeProbe() {
    run_.probe = session_.probe();
    rl::ProbeSnapshot past = run_.probe;
    for (auto& l : past.layers) {  // the scrubber replays gates and experts; the rest stays with the newest only
        l.attention.clear();
        l.head_probs.clear();
        l.shared_probs.clear();
        l.head_type.clear();
        l.expert_probs.clear();
    }
    run_.history.push_back(std::move(past));
    if (run_.history.size() > k_maxHistory) {
        thinWhenOver(run_.history, k_maxHistory);
        run_.historyEpoch++;  // indices moved
    }
}

void RunController::poll() {
    // Which data arrived: the view is redrawn only when it shows some of it (software GL makes
    // every frame, and the window composition after it, cost the trainer).
    unsigned arrivedNow = 0;
    rl::StepStats st;
    while (session_.pollStats(st)) {
        if (run_.curve.empty() && runClock_.isValid()) firstStepSeconds_ = runClock_.nsecsElapsed() / 1e9;
        run_.stats.push_back(st);
        run_.curve.push_back(rl::curve_point(st));
        run_.loads.push_back(rl::step_loads(st));
        emaTok_ = emaTok_ == 0 ? st.tok_per_s : 0.9f * emaTok_ + 0.1f * st.tok_per_s;
        arrivedNow |= Arrival::Stats;
    }
    thinWhenOver(run_.stats, k_maxStats);
    storeNewPoints();
    if (session_.acquireProbe()) takeProbe(), arrivedNow |= Arrival::Probe;
    if (session_.acquireSpecialization()) {
        run_.spec = session_.specialization();
        run_.hasSpec = true;
        arrivedNow |= Arrival::Specialization;
    }
    if (session_.acquireCost()) {
        run_.cost = session_.cost();
        run_.hasCost = true;
        run_.measuring = false;
        arrivedNow |= Arrival::Cost;
    }
    if (arrivedNow & Arrival::Stats) emit statsArrived();
    if (arrivedNow) emit arrived(arrivedNow);
}
