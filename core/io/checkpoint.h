// Checkpoints: safetensors with docs/architecture.md §4.1 names, weights (out, in), and the config, tokenizer
// and training facts in __metadata__, so a file is self-contained and loads in PyTorch as is.
#pragma once
#include <memory>
#include <string>

#include "config/config.h"
#include "model/model.h"
#include "train/tokenizer.h"
#include "util/status.h"

namespace rl {

struct CheckpointInfo {
    int step = 0;
    float attn_entropy = 0.f;  // last mean attention entropy (adaptive "entropy" window at inference)
    std::string train_state;   // file name (same folder) of the training state saved with it, "" = none
};

Status checkpoint_save(const std::string& path, const Model& m, const Config& cfg, const Tokenizer& tok,
                       const CheckpointInfo& info);

struct LoadedCheckpoint {
    Config cfg;
    Tokenizer tok;
    Model model;
    CheckpointInfo info;
};
// Loads and checks every tensor's name and shape against the stored config; any mismatch names the
// tensor, both shapes and what to do.
Result<std::unique_ptr<LoadedCheckpoint>> checkpoint_load(const std::string& path);

}  // namespace rl
