// Run store (docs/architecture.md §10, §11, §12): one SQLite database per workspace keeps every run's config,
// status, curves, final metrics and checkpoints, so runs can be overlaid, diffed, ranked and exported
// later. The window and the CLI write the same database at once (WAL, busy timeout); a schema version
// in `meta` upgrades older databases in place when they are opened.
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
    float wall_s = 0;  // seconds of training since the run started (overlay by wall time)
};
CurvePoint curve_point(const StepStats& s);
// Names of CurvePoint's fields in order, and the i-th value of a point (CSV columns, plot picker).
const std::vector<std::string>& curve_columns();
float curve_value(const CurvePoint& p, int column);

// running: a process is training it; finished: it reached its last step; interrupted: stopped early
// (closed, killed, or its process died: found on the next open); failed: it could not go on (message);
// pruned: a sweep's successive halving stopped it at a rung (its checkpoint kept: `train --resume` continues it).
enum class RunStatus { running, finished, interrupted, failed, pruned };
const char* run_status_name(RunStatus s);

struct RunRecord {
    int64_t id = 0;
    std::string name;         // the config's name (preset or user's), or the name the user gave it
    std::string created;      // start, UTC, ISO 8601
    std::string ended;        // UTC, ISO 8601 ("" while running)
    std::string config_json;  // the whole validated config
    int steps = 0;            // last stored step
    float final_loss = 0;     // training loss at the last step
    float val_loss = -1;      // validation cross-entropy at the end (-1 = not measured)
    std::string checkpoint;   // last checkpoint written for this run ("" = none)
    RunStatus status = RunStatus::running;
    std::string status_message;  // why it failed or was interrupted
    std::string corpus;       // data.corpus of its config
    int64_t seed = 0;         // train.seed of its config
    std::vector<std::string> tags;
    std::string colour;       // "#rrggbb", "" = the palette's
    std::string sweep;        // the sweep it belongs to ("" = none)
    // Final metrics: means of the last 50 stored steps (-1 = no steps)
    float load_cv = -1, head_cv = -1, dropped = -1, tok_per_s = -1;
    float wall_s = 0;         // seconds of training at the last stored step
};

// Optional facts at the start of a run.
struct RunStart {
    std::string sweep;
    std::vector<std::string> tags;
};
// Each token's experts on the validation text at a run's end (the node-count figures), one layer.
struct TokenSets {
    int layer = 0;
    int k = 0;                     // experts a token may reach (its top-k)
    std::vector<int16_t> experts;  // [tokens, k]; -1 where a token reached fewer (dropped at capacity)
};

constexpr int k_run_store_schema = 3;

struct RunStoreDb;  // owns the sqlite3 handle
struct RunStore {
    std::shared_ptr<RunStoreDb> db;
};

// Opens (creating when missing) the database at path. A file that is not a RouteLab run store,
// or a directory that cannot be written, comes back as a Status saying so.
// An older schema is upgraded in place (its runs and curves kept); runs left `running` by a process
// of this machine that no longer exists are marked `interrupted`, their steps kept.
Result<RunStore> run_store_open(const std::string& path);
// A new run, status running, owned by this process (host, pid and the pid's start time).
Result<int64_t> run_store_begin(RunStore& s, const std::string& name, const std::string& config_json,
                                const RunStart& start = {});
// Appends curve rows, and any steps' loads, in one transaction (the GUI calls this a few times a second).
Status run_store_append(RunStore& s, int64_t run, const std::vector<CurvePoint>& points,
                        const std::vector<StepLoads>& loads = {});
// The run's stored loads from step `from_step` on, oldest first (none for a run stored before schema 3).
Result<std::vector<StepLoads>> run_store_loads(RunStore& s, int64_t run, int from_step = 0);
// Replaces the run's token sets (one per sparse layer); the reader gives them in layer order.
Status run_store_set_token_sets(RunStore& s, int64_t run, const std::vector<TokenSets>& sets);
Result<std::vector<TokenSets>> run_store_token_sets(RunStore& s, int64_t run);
// A stopped run goes on (resume, Continue): running again, owned by this process, its steps kept.
Status run_store_reopen(RunStore& s, int64_t run);
// The run reached its last step: finished, with its validation loss and final metrics.
Status run_store_finish(RunStore& s, int64_t run, float val_loss);
// The run ended otherwise: interrupted or failed, with why (val_loss -1 = not measured).
Status run_store_end(RunStore& s, int64_t run, RunStatus status, const std::string& message, float val_loss = -1);
// A checkpoint written for the run at `step` (-1 = its last stored step): the run's latest, and kept in its list.
Status run_store_set_checkpoint(RunStore& s, int64_t run, const std::string& path, int step = -1);
Result<std::vector<std::pair<int, std::string>>> run_store_checkpoints(RunStore& s, int64_t run);  // (step, path), oldest first
Status run_store_rename(RunStore& s, int64_t run, const std::string& name);
Status run_store_set_tags(RunStore& s, int64_t run, const std::vector<std::string>& tags);
Status run_store_set_colour(RunStore& s, int64_t run, const std::string& colour);
Status run_store_delete(RunStore& s, int64_t run);
Result<std::vector<RunRecord>> run_store_list(RunStore& s);  // newest first
Result<RunRecord> run_store_get(RunStore& s, int64_t run);
Result<std::vector<CurvePoint>> run_store_curve(RunStore& s, int64_t run);
int run_store_schema_version(RunStore& s);

// CSV of a curve: a header of curve_columns(), one row per point.
std::string curve_to_csv(const std::vector<CurvePoint>& points);

// Keys (JSON paths such as "model.n_heads") whose values differ between two configs, with both values.
struct ConfigDiff {
    std::string key, a, b;
};
std::vector<ConfigDiff> config_diff(const std::string& json_a, const std::string& json_b);

}  // namespace rl
