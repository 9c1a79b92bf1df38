#include "sweep_runner.h"

#include <QFile>
#include <QFileInfo>
#include <QTimer>

SweepRunner::SweepRunner(RunController& runs, QObject* parent) : QObject(parent), runs_(runs) {
    // Each point's end moves the sweep on, after the signal is left (the next launch stops the session).
    connect(&runs_, &RunController::runFinished, this, [this] { pointEnded(true); });
    connect(&runs_, &RunController::runFailed, this, [this] { pointEnded(false); });
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
    if (sw->method == rl::SweepMethod::halving || sw->method == rl::SweepMethod::tpe || sw->seeds > 1) {
        emit message("sweep " + QString::fromStdString(sw->name) + ": the window runs grid and random sweeps of one seed so far; run this one with routelab-cli sweep --grid FILE (its runs land in the same store)");
        return false;
    }
    if (sw->points.empty()) {
        emit message("sweep " + QString::fromStdString(sw->name) + " has no points");
        return false;
    }
    stop();
    if (adjustBase) adjustBase(*base);
    queue_ = Queue{QString::fromStdString(sw->name), *base, sw->points};
    runs_.setSweepActive(true);
    emit activeChanged(true);
    runNext();
    return true;
}

void SweepRunner::pointEnded(bool ok) {
    if (!queue_) return;
    (ok ? queue_->finished : queue_->failed)++;
    QTimer::singleShot(0, this, [this] { runNext(); });  // leave the run's signal before the next launch
}

// Starts the next point that builds a run; points that do not are stored as failed on the way.
void SweepRunner::runNext() {
    if (!queue_) return;
    Queue& q = *queue_;
    const rl::RunStart start{q.name.toStdString(), {}};
    while (q.next < q.points.size()) {
        const size_t i = q.next++;
        const rl::SweepPoint& p = q.points[i];
        rl::Config cfg = q.base;
        rl::Status st = rl::Status::ok();
        for (const auto& set : p.sets)
            if (st = rl::config_apply_override(cfg, set); !st) break;
        cfg.name = rl::sweep_point_name(q.name.toStdString(), p.label);
        showProgress(QString::fromStdString(p.label));
        if (st) st = runs_.startRun(cfg, start, RunController::Origin::sweep);
        if (st) {
            q.pointRun = runs_.currentRunId();
            return;  // its end moves the sweep on
        }
        // Invalid: a row of its own, failed with the reason, so the sweep's table shows every point.
        q.failed++;
        emit message(QString("sweep %1: point %2/%3 failed: %4").arg(q.name).arg(i + 1).arg(q.points.size()).arg(QString::fromStdString(st.msg)));
        if (rl::RunStore* store = runs_.store())
            if (auto id = rl::recorder_record(*store, cfg.name, rl::config_to_json(cfg), start, {}, rl::RunStatus::failed, st.msg); !id)
                emit message(QString::fromStdString(id.status.msg));
        emit runs_.runsChanged();
    }
    const QString name = q.name;
    const int done = q.finished, failed = q.failed, total = (int)q.points.size();
    end();
    emit runs_.runsChanged();
    emit message(QString("sweep %1 done: %2 of %3 points finished, %4 failed; the tuning view ranks them").arg(name).arg(done).arg(total).arg(failed));
    emit finished(done, failed);
}

void SweepRunner::stop() {
    if (!queue_) return;
    const QString name = queue_->name;
    const size_t at = queue_->next, total = queue_->points.size();
    const bool pointTraining = queue_->pointRun && queue_->pointRun == runs_.currentRunId() && runs_.currentRunTraining();
    end();
    if (pointTraining) runs_.stopRun(rl::RunStatus::interrupted, "the sweep was stopped at step %1");  // its point ends here too
    emit runs_.runsChanged();
    emit message(QString("sweep %1 stopped at point %2/%3").arg(name).arg(at).arg(total));
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
    QString t = QString("sweep %1: point %2/%3  %4").arg(queue_->name).arg(queue_->next).arg(queue_->points.size()).arg(label);
    if (queue_->failed) t += QString("  (%1 failed)").arg(queue_->failed);
    emit progress(t);
}
