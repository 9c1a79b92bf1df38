// Writes the seed inputs of tests/fuzz/corpus/ that only our own writers can make: a tiny checkpoint
// (MoH + MoE, 1 layer, C 8) and a plain safetensors file, a current run store with one run, and a
// trimmed copy of tests/data/runs-v1.sqlite (its first steps only, so each input stays small).
// Built with the fuzz targets; run once: fuzz_make_seeds SOURCE_DIR. The outputs are committed.
#include <cstdio>
#include <filesystem>
#include <string>

#include <sqlite3.h>

#include "config/config.h"
#include "io/checkpoint.h"
#include "io/run_store.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "train/tokenizer.h"

namespace fs = std::filesystem;
using namespace rl;

namespace {

int fail(const std::string& what) {
    std::fprintf(stderr, "make_seeds: %s\n", what.c_str());
    return 1;
}

const char* k_tiny_config = R"({
  "name": "fuzz-seed",
  "model": {"d_model": 8, "n_layers": 1, "n_heads": 2, "n_kv_heads": 1, "head_dim": 4, "seq_len": 8,
            "attention": {"use_wo": true, "positional": "cope", "cope_npos": 4,
                          "heads": {"kind": "moh", "n_shared": 1, "n_active_routed": 1}},
            "ffn": {"d_ff": 8}, "moe": {"kind": "moe", "n_experts": 2, "top_k": 1, "d_ff_expert": 8}},
  "train": {"steps": 4, "batch_size": 2}
})";

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) return fail("usage: fuzz_make_seeds SOURCE_DIR");
    const fs::path src = argv[1], seeds = src / "tests/fuzz/corpus";

    auto cfg = config_from_json(k_tiny_config);
    if (!cfg) return fail(cfg.status.msg);
    auto tok = Tokenizer::train(TokenizerKind::word, {"the cat sat on the mat .", "a dog ran ."}, 0);
    if (!tok) return fail(tok.status.msg);
    cfg->model.vocab_size = tok->vocab_size();
    if (Status s = config_validate(*cfg); !s) return fail(s.msg);
    Model m;
    model_create(m, cfg->model, 1, cfg->train.init_std);
    if (Status s = checkpoint_save((seeds / "fuzz_safetensors/tiny-checkpoint.safetensors").string(), m, *cfg, *tok, {3, 0.5f, ""}); !s)
        return fail(s.msg);
    const float two[6] = {1, 2, 3, 4, 5, 6};
    if (Status s = safetensors_write((seeds / "fuzz_safetensors/plain.safetensors").string(),
                                     {{"a", {2, 3}, two}, {"b", {2}, two + 4}}, {{"format", "pt"}});
        !s)
        return fail(s.msg);

    const fs::path store_path = seeds / "fuzz_run_store/runs-v2.sqlite";
    fs::remove(store_path);
    {
        auto store = run_store_open(store_path.string());
        if (!store) return fail(store.status.msg);
        auto run = run_store_begin(*store, "fuzz-seed", config_to_json(*cfg), {"seed-sweep", {"a", "b"}});
        if (!run) return fail(run.status.msg);
        std::vector<CurvePoint> pts;
        for (int step = 1; step <= 3; step++) pts.push_back({step, 3.f / step, 2.9f / step});
        if (Status s = run_store_append(*store, *run, pts); !s) return fail(s.msg);
        if (Status s = run_store_set_checkpoint(*store, *run, "runs/fuzz-seed/checkpoint.safetensors"); !s) return fail(s.msg);
        if (Status s = run_store_finish(*store, *run, 2.5f); !s) return fail(s.msg);
    }
    // One file, no WAL beside it: the fuzzer feeds the database file alone.
    sqlite3* h = nullptr;
    if (sqlite3_open(store_path.c_str(), &h) != SQLITE_OK) return fail("cannot reopen the v2 seed");
    sqlite3_exec(h, "PRAGMA journal_mode=DELETE; PRAGMA page_size=512; VACUUM;", nullptr, nullptr, nullptr);
    sqlite3_close(h);

    const fs::path v1 = seeds / "fuzz_run_store/runs-v1-trimmed.sqlite";
    fs::copy_file(src / "tests/data/runs-v1.sqlite", v1, fs::copy_options::overwrite_existing);
    if (sqlite3_open(v1.c_str(), &h) != SQLITE_OK) return fail("cannot open the v1 copy");
    char* err = nullptr;
    if (sqlite3_exec(h, "DELETE FROM curves WHERE step > 3; PRAGMA page_size=512; VACUUM;", nullptr, nullptr, &err) != SQLITE_OK)
        return fail(std::string("trimming the v1 copy: ") + (err ? err : "?"));
    sqlite3_close(h);
    std::printf("make_seeds: wrote the seeds under %s\n", seeds.c_str());
    return 0;
}
