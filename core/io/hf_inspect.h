// A Hugging Face model folder as a run the window inspects (docs/hf-models.md, "In the window"): its
// frozen weights in a TrainState with no steps to train, and the embedded corpus read by the folder's
// own tokenizer, so the views show the real model's routing of the probe text, its expert x domain
// and expert x class counts, and its generations, exactly as they do for a run the lab trained.
#pragma once
#include <memory>
#include <string>

#include "train/trainer.h"

namespace rl {

// The state of an opened folder: cfg is the folder's (train.steps 0), model its frozen weights (no
// gradients or optimizer: nothing may train it), data the embedded corpus encoded by its tokenizer.
// A folder without a tokenizer is refused (the window shows text). progress: what is being done.
Result<std::unique_ptr<TrainState>> hf_inspect_state(const std::string& dir, const DataProgress& progress = {});

// Whether a run's model is frozen (opened from a folder): it has no gradients to train with.
inline bool model_frozen(const Model& m) { return m.grads.data.empty() && !m.params.data.empty(); }

// The expert x domain counts of a frozen model are measured over this many tokens, in windows of
// k_inspect_window tokens (a 1B model reads 256 tokens in about a second on 2 cores).
constexpr int k_inspect_tokens = 2048, k_inspect_window = 256;
// The window's probe of a frozen model reads at most this many tokens of the probe text.
constexpr int k_inspect_probe = 512;

}  // namespace rl
