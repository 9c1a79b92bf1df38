#include "io/run_recorder.h"

#include <cstdlib>
#include <filesystem>

namespace fs = std::filesystem;

namespace rl {

std::string workspace_default() {
    const char* x = std::getenv("XDG_DATA_HOME");
    const char* home = std::getenv("HOME");
    const std::string base = x && *x ? x : std::string(home && *home ? home : ".") + "/.local/share";
    return base + "/RouteLab/RouteLab";
}

std::string workspace_store_path(const std::string& workspace) { return (fs::path(workspace) / "runs.sqlite").string(); }

std::string workspace_presets_dir(const std::string& workspace) { return (fs::path(workspace) / "presets").string(); }

Result<RunStore> workspace_open_store(const std::string& workspace) {
    std::error_code ec;
    fs::create_directories(workspace, ec);
    if (ec) return Status::error("cannot create the workspace folder " + workspace + ": " + ec.message() + " (choose another with --workspace DIR)");
    return run_store_open(workspace_store_path(workspace));
}

namespace {
// A failed write: recording stops (the run goes on), and error says why.
bool stop_recording(RunRecorder& r, const Status& s) {
    r.error = s.msg;
    r.store.reset();
    r.pending.clear();
    r.pending_loads.clear();
    return false;
}
}  // namespace

bool recorder_begin(RunRecorder& r, const std::string& name, const std::string& config_json, const RunStart& start) {
    r.id = 0;
    r.pending.clear();
    r.pending_loads.clear();
    if (!r.store) return false;
    auto id = run_store_begin(*r.store, name, config_json, start);
    if (!id) return stop_recording(r, id.status);
    r.id = *id, r.status = RunStatus::running;
    return true;
}

bool recorder_reopen(RunRecorder& r, int64_t id) {
    r.id = 0;
    r.pending.clear();
    r.pending_loads.clear();
    if (!r.store) return false;
    if (Status s = run_store_reopen(*r.store, id); !s) return stop_recording(r, s);
    r.id = id, r.status = RunStatus::running;
    return true;
}

void recorder_add(RunRecorder& r, const StepStats& st) {
    if (!r.store || !r.id) return;
    r.pending.push_back(curve_point(st));
    r.pending_loads.push_back(step_loads(st));
}

bool recorder_flush(RunRecorder& r) {
    if (!r.store || !r.id || r.pending.empty()) return true;
    if (Status s = run_store_append(*r.store, r.id, r.pending, r.pending_loads); !s) return stop_recording(r, s);
    r.pending.clear();
    r.pending_loads.clear();
    return true;
}

bool recorder_token_sets(RunRecorder& r, const std::vector<TokenSets>& sets) {
    if (!r.store || !r.id) return false;
    if (Status s = run_store_set_token_sets(*r.store, r.id, sets); !s) return stop_recording(r, s);
    return true;
}

bool recorder_checkpoint(RunRecorder& r, const std::string& path, int step) {
    if (!recorder_flush(r) || !r.store || !r.id) return false;
    if (Status s = run_store_set_checkpoint(*r.store, r.id, path, step); !s) return stop_recording(r, s);
    return true;
}

bool recorder_end(RunRecorder& r, RunStatus status, const std::string& why, float val_loss) {
    if (!r.store || !r.id || r.status != RunStatus::running) return false;
    recorder_flush(r);
    if (!r.store) return false;
    r.status = status;
    const Status s = status == RunStatus::finished ? run_store_finish(*r.store, r.id, val_loss)
                                                   : run_store_end(*r.store, r.id, status, why, val_loss);
    return s ? true : stop_recording(r, s);
}

Result<int64_t> recorder_record(RunStore& store, const std::string& name, const std::string& config_json, const RunStart& start,
                                const std::vector<CurvePoint>& curve, RunStatus status, const std::string& why, float val_loss,
                                const std::vector<StepLoads>& loads) {
    auto id = run_store_begin(store, name, config_json, start);
    if (!id) return id.status;
    Status s = curve.empty() ? Status::ok() : run_store_append(store, *id, curve, loads);
    if (s) s = status == RunStatus::finished ? run_store_finish(store, *id, val_loss) : run_store_end(store, *id, status, why, val_loss);
    if (!s) return s;
    return *id;
}

}  // namespace rl
