// Sweeps in the window (core/config/sweep.h, docs/architecture.md §11.7): the search's jobs
// (config/sweep_search.h: grid, random or TPE points, each on its seeds) run one after another, each
// a run of the run controller with RunStart{sweep}, its stored metrics reported back to the search;
// a run whose config is invalid or which fails is stored as failed and the sweep goes on. Its base
// config is resolved as the CLI resolves it (sweep_base_config: a relative "config" next to the file,
// the user's presets). Successive halving pauses each run at its rung (RunPause: saved
// to <workspace>/sweeps/<name>/runs/), continues the kept ones exactly from there
// (RunController::resumeRun) and stores the others pruned.
#pragma once
#include <QObject>
#include <functional>
#include <map>
#include <optional>

#include "config/sweep_search.h"
#include "run_controller.h"

class SweepRunner : public QObject {
    Q_OBJECT
public:
    explicit SweepRunner(RunController& runs, QObject* parent = nullptr);
    // baseDir: where a relative "config" is looked for first; adjustBase edits the base config before
    // each point's keys (scripted runs: --demo-steps, --corpus). False with the reason in message().
    bool start(const QString& json, const QString& defaultName, const QString& baseDir = {},
               const std::function<void(rl::Config&)>& adjustBase = {});
    bool startFile(const QString& path, const std::function<void(rl::Config&)>& adjustBase = {});
    // Run > Stop sweep: the point in progress ends interrupted, the rest do not run.
    void stop();
    // Closing: the points not started yet are not runs, and nothing more starts (the run controller
    // ends the point in progress).
    void abandon();
    bool active() const { return queue_.has_value(); }

signals:
    void message(QString text);
    void progress(QString text);  // "sweep NAME: run i/n  LABEL" ("" = no sweep)
    void activeChanged(bool on);
    void finished(int finished, int failed);

private:
    void runNext();
    void pointEnded(bool ok);
    void end();  // no sweep any more
    void showProgress(const QString& label);
    RunController& runs_;
    struct Queue {
        QString name;
        rl::TuneSearch search;
        rl::TuneJob job;       // the run training now
        int started = 0, finished = 0, failed = 0;
        int64_t pointRun = 0;  // the store row of the run training now
        QString runsDir;       // halving: where the paused runs are saved
        std::map<std::pair<int, int>, int64_t> rows;  // (point, seed) -> its store row
    };
    rl::Status startJob(Queue& q, const rl::TuneJob& j, const rl::Config& cfg);
    void prune(Queue& q, const rl::TuneJob& j);
    std::optional<Queue> queue_;
};
