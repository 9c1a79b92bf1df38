#include "train/live.h"

#include <cmath>

namespace rl {

namespace {

// One row per live key: its config key and the field it sets. Names, lookup and apply all read
// this table, so the config form, the trainer and the messages cannot disagree.
struct LiveKeyRow {
    LiveKey key;
    const char* name;
    float& (*field)(Config&);
};
const LiveKeyRow k_live[] = {
    {LiveKey::lr, "train.lr", [](Config& c) -> float& { return c.train.lr; }},
    {LiveKey::beta, "model.attention.heads.beta", [](Config& c) -> float& { return c.model.attention.heads.beta; }},
    {LiveKey::aux_weight, "model.moe.aux_weight", [](Config& c) -> float& { return c.model.moe.aux_weight; }},
    {LiveKey::z_loss_weight, "model.moe.z_loss_weight", [](Config& c) -> float& { return c.model.moe.z_loss_weight; }},
    {LiveKey::capacity_factor, "model.moe.capacity_factor",
     [](Config& c) -> float& { return c.model.moe.capacity_factor; }},
    {LiveKey::jitter, "model.moe.jitter", [](Config& c) -> float& { return c.model.moe.jitter; }},
    {LiveKey::bias_update_rate, "model.moe.bias_update_rate",
     [](Config& c) -> float& { return c.model.moe.bias_update_rate; }},
    {LiveKey::head_bias_update_rate, "model.attention.heads.bias_update_rate",
     [](Config& c) -> float& { return c.model.attention.heads.bias_update_rate; }},
};

const LiveKeyRow* row_of(LiveKey k) {
    for (const LiveKeyRow& r : k_live)
        if (r.key == k) return &r;
    return nullptr;
}

}  // namespace

const std::vector<LiveKey>& live_keys() {
    static const std::vector<LiveKey> keys = [] {
        std::vector<LiveKey> v;
        for (const LiveKeyRow& r : k_live) v.push_back(r.key);
        return v;
    }();
    return keys;
}

const char* live_key_name(LiveKey k) {
    const LiveKeyRow* r = row_of(k);
    return r ? r->name : "?";
}

bool live_key_from_name(const std::string& name, LiveKey& out) {
    for (const LiveKeyRow& r : k_live)
        if (name == r.name) {
            out = r.key;
            return true;
        }
    return false;
}

Status trainer_apply(TrainState& s, const LiveCommand& c) {
    const float v = c.value;
    const LiveKeyRow* row = row_of(c.key);
    if (!row) return Status::error("live change: unknown key " + std::to_string((int)c.key));
    const std::string key = row->name;
    if (!std::isfinite(v))
        return Status::error("live change: '" + key + "' must be a finite number, got " + std::to_string(v));
    // Change a copy and run the same validation a config file gets, so the rules live in one place.
    Config next = s.cfg;
    if (c.key == LiveKey::lr) next.train.min_lr = s.cfg.train.min_lr / s.cfg.train.lr * v;  // the schedule keeps its shape
    row->field(next) = v;
    if (Status ok = config_validate(next); !ok) return Status::error("live change refused: " + ok.msg);
    if (c.key == LiveKey::capacity_factor && next.model.moe.kind != FfnRouting::dense &&
        model_moe_dims(next.model, s.acts.B * s.acts.T, true, 0).max_assign() > s.acts.moe_max_assign)
        // Buffers were sized for the starting factor: expert choice may not grow past it live.
        return Status::error("live change: '" + key + "' = " + std::to_string(v) +
                             " would need larger routing buffers than this run allocated (expert choice cannot "
                             "grow its capacity live); retrain with the larger factor");
    s.cfg = next;
    s.model.cfg = next.model;  // the forward reads the model's copy
    return Status::ok();
}

}  // namespace rl
