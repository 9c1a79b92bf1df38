#include "train/live.h"

#include <cmath>
#include <string>

namespace rl {

const char* live_key_name(LiveKey k) {
    switch (k) {
        case LiveKey::lr: return "train.lr";
        case LiveKey::beta: return "model.attention.heads.beta";
        case LiveKey::aux_weight: return "model.moe.aux_weight";
        case LiveKey::z_loss_weight: return "model.moe.z_loss_weight";
        case LiveKey::capacity_factor: return "model.moe.capacity_factor";
        case LiveKey::jitter: return "model.moe.jitter";
    }
    return "?";
}

Status trainer_apply(TrainState& s, const LiveCommand& c) {
    const float v = c.value;
    const std::string key = live_key_name(c.key);
    if (!std::isfinite(v))
        return Status::error("live change: '" + key + "' must be a finite number, got " + std::to_string(v));
    // Change a copy and run the same validation a config file gets, so the rules live in one place.
    Config next = s.cfg;
    switch (c.key) {
        case LiveKey::lr:
            next.train.min_lr = s.cfg.train.min_lr / s.cfg.train.lr * v;  // the schedule keeps its shape
            next.train.lr = v;
            break;
        case LiveKey::beta: next.model.attention.heads.beta = v; break;
        case LiveKey::aux_weight: next.model.moe.aux_weight = v; break;
        case LiveKey::z_loss_weight: next.model.moe.z_loss_weight = v; break;
        case LiveKey::capacity_factor: next.model.moe.capacity_factor = v; break;
        case LiveKey::jitter: next.model.moe.jitter = v; break;
    }
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
