#include "sweep_runner.h"

#include <cmath>

#include <QDateTime>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QTimer>

#include "run_groups.h"

SweepRunner::SweepRunner(RunController& runs, QObject* parent) : QObject(parent), runs_(runs) {
    // Each point's end moves the sweep on, after the signal is left (the next launch stops the session).
    connect(&runs_, &RunController::runFinished, this, [this] { pointEnded(true); });
    connect(&runs_, &RunController::runFailed, this, [this] { pointEnded(false); });
    connect(&runs_, &RunController::runPaused, this, [this] { pointEnded(true); });  // a halving's run at its rung
    connect(&runs_, &RunController::takingOver, this, [this] { stop(); });  // the user's run takes over
}

bool SweepRunner::startFile(const QString& path, const std::function<void(rl::Config&)>& adjustBase) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) {
        emit message("cannot read the sweep " + path + ": " + f.errorString());
        return false;
    }
    const QFileInfo info(path);
    return start(QString::fromUtf8(f.readAll()), info.completeBaseName(), info.absolutePath(), adjustBase);
}

bool SweepRunner::start(const QString& json, const QString& defaultName, const QString& baseDir,
                        const std::function<void(rl::Config&)>& adjustBase) {
    auto sw = rl::sweep_parse(json.toStdString(), defaultName.toStdString());
    if (!sw) {
        emit message(QString::fromStdString(sw.status.msg));
        return false;
    }
    auto base = rl::sweep_base_config(*sw, baseDir.toStdString(), rl::workspace_presets_dir(runs_.workspace().toStdString()));
    if (!base) {
        emit message(QString::fromStdString(base.status.msg));
        return false;
    }
    if (sw->method == rl::SweepMethod::halving && !runs_.store()) {
        emit message("sweep " + QString::fromStdString(sw->name) + ": successive halving continues runs from their stored checkpoints, "
                     "and this session has no run store (" + runs_.storeProblem() + ")");
        return false;
    }
    if (adjustBase) adjustBase(*base);
    auto search = rl::tune_begin(*sw, *base);
    if (!search) {
        emit message(QString::fromStdString(search.status.msg));
        return false;
    }
    if (rl::tune_planned_jobs(*search) == 0 && sw->method != rl::SweepMethod::halving) {
        emit message("sweep " + QString::fromStdString(sw->name) + " has no points");
        return false;
    }
    stop();
    queue_ = Queue{QString::fromStdString(sw->name), std::move(*search), {}, 0, 0, 0, 0,
                   // One folder per launch: a sweep name run again never overwrites the files older rows record.
                   QDir(runs_.workspace()).filePath("sweeps/" + QString::fromStdString(sw->name) + "/runs-" +
                                                    QDateTime::currentDateTimeUtc().toString("yyyyMMdd-hhmmss")), {}};
    runs_.setSweepActive(true);
    emit activeChanged(true);
    runNext();
    return true;
}

// The run's stored metrics go back to the search, which decides what trains next.
void SweepRunner::pointEnded(bool ok) {
    if (!queue_) return;
    Queue& q = *queue_;
    rl::TuneMetrics m;
    if (rl::RunStore* store = runs_.store(); ok && store)
        if (auto r = rl::run_store_get(*store, q.pointRun); r) {
            m.ok = true;
            for (int k = 0; k < (int)rl::TuneMetric::count; k++) m.v[k] = runMetric(*r, (rl::TuneMetric)k);
            if (!std::isfinite(m[rl::TuneMetric::val_loss])) m.ok = false;
        }
    if (!m.ok) q.failed++;
    else if (q.job.last) q.finished++;  // a pause at a rung is not a finished run
    rl::tune_report(q.search, q.job, m);
    QTimer::singleShot(0, this, [this] { runNext(); });  // leave the run's signal before the next launch
}

// Starts the next job that builds a run; jobs that do not are stored as failed on the way.
void SweepRunner::runNext() {
    if (!queue_) return;
    Queue& q = *queue_;
    const rl::RunStart start{q.name.toStdString(), {}};
    while (auto j = rl::tune_next(q.search)) {
        if (j->kind == rl::TuneJob::Kind::prune) {
            prune(q, *j);
            continue;
        }
        q.job = *j;
        q.started++;
        rl::Config asFar;
        auto cfg = rl::tune_job_config(q.search, *j, &asFar);
        const QString label = QString::fromStdString(q.search.points[j->point].point.label) +
                              (q.search.sw.seeds > 1 ? QString(" seed#%1").arg(j->replicate + 1) : QString());
        showProgress(label);
        rl::Status st = cfg ? startJob(q, *j, *cfg) : cfg.status;
        if (st) {
            q.pointRun = runs_.currentRunId();
            q.rows[{j->point, j->replicate}] = q.pointRun;
            return;  // its end (or its pause at the rung) moves the sweep on
        }
        // Invalid: a row of its own, failed with the reason, so the sweep's table shows every run; a
        // paused run that cannot go on: its own row says why.
        q.failed++;
        rl::tune_report(q.search, *j, rl::TuneMetrics{});
        emit message(QString("sweep %1: %2 failed: %3").arg(q.name, label, QString::fromStdString(st.msg)));
        const auto row = q.rows.find({j->point, j->replicate});
        if (rl::RunStore* store = runs_.store(); store && j->from_step > 0 && row != q.rows.end()) {
            if (rl::Status e = rl::run_store_end(*store, row->second, rl::RunStatus::failed, "could not go on from its rung: " + st.msg); !e)
                emit message(QString::fromStdString(e.msg));
        } else if (store) {
            if (auto id = rl::recorder_record(*store, rl::tune_job_name(q.search, *j), rl::config_to_json(asFar), start, {},
                                              rl::RunStatus::failed, st.msg);
                !id)
                emit message(QString::fromStdString(id.status.msg));
        }
        emit runs_.runsChanged();
    }
    const QString name = q.name;
    const int done = q.finished, failed = q.failed;
    const bool budget = q.search.budget_hit;
    end();
    emit runs_.runsChanged();
    emit message(QString("sweep %1 done: %2 runs finished, %3 failed%4; the tuning view ranks them")
                     .arg(name)
                     .arg(done)
                     .arg(failed)
                     .arg(budget ? " (stopped at its budget of training steps)" : ""));
    emit finished(done, failed);
}

// A new run from step 0 on CFG, or a paused one continued from its checkpoint; a halving's run stops at its rung.
rl::Status SweepRunner::startJob(Queue& q, const rl::TuneJob& j, const rl::Config& cfg) {
    RunPause pause;
    if (!j.last) {
        QDir().mkpath(q.runsDir);
        pause = {j.to_step, QDir(q.runsDir).filePath(QString("%1-seed%2.safetensors").arg(j.point + 1).arg(j.replicate + 1)).toStdString()};
    }
    if (j.from_step > 0) return runs_.resumeRun(q.rows[{j.point, j.replicate}], pause);
    return runs_.startRun(cfg, rl::RunStart{q.name.toStdString(), {}}, RunController::Origin::sweep, pause);
}

// A run its rung did not keep: stored pruned where it stands, with the rung's verdict.
void SweepRunner::prune(Queue& q, const rl::TuneJob& j) {
    rl::RunStore* store = runs_.store();
    const auto row = q.rows.find({j.point, j.replicate});
    if (!store || row == q.rows.end()) return;
    const float val = (float)q.search.points[j.point].runs[j.replicate][rl::TuneMetric::val_loss];
    if (rl::Status st = rl::run_store_end(*store, row->second, rl::RunStatus::pruned, j.why, val); !st) emit message(QString::fromStdString(st.msg));
    emit runs_.runsChanged();
}

void SweepRunner::stop() {
    if (!queue_) return;
    const QString name = queue_->name;
    const int at = queue_->started, total = rl::tune_planned_jobs(queue_->search);
    const bool pointTraining = queue_->pointRun && queue_->pointRun == runs_.currentRunId() && runs_.currentRunTraining();
    end();
    if (pointTraining) runs_.stopRun(rl::RunStatus::interrupted, "the sweep was stopped at step %1");  // its run ends here too
    emit runs_.runsChanged();
    emit message(QString("sweep %1 stopped at run %2/%3").arg(name).arg(at).arg(total));
}

void SweepRunner::abandon() {
    queue_.reset();
    runs_.setSweepActive(false);
}

void SweepRunner::end() {
    queue_.reset();
    runs_.setSweepActive(false);
    runs_.session().setMeasureCost(true);  // a Continue of the last point measures its speedup again
    emit activeChanged(false);
    showProgress({});
}

void SweepRunner::showProgress(const QString& label) {
    if (!queue_) return emit progress({});
    const int planned = rl::tune_planned_jobs(queue_->search);  // 0: halving's later rungs are not known ahead
    QString t = QString("sweep %1: run %2%3  %4").arg(queue_->name).arg(queue_->started).arg(planned ? QString("/%1").arg(planned) : QString()).arg(label);
    if (queue_->failed) t += QString("  (%1 failed)").arg(queue_->failed);
    emit progress(t);
}
