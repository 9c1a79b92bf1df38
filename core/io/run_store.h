// Run store (docs/architecture.md §6, §7): one SQLite database per workspace keeps every run's config, curves,
// final metrics and checkpoint path, so runs can be overlaid, diffed and exported later.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "train/step_stats.h"
#include "util/status.h"

struct sqlite3;

namespace rl {

// One row of a stored curve: the step's loss parts and the routing balance averaged over layers.
struct CurvePoint {
    int step = 0;
    float loss = 0, ce = 0, moh_balance = 0, moe_aux = 0, zloss = 0, lr = 0, grad_norm = 0, tok_per_s = 0;
    float head_cv = 0, load_cv = 0, dropped = 0, entropy = 0;  // layer means (0 where the router is absent)
};
CurvePoint curve_point(const StepStats& s);
// Names of CurvePoint's fields in order, and the i-th value of a point (CSV columns, plot picker).
const std::vector<std::string>& curve_columns();
float curve_value(const CurvePoint& p, int column);

struct RunRecord {
    int64_t id = 0;
    std::string name;         // the config's name (preset or user's)
    std::string created;      // UTC, ISO 8601
    std::string config_json;  // the whole validated config
    int steps = 0;            // last stored step
    float final_loss = 0;     // training loss at the last step
    float val_loss = -1;      // validation cross-entropy at the end (-1 = not measured)
    std::string checkpoint;   // last checkpoint written for this run ("" = none)
};

struct RunStoreDb;  // owns the sqlite3 handle
struct RunStore {
    std::shared_ptr<RunStoreDb> db;
};

// Opens (creating when missing) the database at path. A file that is not a RouteLab run store,
// or a directory that cannot be written, comes back as a Status saying so.
Result<RunStore> run_store_open(const std::string& path);
Result<int64_t> run_store_begin(RunStore& s, const std::string& name, const std::string& config_json);
// Appends curve rows in one transaction (the GUI calls this a few times a second).
Status run_store_append(RunStore& s, int64_t run, const std::vector<CurvePoint>& points);
Status run_store_finish(RunStore& s, int64_t run, float val_loss);
Status run_store_set_checkpoint(RunStore& s, int64_t run, const std::string& path);
Status run_store_delete(RunStore& s, int64_t run);
Result<std::vector<RunRecord>> run_store_list(RunStore& s);  // newest first
Result<std::vector<CurvePoint>> run_store_curve(RunStore& s, int64_t run);

// CSV of a curve: a header of curve_columns(), one row per point.
std::string curve_to_csv(const std::vector<CurvePoint>& points);

// Keys (JSON paths such as "model.n_heads") whose values differ between two configs, with both values.
struct ConfigDiff {
    std::string key, a, b;
};
std::vector<ConfigDiff> config_diff(const std::string& json_a, const std::string& json_b);

}  // namespace rl
