// Sweeps (docs/architecture.md §12): a JSON grid or random search over config keys, expanded into
// the --set overrides of each point. The CLI (`routelab-cli sweep`) and the window's Sweep dialog run
// the points one after another, each a run in the store tagged with the sweep's name.
//
//   {"name": "lr-sweep", "preset": "tiny", "set": {"train.steps": 20},
//    "grid": {"train.lr": [0.001, 0.003, 0.01], "model.moe.aux_weight": [0, 0.01]}}       6 points
//   {"preset": "moh-moe", "random": 8, "seed": 1,
//    "grid": {"train.lr": {"min": 1e-4, "max": 1e-2, "log": true}, "model.moe.top_k": [1, 2]}}
#pragma once
#include <string>
#include <vector>

#include "util/status.h"

namespace rl {

struct SweepPoint {
    std::vector<std::string> sets;  // "key=value" overrides of this point (the sweep's "set" first)
    std::string label;              // the grid keys' values, "train.lr=0.003 model.moe.aux_weight=0"
};
struct Sweep {
    std::string name;                 // "name", else the caller's default (the file's stem)
    std::string preset, config_path;  // one of them ("preset" default: "default")
    std::vector<SweepPoint> points;
};

// Grid: the cartesian product of the lists, in key order as written. Random: `random` points,
// each key drawn from its list (uniformly) or its {"min", "max", "log", "int"} range, from `seed`.
// Every mistake names the key: a range without "random", an empty list, a non-numeric bound.
Result<Sweep> sweep_parse(const std::string& json_text, const std::string& default_name);

}  // namespace rl
