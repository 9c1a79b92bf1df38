// Live changes (docs/architecture.md §2): values the GUI may change while training runs, applied by the
// trainer thread at a step boundary. Each is validated; a bad value is refused with a message.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/trainer.h"
#include "util/status.h"

namespace rl {

enum class LiveKey : uint8_t { lr, beta, aux_weight, z_loss_weight, capacity_factor, jitter, bias_update_rate, head_bias_update_rate };

struct LiveCommand {
    LiveKey key = LiveKey::lr;
    float value = 0;
};

// Every live key, in enum order. The config form marks and sends exactly these.
const std::vector<LiveKey>& live_keys();
const char* live_key_name(LiveKey k);  // the config key it changes, e.g. "train.lr"
// The live key that changes config key `name` ("train.lr"); false for a key that is not live.
bool live_key_from_name(const std::string& name, LiveKey& out);
// Applies to both the run's config and the model's (the forward reads the model's).
Status trainer_apply(TrainState& s, const LiveCommand& c);

}  // namespace rl
