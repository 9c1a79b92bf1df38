// The search a sweep makes (docs/tuning.md): which run to train next, how far, and which to prune.
// Ask and tell: tune_next() gives a job, the caller trains it (the CLI in its own loop, the window
// through its run controller) and tune_report()s its metrics; no Qt, no store, no threads here.
//
//   grid, random  every point's seeds trained to the last step, one after another
//   halving       successive halving by resume (Jamieson & Talwalkar 2016; Li et al. 2018 for
//                 Hyperband's brackets): all points to min_steps, the best 1/eta of them (by the first
//                 objective's mean over seeds, feasible points first) continued from their checkpoint
//                 to min_steps·eta, ..., to max_steps; the others pruned where they stand
//   tpe           `trials` points, each suggested by the TPE (tune/tpe.h) from the finished ones
//
// Each run's config says train.steps = max_steps from its first step, so a run continued past a rung
// has the learning-rate schedule of an unbroken run: resumed exactly, it is that run.
#pragma once
#include <array>
#include <deque>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "config/sweep.h"

namespace rl {

// One run's metrics at the step it reached (RunRecord's final metrics and the validation loss there).
struct TuneMetrics {
    bool ok = false;  // false: the run failed, and its point drops out
    std::array<double, (size_t)TuneMetric::count> v{};
    double& operator[](TuneMetric m) { return v[(size_t)m]; }
    double operator[](TuneMetric m) const { return v[(size_t)m]; }
};

struct TuneJob {
    enum class Kind { train, prune } kind = Kind::train;
    int point = 0, replicate = 0;    // the run: the point's replicate-th seed
    int from_step = 0, to_step = 0;  // train: on from its checkpoint at from_step (0 = a new run) to to_step
    bool last = false;               // train: to_step is the run's last step (it finishes; else it pauses)
    int bracket = 0, rung = 0;
    std::string why;                 // prune: the rung's verdict, for the run's status message
};

struct TunePointState {
    enum class State { waiting, pruned, finished, failed };
    SweepPoint point;
    State state = State::waiting;
    int bracket = 0;
    int steps = 0;                  // the step its runs reached (all seeds alike)
    std::vector<TuneMetrics> runs;  // per seed, at `steps` (ok false until reported)
    int reported = 0;               // seeds reported at `steps`
};

// A decided rung: its points ranked (feasible by the first objective's mean, then infeasible by
// violation), the first `kept` went on.
struct TuneRung {
    int bracket = 0, rung = 0, steps = 0;
    std::vector<int> points;
    std::vector<double> value, violation;  // per ranked point: the first objective's mean, the constraints' violation
    int kept = 0;
};

struct TuneBracket {
    std::vector<int> rung_steps;  // rising, the last = max_steps
    int rung = 0;
    int size = 0;                 // points it starts with
    std::vector<int> alive;       // its points still training
    bool started = false;
};

struct TuneSearch {
    Sweep sw;
    Config base;            // the sweep's base config with its "set" applied
    int max_steps = 0;
    std::vector<TunePointState> points;
    std::vector<TuneRung> rungs;  // decided, in order
    std::vector<TuneBracket> brackets;
    size_t bracket = 0;
    long long steps_spent = 0;    // training steps over all runs so far
    bool budget_hit = false;      // the next job would have gone past sw.budget: the search stopped
    std::deque<TuneJob> queue;
    std::mt19937_64 rng;
    int next_point = 0;           // grid/random: the next point to start
};

// The search over sw from base (the sweep's "set" is applied here; a bad one is the error).
Result<TuneSearch> tune_begin(const Sweep& sw, const Config& base);
// The next job, or none when the search is over. Every train job must be reported before the next call.
std::optional<TuneJob> tune_next(TuneSearch& t);
void tune_report(TuneSearch& t, const TuneJob& job, const TuneMetrics& m);
// A job's run config: the base, the point's keys, train.steps = max_steps (halving, or a sweep that
// gives "max_steps"), train.seed = the point's + replicate, named tune_job_name(). Validated; as_far
// (when given) gets the config as far as it was built, the one a failed run's row keeps.
Result<Config> tune_job_config(const TuneSearch& t, const TuneJob& job, Config* as_far = nullptr);
// The run's name: the sweep's, the point's values and, with several seeds, its seed ("s lr=0.003 seed=2").
std::string tune_job_name(const TuneSearch& t, const TuneJob& job);
// The train jobs the search will give when it is known ahead (grid, random: points × seeds; tpe:
// trials × seeds); 0 for halving, whose later rungs depend on the budget.
int tune_planned_jobs(const TuneSearch& t);

// Per point, over the seeds that reported at its last step: each objective's mean, min, max and sd,
// and the violation of the constraints by the means (0 = feasible).
struct TuneSummary {
    int point = 0, runs = 0, steps = 0;
    TunePointState::State state = TunePointState::State::waiting;
    std::vector<double> mean, lo, hi, sd;  // per objective, in its own sign
    double violation = 0;
};
std::vector<TuneSummary> tune_summaries(const TuneSearch& t);
// The finished points on the feasible Pareto front of their means, by the first objective
// (one objective: the best point).
std::vector<int> tune_front(const TuneSearch& t);
// Which searched keys matter (tune/importance.h, PED-ANOVA: the top 10% of the finished points
// against all of them), one share per Sweep::params summing to 1; ranked by the first objective's
// mean (several objectives: the constrained Pareto rank first). Empty below 10 finished points.
std::vector<double> tune_importances(const TuneSearch& t);
// The violation of sw's constraints by a run's (or a mean's) metrics: the sum of how far each is
// past its bound, relative to the bound (0 = feasible).
double tune_violation(const Sweep& sw, const TuneMetrics& m);

}  // namespace rl
