#include "io/checkpoint.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"

namespace rl {

namespace {
std::string shape_str(const std::vector<int64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); i++) r += (i ? "," : "") + std::to_string(s[i]);
    return r + "]";
}
}  // namespace

Status checkpoint_save(const std::string& path, const Model& m, const Config& cfg, const Tokenizer& tok,
                       const CheckpointInfo& info) {
    std::vector<TensorView> views;
    for (const TensorSpec& s : m.layout.specs())
        views.push_back({s.name, std::vector<int64_t>(s.shape.begin(), s.shape.end()), m.params.data.data() + s.offset});
    for (const TensorSpec& s : m.buffer_layout.specs())  // selection biases: state, no gradient
        views.push_back({s.name, std::vector<int64_t>(s.shape.begin(), s.shape.end()), m.buffers.data.data() + s.offset});
    Config stored = cfg;
    stored.model = m.cfg;  // vocab_size resolved
    std::map<std::string, std::string> meta = {
        {"format", "pt"},
        {"routelab_config", config_to_json(stored)},
        {"routelab_tokenizer", tok.to_json()},
        {"routelab_step", std::to_string(info.step)},
        {"routelab_attn_entropy", std::to_string(info.attn_entropy)},
    };
    if (!info.train_state.empty()) meta["routelab_train_state"] = info.train_state;
    return safetensors_write(path, views, meta);
}

Result<std::unique_ptr<LoadedCheckpoint>> checkpoint_load(const std::string& path) {
    auto file = safetensors_read(path);
    if (!file) return file.status;
    const std::string where = "checkpoint '" + path + "': ";
    auto meta = [&](const char* key) -> const std::string* {
        auto it = file->metadata.find(key);
        return it == file->metadata.end() ? nullptr : &it->second;
    };
    const std::string* cfg_text = meta("routelab_config");
    const std::string* tok_text = meta("routelab_tokenizer");
    if (!cfg_text || !tok_text)
        return Status::error(where + "no RouteLab config/tokenizer in its metadata (was it saved by routelab-cli train?)");
    auto cfg = config_from_json(*cfg_text);
    if (!cfg) return Status::error(where + "stored config is invalid: " + cfg.status.msg);
    if (Status s = config_validate(*cfg); !s) return Status::error(where + "stored config is invalid: " + s.msg);
    auto tok = Tokenizer::from_json(*tok_text);
    if (!tok) return Status::error(where + "stored tokenizer is invalid: " + tok.status.msg);
    if (cfg->model.vocab_size != tok->vocab_size())
        return Status::error(where + "config vocab_size " + std::to_string(cfg->model.vocab_size) +
                             " does not match the tokenizer's " + std::to_string(tok->vocab_size()));
    // Every tensor the config has must be there with its shape.
    auto check_all = [&](const Layout& layout) -> Status {
        for (const TensorSpec& s : layout.specs()) {
            auto it = file->tensors.find(s.name);
            std::vector<int64_t> want(s.shape.begin(), s.shape.end());
            if (it == file->tensors.end())
                return Status::error(where + "tensor '" + s.name + "' " + shape_str(want) +
                                     " is missing (the file does not match its own config; re-save it)");
            if (it->second.shape != want)
                return Status::error(where + "tensor '" + s.name + "' has shape " + shape_str(it->second.shape) +
                                     " but the config needs " + shape_str(want) + " (re-save the checkpoint)");
        }
        return Status::ok();
    };
    // Checked before the model is allocated: a stored config is only bounded by config_validate, so an
    // edited or corrupt one could ask for terabytes (found by fuzzing); the file's own tensors are small.
    if (Status s = check_all(model_param_layout(cfg->model)); !s) return s;
    auto out = std::make_unique<LoadedCheckpoint>(LoadedCheckpoint{*cfg, *tok, Model{}, {}});
    model_create(out->model, cfg->model, 0, cfg->train.init_std);
    auto load_all = [&](const Layout& layout, Arena& into) -> Status {
        if (Status s = check_all(layout); !s) return s;
        for (const TensorSpec& s : layout.specs())
            std::memcpy(into.data.data() + s.offset, file->tensors.find(s.name)->second.data.data(), s.numel * sizeof(float));
        return Status::ok();
    };
    if (Status s = load_all(out->model.layout, out->model.params); !s) return s;
    if (Status s = load_all(out->model.buffer_layout, out->model.buffers); !s) return s;
    for (const auto& [name, t] : file->tensors)
        if (!out->model.layout.find(name) && !out->model.buffer_layout.find(name))
            return Status::error(where + "unexpected tensor '" + name + "' that the config does not have");
    // The facts in the metadata are untrusted too: a step that is a count, an entropy that is a
    // number, and a companion that is a file beside the checkpoint (never a path elsewhere).
    if (const std::string* st = meta("routelab_step")) {
        char* end = nullptr;
        errno = 0;
        const long v = std::strtol(st->c_str(), &end, 10);
        if (st->empty() || *end || errno || v < 0 || v > std::numeric_limits<int>::max())
            return Status::error(where + "metadata routelab_step '" + st->substr(0, 40) + "' is not a step count (the file is corrupt; re-save it)");
        out->info.step = (int)v;
    }
    if (const std::string* en = meta("routelab_attn_entropy")) {
        char* end = nullptr;
        const double v = std::strtod(en->c_str(), &end);
        if (en->empty() || *end || !std::isfinite(v) || v < 0)
            return Status::error(where + "metadata routelab_attn_entropy '" + en->substr(0, 40) + "' is not a non-negative number (the file is corrupt; re-save it)");
        out->info.attn_entropy = (float)v;
    }
    if (const std::string* ts = meta("routelab_train_state")) {
        if (ts->empty() || ts->find('/') != std::string::npos || ts->find('\\') != std::string::npos || *ts == "." || *ts == "..")
            return Status::error(where + "metadata routelab_train_state must name a file in the checkpoint's folder, not '" +
                                 ts->substr(0, 80) + "' (the file is corrupt; re-save it)");
        out->info.train_state = *ts;
    }
    return out;
}

}  // namespace rl
