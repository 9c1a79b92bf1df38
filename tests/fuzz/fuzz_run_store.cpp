// Bytes as a workspace's runs.sqlite -> run_store_open (format check, schema upgrade, orphaned runs
// marked interrupted), run_store_list, and for the first runs run_store_get, run_store_curve,
// run_store_checkpoints, the routing loads and token sets (cluster --run), the CSV export and the
// config diff the Runs dock shows.
#include <cstdint>
#include <filesystem>
#include <string>

#include "fuzz_util.h"
#include "io/run_store.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::string path = rl_fuzz::temp_path("runs.sqlite");
    // A WAL or shared-memory file left by the previous input would be read as part of this one.
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) std::filesystem::remove(path + suffix);
    rl_fuzz::write_file(path, data, size);
    auto store = rl::run_store_open(path);
    if (!store) {
        rl_fuzz::require(!store.status.msg.empty(), "run_store_open failed without a message");
        return 0;
    }
    auto runs = rl::run_store_list(*store);
    if (!runs) {
        rl_fuzz::require(!runs.status.msg.empty(), "run_store_list failed without a message");
        return 0;
    }
    size_t n = 0;
    for (const rl::RunRecord& r : *runs) {
        if (n++ == 4) break;  // a few rows cover the readers; the rest only cost time
        auto rec = rl::run_store_get(*store, r.id);
        if (!rec) rl_fuzz::require(!rec.status.msg.empty(), "run_store_get failed without a message");
        auto curve = rl::run_store_curve(*store, r.id);
        if (curve) (void)rl::curve_to_csv(*curve);
        else rl_fuzz::require(!curve.status.msg.empty(), "run_store_curve failed without a message");
        (void)rl::run_store_checkpoints(*store, r.id);
        auto loads = rl::run_store_loads(*store, r.id);
        if (loads)
            for (const rl::StepLoads& p : *loads) rl_fuzz::require(p.expert.size() == p.head.size(), "loads rows out of step");
        auto sets = rl::run_store_token_sets(*store, r.id);
        if (sets)
            for (const rl::TokenSets& t : *sets) rl_fuzz::require(t.k > 0 && t.experts.size() % t.k == 0, "a token set's size is not k a token");
        (void)rl::config_diff(r.config_json, runs->front().config_json);
    }
    return 0;
}
