// The trainer: owns the dataset, model, optimizer state and activations of one run, and advances
// it one step at a time. Callers (CLI, later the GUI session thread) drive the loop.
#pragma once
#include <memory>
#include <random>
#include <vector>

#include "config/config.h"
#include "model/model.h"
#include "train/corpus.h"
#include "train/step_stats.h"
#include "util/status.h"

namespace rl {

struct TrainState {
    Config cfg;
    std::unique_ptr<Dataset> data;
    Model model;
    Activations acts;
    std::vector<float> adam_m, adam_v;          // (params) moments
    std::vector<unsigned char> decay_mask;      // (params) 1 where weight decay applies
    std::vector<int> tokens, targets;           // (B,T)
    std::mt19937_64 rng;
    int step = 0;
    float prev_entropy = 0.f;                   // feeds the adaptive "entropy" window
};

// Validates the config, builds the dataset (tokenizer trained on it) and the model. Every user
// mistake comes back as a Status naming what to fix.
Result<std::unique_ptr<TrainState>> trainer_create(const Config& cfg);
// Same, over an already built dataset (tests and benches reuse one).
Result<std::unique_ptr<TrainState>> trainer_create(const Config& cfg, std::unique_ptr<Dataset> data);
StepStats trainer_step(TrainState& s);
// Mean validation cross-entropy over cfg.train.eval_batches fixed windows.
float trainer_eval(TrainState& s);

}  // namespace rl
