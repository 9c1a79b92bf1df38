// A run's bookkeeping in its workspace (docs/architecture.md §10): the one place that names a
// workspace's files, and one recorder of a run's store row that the CLI, the window, lessons and
// sweeps all use, so a run is kept the same way whoever trains it. A store that cannot be written
// never stops a run: the recorder says why once (its `error`) and the run goes on unstored.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "io/run_store.h"
#include "util/status.h"

namespace rl {

// The per-user workspace the window and the CLI share when none is given:
// $XDG_DATA_HOME (or $HOME/.local/share)/RouteLab/RouteLab.
std::string workspace_default();
// <workspace>/runs.sqlite, <workspace>/presets (the user's presets, <name>.json).
std::string workspace_store_path(const std::string& workspace);
std::string workspace_presets_dir(const std::string& workspace);
// Creates the folder when missing and opens its run store; the message says what to do.
Result<RunStore> workspace_open_store(const std::string& workspace);

// One run's row. `store` is shared with the caller's other rows (a sweep's points, the window's
// later runs); `pending` curve points are written by recorder_flush (the CLI every few steps, the
// window at each poll).
struct RunRecorder {
    std::optional<RunStore> store;  // none: not recording (no store, or a write failed)
    int64_t id = 0;                 // the row (0 = none yet)
    RunStatus status = RunStatus::finished;  // the row's status as this recorder last wrote it
    std::vector<CurvePoint> pending;
    std::vector<StepLoads> pending_loads;  // the pending steps' routing loads (stored with them)
    std::string error;              // why recording stopped (said once by the caller)
};

// A new row for the run (status running). False (error set) when the store cannot take it.
bool recorder_begin(RunRecorder& r, const std::string& name, const std::string& config_json, const RunStart& start = {});
// An earlier row goes on (resume, Continue): running again, its steps kept.
bool recorder_reopen(RunRecorder& r, int64_t id);
// A step: its curve point and its routing loads.
void recorder_add(RunRecorder& r, const StepStats& st);
bool recorder_flush(RunRecorder& r);
// A checkpoint written for the run at `step` (-1 = its last stored step); pending points first.
bool recorder_checkpoint(RunRecorder& r, const std::string& path, int step = -1);
// Each token's experts on the validation text (the run's end; replaces earlier sets).
bool recorder_token_sets(RunRecorder& r, const std::vector<TokenSets>& sets);
// The run's end, once: a no-op unless this recorder's row is still running. finished records the
// validation loss and final metrics; interrupted and failed keep `why`.
bool recorder_end(RunRecorder& r, RunStatus status, const std::string& why, float val_loss = -1);
// A whole run at once (a lesson's earlier runs, a sweep point that could not start): its row, its
// curve and its end. The row's id, or the store's error.
Result<int64_t> recorder_record(RunStore& store, const std::string& name, const std::string& config_json, const RunStart& start,
                                const std::vector<CurvePoint>& curve, RunStatus status, const std::string& why, float val_loss = -1,
                                const std::vector<StepLoads>& loads = {});

}  // namespace rl
