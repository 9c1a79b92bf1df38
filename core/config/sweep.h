// Sweeps (docs/architecture.md §11): a JSON grid or random search over config keys, expanded into
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

#include "config/config.h"
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

// A point's run name: the sweep's and the grid values, keys by their last part
// ("beta-aux beta=0.01 aux_weight=0.001"); the full keys stay in the label and the stored config.
std::string sweep_point_name(const std::string& sweep, const std::string& label);

// The config every point of the sweep starts from, the same for the CLI and the window. A relative
// "config" is looked for next to the sweep file first (sweep_dir), then from the working folder; a
// "preset" is a built-in one, else the user's <presets_dir>/<name>.json. The message names the sweep.
Result<Config> sweep_base_config(const Sweep& sw, const std::string& sweep_dir, const std::string& presets_dir);

}  // namespace rl
