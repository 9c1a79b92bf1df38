// Saving a run so it can go on exactly where it stopped (docs/architecture.md §10): the checkpoint
// (weights, buffers, config, tokenizer) plus a companion file with the rest of the training state,
// AdamW's moments, the step, the batch sampler's RNG, the adaptive window's entropy, the seconds
// trained and the global-balance window. The companion is safetensors too, loadable in PyTorch by
// name: `adam_m.<parameter>` and `adam_v.<parameter>`, `ring.<layer>.counts` and `ring.<layer>.rows`.
// It is named after its step (checkpoint.train-20.safetensors) and the checkpoint names it, so a
// save cut short at any point leaves the previous pair whole.
#pragma once
#include <memory>
#include <string>

#include "train/trainer.h"
#include "util/status.h"

namespace rl {

// dir/checkpoint.safetensors at step 20 -> dir/checkpoint.train-20.safetensors
std::string run_state_path(const std::string& checkpoint, int step);

// Writes the companion, then the checkpoint naming it, each atomically (temp file, fsync, rename),
// then removes the companions of earlier saves.
Status run_save(const TrainState& s, const std::string& checkpoint);

struct Resumed {
    std::unique_ptr<TrainState> state;
    bool exact = false;  // the companion was there: the next step is the one the run would have taken
    std::string note;    // what was missing when not exact
};
// Rebuilds the run from a checkpoint: the dataset from its config's corpus (the tokenizer must come
// out the same), the weights and buffers from the file, and with the companion every optimizer and
// sampler state. total_steps > 0 replaces train.steps (the schedule's length); 0 keeps the config's.
Result<Resumed> run_resume(const std::string& checkpoint, int total_steps = 0);

}  // namespace rl
