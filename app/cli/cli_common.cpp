// routelab-cli: messages, number and config flags shared by the commands.
#include <cmath>
#include <cstdio>
#include <iostream>

#include "cli.h"
#include "config/presets.h"
#include "io/run_recorder.h"
#include "train/corpus.h"
#include "util/atomic_file.h"

using namespace rl;

namespace cli {

int fail(const std::string& msg) {
    std::cerr << "error: " << msg << "\n";
    return 1;
}
int usage(const std::string& msg) {
    std::cerr << "error: " << msg << "\n\n" << usage_text();
    return 2;
}

bool parse_int(const std::string& s, long long lo, long long hi, long long& out) {
    try {
        size_t pos = 0;
        out = std::stoll(s, &pos);
        return pos == s.size() && out >= lo && out <= hi;
    } catch (...) {
        return false;
    }
}
bool parse_float(const std::string& s, double& out) {
    try {
        size_t pos = 0;
        out = std::stod(s, &pos);
        return pos == s.size() && std::isfinite(out);
    } catch (...) {
        return false;
    }
}

// --preset / --config plus --set overrides; validated once, here.
Result<Config> load_config(const Args& a) {
    Result<Config> cfg = Status::error("");
    if (a.has("preset") && a.has("config")) return Status::error("give --preset or --config, not both");
    if (a.has("config")) cfg = config_load(a.opt.at("config"));
    else cfg = preset_load(a.has("preset") ? a.opt.at("preset") : "default");
    if (!cfg) return cfg.status;
    for (const auto& s : a.sets)
        if (Status st = config_apply_override(*cfg, s); !st) return st;
    if (a.has("device"))  // --device D is --set train.device=D
        if (Status st = config_apply_override(*cfg, "train.device=" + a.opt.at("device")); !st) return st;
    if (Status st = config_validate(*cfg); !st) return st;
    return cfg;
}

// Resolves vocab_size the way training will: from the tokenizer built on the configured corpus.
Result<int> resolve_vocab(const Config& cfg) {
    if (cfg.model.vocab_size > 0) return cfg.model.vocab_size;
    auto ds = dataset_build(cfg.data);
    if (!ds) return ds.status;
    return ds->tok.vocab_size();
}

std::string fmt_eta(double s) {
    char b[32];
    std::snprintf(b, sizeof b, "%d:%02d", (int)s / 60, (int)s % 60);
    return b;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// --steps, --batch, --seed and --corpus onto the loaded config, then the config check again.
// 0, or the exit code of the bad value.
int apply_train_flags(const Args& a, Config& cfg) {
    long long v;
    if (a.has("steps")) {
        if (!parse_int(a.opt.at("steps"), 0, 100000000, v)) return usage("--steps must be a non-negative integer");
        cfg.train.steps = (int)v;
    }
    if (a.has("batch")) {
        if (!parse_int(a.opt.at("batch"), 1, 4096, v)) return usage("--batch must be an integer in 1..4096");
        cfg.train.batch_size = (int)v;
    }
    if (a.has("seed")) {
        if (!parse_int(a.opt.at("seed"), 0, 4294967295LL, v)) return usage("--seed must be a non-negative integer");
        cfg.train.seed = (unsigned)v;
    }
    if (a.has("corpus")) cfg.data.corpus = a.opt.at("corpus");
    if (Status s = config_validate(cfg); !s) return fail(s.msg);
    return 0;
}

std::string workspace_of(const Args& a) { return a.has("workspace") ? a.opt.at("workspace") : workspace_default(); }

// Writes `text` to dir/name whole or not at all (the old file stays); false after the message.
bool write_file(const std::string& dir, const std::string& name, const std::string& text, const char* hint) {
    if (Status s = atomic_file_write(dir + "/" + name, text); !s) {
        fail(s.msg + " (" + hint + ")");
        return false;
    }
    return true;
}

nlohmann::json layout_table(const rl::Layout& layout, size_t* total) {
    *total = 0;
    nlohmann::json j = nlohmann::json::array();
    for (const auto& s : layout.specs()) {
        *total += s.numel;
        j.push_back({{"name", s.name}, {"shape", s.shape}, {"count", s.numel}});
    }
    return j;
}

}  // namespace cli
