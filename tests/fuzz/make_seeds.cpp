// Writes the seed inputs of tests/fuzz/corpus/ that only our own writers can make: a tiny checkpoint
// (MoH + MoE, 1 layer, C 8) and a plain safetensors file, a current run store with one run, and a
// trimmed copy of tests/data/runs-v1.sqlite (its first steps only, so each input stays small), and a
// Hugging Face model folder in fuzz_hf_model's one-input form (a Mixtral of C 8 written by the HF export,
// with and without a shard index, and a small byte-level BPE tokenizer.json).
// Built with the fuzz targets; run once: fuzz_make_seeds SOURCE_DIR. The outputs are committed.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <filesystem>
#include <string>

#include <sqlite3.h>

#include "config/config.h"
#include "io/checkpoint.h"
#include "io/export.h"
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

const char* k_hf_config = R"({
  "name": "fuzz-hf-seed",
  "model": {"d_model": 8, "n_layers": 1, "n_heads": 2, "n_kv_heads": 1, "head_dim": 4, "seq_len": 8, "vocab_size": 12,
            "final_norm": true, "attention": {"use_wo": true, "positional": "rope"},
            "ffn": {"d_ff": 8}, "moe": {"kind": "moe", "n_experts": 2, "top_k": 1, "d_ff_expert": 4}}
})";

// A byte-level BPE tokenizer.json with an added special token and a template (tokenizers' format).
const char* k_tokenizer = R"({"version":"1.0","added_tokens":[{"id":11,"content":"<s>","single_word":false,"lstrip":false,
"rstrip":false,"normalized":false,"special":true}],"normalizer":{"type":"NFC"},"pre_tokenizer":{"type":"Sequence",
"pretokenizers":[{"type":"Split","pattern":{"Regex":"(?i:'s|'t)|\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"},
"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]},
"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A",
"type_id":0}}],"pair":[{"Sequence":{"id":"A","type_id":0}}],"special_tokens":{"<s>":{"id":"<s>","ids":[11],"tokens":["<s>"]}}},
"decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true},"model":{"type":"BPE",
"dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,
"byte_fallback":false,"ignore_merges":false,"vocab":{"a":0,"b":1,"c":2,"d":3,"\u0120":4,"ab":5,"abc":6,"1":7,"2":8,
"\u010a":9,"\u0120a":10},"merges":["a b","ab c",["\u0120","a"]]}})";

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// fuzz_hf_model's input: config.json, the index, model.safetensors and tokenizer.json, split at its marker.
Status hf_seeds(const fs::path& seeds) {
    auto cfg = config_from_json(k_hf_config);
    if (!cfg) return cfg.status;
    if (Status s = config_validate(*cfg); !s) return s;
    Model m;
    model_create(m, cfg->model, 2, 0.2f);
    const fs::path tmp = fs::temp_directory_path() / "routelab_make_seeds_hf";
    if (Status s = export_hf_weights(tmp.string(), m); !s) return s;
    const std::string part = "\n--routelab-part--\n", config = export_hf_config(*cfg).dump(1);
    const std::string weights = slurp(tmp / "model.safetensors");
    fs::remove_all(tmp);
    const std::string index = R"({"metadata": {"total_size": 1}, "weight_map": {"model.embed_tokens.weight": "model.safetensors"}})";
    fs::create_directories(seeds / "fuzz_hf_model");
    std::ofstream(seeds / "fuzz_hf_model/mixtral-micro", std::ios::binary) << config << part << part << weights << part << k_tokenizer;
    std::ofstream(seeds / "fuzz_hf_model/mixtral-micro-index", std::ios::binary) << config << part << index << part << weights << part;
    return Status::ok();
}

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

    // runs-v2.sqlite, kept beside it, was made by this tool before schema 3: the upgrade path.
    const fs::path store_path = seeds / "fuzz_run_store/runs-v3.sqlite";
    fs::remove(store_path);
    {
        auto store = run_store_open(store_path.string());
        if (!store) return fail(store.status.msg);
        auto run = run_store_begin(*store, "fuzz-seed", config_to_json(*cfg), {"seed-sweep", {"a", "b"}});
        if (!run) return fail(run.status.msg);
        std::vector<CurvePoint> pts;
        for (int step = 1; step <= 3; step++) pts.push_back({step, 3.f / step, 2.9f / step});
        std::vector<StepLoads> loads;
        for (int step = 1; step <= 3; step++) loads.push_back({step, {{0.5f, 0.25f, 0.25f}, {}}, {{}, {0.6f, 0.4f}}});
        if (Status s = run_store_append(*store, *run, pts, loads); !s) return fail(s.msg);
        if (Status s = run_store_set_token_sets(*store, *run, {{0, 2, {0, 1, 2, -1, 1, 0}}}); !s) return fail(s.msg);
        if (Status s = run_store_set_checkpoint(*store, *run, "runs/fuzz-seed/checkpoint.safetensors"); !s) return fail(s.msg);
        if (Status s = run_store_finish(*store, *run, 2.5f); !s) return fail(s.msg);
    }
    // One file, no WAL beside it: the fuzzer feeds the database file alone.
    sqlite3* h = nullptr;
    if (sqlite3_open(store_path.c_str(), &h) != SQLITE_OK) return fail("cannot reopen the run store seed");
    sqlite3_exec(h, "PRAGMA journal_mode=DELETE; PRAGMA page_size=512; VACUUM;", nullptr, nullptr, nullptr);
    sqlite3_close(h);

    const fs::path v1 = seeds / "fuzz_run_store/runs-v1-trimmed.sqlite";
    fs::copy_file(src / "tests/data/runs-v1.sqlite", v1, fs::copy_options::overwrite_existing);
    if (sqlite3_open(v1.c_str(), &h) != SQLITE_OK) return fail("cannot open the v1 copy");
    char* err = nullptr;
    if (sqlite3_exec(h, "DELETE FROM curves WHERE step > 3; PRAGMA page_size=512; VACUUM;", nullptr, nullptr, &err) != SQLITE_OK)
        return fail(std::string("trimming the v1 copy: ") + (err ? err : "?"));
    sqlite3_close(h);
    if (Status s = hf_seeds(seeds); !s) return fail(s.msg);
    std::printf("make_seeds: wrote the seeds under %s\n", seeds.c_str());
    return 0;
}
