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
    auto bad = [&](const std::string& rule) {
        return Status::error("live change: '" + std::string(live_key_name(c.key)) + "' " + rule + ", got " + std::to_string(v));
    };
    if (!std::isfinite(v)) return bad("must be a finite number");
    switch (c.key) {
        case LiveKey::lr:
            if (!(v > 0 && v < 10)) return bad("must be in (0, 10)");
            // The schedule keeps its shape: scale min_lr with lr.
            s.cfg.train.min_lr = s.cfg.train.min_lr / s.cfg.train.lr * v;
            s.cfg.train.lr = v;
            break;
        case LiveKey::beta:
            if (!(v >= 0 && v < 10)) return bad("must be in [0, 10)");
            s.cfg.model.attention.heads.beta = s.model.cfg.attention.heads.beta = v;
            break;
        case LiveKey::aux_weight:
            if (!(v >= 0 && v < 10)) return bad("must be in [0, 10)");
            s.cfg.model.moe.aux_weight = s.model.cfg.moe.aux_weight = v;
            break;
        case LiveKey::z_loss_weight:
            if (!(v >= 0 && v < 10)) return bad("must be in [0, 10)");
            s.cfg.model.moe.z_loss_weight = s.model.cfg.moe.z_loss_weight = v;
            break;
        case LiveKey::capacity_factor: {
            if (!(v > 0 && v <= 64)) return bad("must be in (0, 64]");
            // Buffers were sized for the starting factor: expert choice may not grow past it live.
            MoeDims next = model_moe_dims(s.model.cfg, s.acts.B * s.acts.T, true, 0);
            next.capacity_factor = v;
            if (s.model.cfg.moe.kind != FfnRouting::dense && next.max_assign() > s.acts.moe_max_assign)
                return bad("would need larger routing buffers than this run allocated (expert choice cannot grow "
                           "its capacity live); retrain with the larger factor");
            s.cfg.model.moe.capacity_factor = s.model.cfg.moe.capacity_factor = v;
            break;
        }
        case LiveKey::jitter:
            if (!(v >= 0 && v < 10)) return bad("must be in [0, 10)");
            s.cfg.model.moe.jitter = s.model.cfg.moe.jitter = v;
            break;
    }
    return Status::ok();
}

}  // namespace rl
