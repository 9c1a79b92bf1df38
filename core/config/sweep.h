// Sweeps (docs/architecture.md §11, docs/tuning.md): a JSON search over config keys, expanded into
// the --set overrides of each point. The CLI (`routelab-cli sweep`) and the window's Sweep dialog run
// the points (config/sweep_search.h decides which, and how far), each a run in the store tagged
// with the sweep's name.
//
//   {"name": "lr-sweep", "preset": "tiny", "set": {"train.steps": 20},
//    "grid": {"train.lr": [0.001, 0.003, 0.01], "model.moe.aux_weight": [0, 0.01]}}       6 points
//   {"preset": "moh-moe", "random": 8, "seed": 1, "seeds": 3,
//    "grid": {"train.lr": {"min": 1e-4, "max": 1e-2, "log": true}, "model.moe.top_k": [1, 2]}}
//   {"preset": "moh-moe", "method": "halving", "random": 27, "min_steps": 100, "max_steps": 900, "eta": 3, ...}
//   {"preset": "moh-moe", "method": "tpe", "trials": 30, ...,
//    "objectives": {"val_loss": "min", "tok_per_s": "max"}, "constraints": ["dropped <= 0.01"]}
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "config/config.h"
#include "tune/search_space.h"
#include "util/status.h"

namespace rl {

// The final metrics of a run that objectives and constraints may name (RunRecord's, and the
// active parameters a token reaches at the nominal top-k).
enum class TuneMetric { val_loss, final_loss, tok_per_s, load_cv, head_cv, dropped, active_params, wall_s, count };
const char* tune_metric_name(TuneMetric m);
bool tune_metric_parse(const std::string& name, TuneMetric& out);

struct SweepObjective {
    TuneMetric metric = TuneMetric::val_loss;
    bool maximise = false;
};
// "dropped <= 0.01": the metric of a run (the mean over its seeds) must be at most / at least bound.
struct SweepConstraint {
    TuneMetric metric = TuneMetric::dropped;
    bool at_most = true;
    double bound = 0;
    std::string text;  // as the user wrote it, normalised ("dropped <= 0.01")
};

struct SweepPoint {
    std::vector<std::string> sets;  // "key=value" overrides of this point (the sweep's "set" first)
    std::string label;              // the grid keys' values, "train.lr=0.003 model.moe.aux_weight=0"
    TunePoint x;                    // one value per Sweep::params (a list's index, a range's value)
};

enum class SweepMethod { grid, random, halving, tpe };
const char* sweep_method_name(SweepMethod m);

struct Sweep {
    std::string name;                 // "name", else the caller's default (the file's stem)
    std::string preset, config_path;  // one of them ("preset" default: "default")
    std::vector<std::string> base_sets;                // "set", as "key=value"
    std::vector<TuneParam> params;                     // the "grid" keys, in the order written
    std::vector<std::vector<std::string>> choices;     // per param: a list's values as JSON text (empty for a range)
    std::vector<SweepPoint> points;  // grid / random / halving: all of them; tpe and hyperband: made while searching
    SweepMethod method = SweepMethod::grid;
    uint64_t seed = 1;      // "seed": the draws of random points and of TPE
    int seeds = 1;          // "seeds": runs of each point, train.seed = the config's seed + 0..seeds-1
    int trials = 0;         // tpe: points to try ("trials")
    int startup = 10;       // tpe: random points before the model ("startup")
    int min_steps = 0, max_steps = 0;  // halving: the first rung and the last (0 = the config's train.steps)
    int eta = 3;                       // halving: 1/eta of a rung's points go on to the next
    bool hyperband = false;            // halving: Hyperband's brackets of random points instead of one
    long long budget = 0;              // total training steps over all runs (0 = no limit)
    std::vector<SweepObjective> objectives;  // default: val_loss, minimised
    std::vector<SweepConstraint> constraints;
};

// Grid: the cartesian product of the lists, in key order as written. Random: `random` points,
// each key drawn from its list (uniformly) or its {"min", "max", "log", "int"} range, from `seed`.
// Every mistake names the key: a range without "random" or "tpe", an empty list, a non-numeric
// bound, a halving without min_steps, an unknown metric.
Result<Sweep> sweep_parse(const std::string& json_text, const std::string& default_name);

// One constraint as a sweep file or the tuning view writes it: "METRIC <= BOUND" or "METRIC >= BOUND".
Result<SweepConstraint> sweep_constraint_parse(const std::string& text);

// The point at x (one value per sw.params): its overrides and label.
SweepPoint sweep_point_at(const Sweep& sw, const TunePoint& x);
// A random point, as "random" draws them (a list uniformly, a range uniformly or log-uniformly).
TunePoint sweep_draw(const Sweep& sw, std::mt19937_64& g);

// A point's run name: the sweep's and the grid values, keys by their last part
// ("beta-aux beta=0.01 aux_weight=0.001"); the full keys stay in the label and the stored config.
std::string sweep_point_name(const std::string& sweep, const std::string& label);

// The config every point of the sweep starts from, the same for the CLI and the window. A relative
// "config" is looked for next to the sweep file first (sweep_dir), then from the working folder; a
// "preset" is a built-in one, else the user's <presets_dir>/<name>.json. The message names the sweep.
Result<Config> sweep_base_config(const Sweep& sw, const std::string& sweep_dir, const std::string& presets_dir);

}  // namespace rl
