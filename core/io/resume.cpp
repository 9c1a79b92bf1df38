#include "io/resume.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "train/corpus.h"

namespace rl {

namespace {

constexpr const char* k_state_format = "routelab-train-state-1";

std::vector<int64_t> shape_of(const TensorSpec& t) { return std::vector<int64_t>(t.shape.begin(), t.shape.end()); }

// Decimal text that reads back to the same bits (%.9g for float, %.17g for double).
std::string exact(double v, bool is_float) {
    char b[40];
    std::snprintf(b, sizeof b, is_float ? "%.9g" : "%.17g", v);
    return b;
}

}  // namespace

namespace {
// dir/name.safetensors -> dir/name
std::string stem_of(const std::string& checkpoint) {
    const std::string ext = ".safetensors";
    const bool has = checkpoint.size() > ext.size() && checkpoint.compare(checkpoint.size() - ext.size(), ext.size(), ext) == 0;
    return has ? checkpoint.substr(0, checkpoint.size() - ext.size()) : checkpoint;
}
}  // namespace

std::string run_state_path(const std::string& checkpoint, int step) {
    return stem_of(checkpoint) + ".train-" + std::to_string(step) + ".safetensors";
}

Status run_save(const TrainState& s, const std::string& checkpoint) {
    std::vector<TensorView> t;
    for (const TensorSpec& p : s.model.layout.specs()) {
        t.push_back({"adam_m." + p.name, shape_of(p), s.adam_m.data() + p.offset});
        t.push_back({"adam_v." + p.name, shape_of(p), s.adam_v.data() + p.offset});
    }
    std::vector<std::vector<float>> rows(s.acts.layers.size());  // the ring's row counts, as floats
    std::string ring_pos;
    for (size_t l = 0; l < s.acts.layers.size(); l++) {
        const LayerActs& L = s.acts.layers[l];
        if (L.moe_ring_rows.empty()) continue;
        const int64_t W = (int64_t)L.moe_ring_rows.size(), E = (int64_t)L.moe_ring_sum.size();
        rows[l].assign(L.moe_ring_rows.begin(), L.moe_ring_rows.end());
        t.push_back({"ring." + std::to_string(l) + ".counts", {W, E}, L.moe_ring.data()});
        t.push_back({"ring." + std::to_string(l) + ".rows", {W}, rows[l].data()});
        ring_pos += (ring_pos.empty() ? "" : ",") + std::to_string(L.moe_ring_pos);
    }
    std::ostringstream rng;
    rng << s.rng;
    const std::map<std::string, std::string> meta = {
        {"format", "pt"},
        {"routelab_state", k_state_format},
        {"routelab_step", std::to_string(s.step)},
        {"routelab_rng", rng.str()},
        {"routelab_prev_entropy", exact(s.prev_entropy, true)},
        {"routelab_wall_s", exact(s.wall_s, false)},
        {"routelab_ring_pos", ring_pos},
    };
    // Companion, then the checkpoint that names it, then the older companions: whenever a save is cut
    // short, the checkpoint on disk and the companion it names are a pair from one step.
    const std::string state = run_state_path(checkpoint, s.step);
    std::error_code ec;
    const bool state_existed = std::filesystem::exists(state, ec);
    if (Status st = safetensors_write(state, t, meta); !st)
        return Status::error(st.msg + " (the training state saved with '" + checkpoint + "')");
    const std::string name = std::filesystem::path(state).filename().string();
    if (Status st = checkpoint_save(checkpoint, s.model, s.cfg, s.data->tok, {s.step, s.prev_entropy, name}); !st) {
        // The old checkpoint names its own companion: a new one no checkpoint names is not left behind.
        if (!state_existed) std::filesystem::remove(state, ec);
        return st;
    }
    const std::filesystem::path dir = std::filesystem::path(checkpoint).parent_path();
    const std::string prefix = std::filesystem::path(stem_of(checkpoint)).filename().string() + ".train-";
    for (const auto& e : std::filesystem::directory_iterator(dir.empty() ? "." : dir, ec)) {
        const std::string f = e.path().filename().string();
        if (f != name && f.rfind(prefix, 0) == 0 && f.size() > 12 && f.compare(f.size() - 12, 12, ".safetensors") == 0)
            std::filesystem::remove(e.path(), ec);
    }
    return Status::ok();
}

Result<Resumed> run_resume(const std::string& checkpoint, int total_steps) {
    auto ck = checkpoint_load(checkpoint);
    if (!ck) return ck.status;
    LoadedCheckpoint& c = **ck;
    Config cfg = c.cfg;
    if (total_steps > 0) cfg.train.steps = total_steps;
    // The corpus read with the checkpoint's own tokenizer: the same token stream the run trained on.
    auto data = dataset_build(cfg.data, &c.tok);
    if (!data) return Status::error("checkpoint " + checkpoint + ": its corpus (" + cfg.data.corpus + ") cannot be read: " + data.status.msg);
    auto st = trainer_create(cfg, std::make_unique<Dataset>(std::move(*data)));
    if (!st) return Status::error("checkpoint " + checkpoint + ": its config no longer builds a run: " + st.status.msg);
    TrainState& s = **st;
    model_copy_state(s.model, c.model);
    s.step = c.info.step;
    s.prev_entropy = c.info.attn_entropy;
    Resumed r;
    const std::filesystem::path dir = std::filesystem::path(checkpoint).parent_path();
    const std::string companion = c.info.train_state.empty() ? "" : (dir / c.info.train_state).string();
    if (companion.empty() || !std::filesystem::exists(companion)) {
        r.note = (companion.empty() ? std::string("the checkpoint names no training state")
                                    : "no " + companion) + ": the weights are the checkpoint's, the optimizer starts fresh";
        r.state = std::move(*st);
        return r;
    }
    auto f = safetensors_read(companion);
    if (!f) return f.status;
    auto meta = [&](const char* k) -> std::string {
        auto it = f->metadata.find(k);
        return it == f->metadata.end() ? "" : it->second;
    };
    const std::string where = "training state '" + companion + "': ";
    if (meta("routelab_state") != k_state_format) return Status::error(where + "not a RouteLab training state");
    if (meta("routelab_step") != std::to_string(c.info.step))
        return Status::error(where + "it is from step " + meta("routelab_step") + " but the checkpoint from step " +
                             std::to_string(c.info.step) + " (a save was cut short); delete it to resume with a fresh optimizer");
    auto take = [&](const std::string& name, const std::vector<int64_t>& shape, float* into, size_t n) -> Status {
        auto it = f->tensors.find(name);
        if (it == f->tensors.end() || it->second.shape != shape || it->second.data.size() != n)
            return Status::error(where + "tensor '" + name + "' is missing or has another shape than the run's");
        std::memcpy(into, it->second.data.data(), n * sizeof(float));
        return Status::ok();
    };
    for (const TensorSpec& p : s.model.layout.specs()) {
        if (Status e = take("adam_m." + p.name, shape_of(p), s.adam_m.data() + p.offset, p.numel); !e) return e;
        if (Status e = take("adam_v." + p.name, shape_of(p), s.adam_v.data() + p.offset, p.numel); !e) return e;
    }
    std::istringstream pos(meta("routelab_ring_pos"));
    for (size_t l = 0; l < s.acts.layers.size(); l++) {
        LayerActs& L = s.acts.layers[l];
        if (L.moe_ring_rows.empty()) continue;
        const size_t W = L.moe_ring_rows.size(), E = L.moe_ring_sum.size();
        std::vector<float> rows(W);
        if (Status e = take("ring." + std::to_string(l) + ".counts", {(int64_t)W, (int64_t)E}, L.moe_ring.data(), W * E); !e) return e;
        if (Status e = take("ring." + std::to_string(l) + ".rows", {(int64_t)W}, rows.data(), W); !e) return e;
        std::fill(L.moe_ring_sum.begin(), L.moe_ring_sum.end(), 0.f);
        for (size_t w = 0; w < W; w++) {
            L.moe_ring_rows[w] = rows[w];
            for (size_t e = 0; e < E; e++) L.moe_ring_sum[e] += L.moe_ring[w * E + e];
        }
        std::string p;
        std::getline(pos, p, ',');
        char* end = nullptr;
        const long at = std::strtol(p.c_str(), &end, 10);
        if (p.empty() || *end || at < 0 || at >= (long)W)  // an index into the window: checked, never wrapped
            return Status::error(where + "routelab_ring_pos '" + p.substr(0, 40) + "' is not a position in layer " +
                                 std::to_string(l) + "'s window of " + std::to_string(W) + "; delete it to resume with a fresh optimizer");
        L.moe_ring_pos = (int)at;
    }
    std::istringstream rng(meta("routelab_rng"));
    rng >> s.rng;
    if (!rng) return Status::error(where + "its RNG state does not parse");
    s.prev_entropy = (float)std::strtod(meta("routelab_prev_entropy").c_str(), nullptr);
    s.wall_s = std::atof(meta("routelab_wall_s").c_str());
    r.exact = true;
    r.state = std::move(*st);
    return r;
}

}  // namespace rl
