// Balance without retraining (issue 24): the aux-loss-free rule of DeepSeek-V3 (Wang et al. 2024,
// "Auxiliary-Loss-Free Load Balancing"; docs/routing-math.md §12.4), b_e += u sign(mean load - load_e)
// on each expert's selection bias only, run over forward passes of the user's text with no gradients.
// A pass routes the whole text with the biases held still: its load CV and perplexity are exactly
// those of its biases, and it keeps every token's selection key (logits or scores, before the bias)
// per sparse layer. On those keys the rule then runs as training would run it, batch after batch of
// `context` tokens, epoch after epoch, without the model: a layer's keys depend only on the layers
// below, so this is the rule's own fixed point for the inputs of that pass. The sign rule moves a
// bias by u whatever the imbalance, so a fixed u ends in oscillation: an epoch whose CV over the
// whole text is no better steps back and halves u (our addition, as sign-based step-size methods
// such as Rprop do). u starts at half the mean margin between a token's K-th and (K+1)-th keys (or
// CalibrationOptions::rate). The next pass measures the new biases together (a layer's biases move
// the inputs of the layers above) and fits again; passes stop after `patience` passes in a row that
// did not lower the mean CV by min_gain of it, or at max_passes, keeping the best pass's biases. The
// combine weights never see the bias, so outputs change only through which experts are chosen.
// Memory: the keys of one pass, 4 E bytes per token and sparse layer (OLMoE, 100k tokens: 410 MB).
// A model that already has biases (trained with expert_bias, or given a file) starts from them.
#pragma once
#include <atomic>
#include <functional>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.h"
#include "util/status.h"

namespace rl {

// Gives each sparse layer of m a selection bias (model.moe.expert_bias), zero, or takes it away
// (on false). Other buffers (MoH head biases) keep their values. The buffer arena is made again:
// pointers into the old one (and copies of m made before, for model_copy_state) no longer fit.
void model_set_expert_bias(Model& m, bool on);

struct CalibrationPass {
    int pass = 0;                  // 1-based
    double load_cv = 0;            // mean over sparse layers of each layer's load CV, this pass's biases
    std::vector<double> layer_cv;  // (sparse layers)
    double perplexity = 0;         // of the text with this pass's biases
    double max_abs_bias = 0;       // after the pass
    double seconds = 0;            // the pass's forwards
    double fit_seconds = 0;        // fitting the biases on the previous pass's keys, before this pass
};

struct CalibrationReport {
    double load_cv_before = 0;     // the text's load CV without biases (pass 0)
    double perplexity_before = 0;
    double load_cv_after = 0;      // the best pass's: every layer's kept biases together
    double perplexity_after = 0;
    std::vector<CalibrationPass> passes;
    int best_pass = 0;             // the pass with the lowest mean CV (0: none lowered it by min_gain)
    std::vector<std::vector<float>> bias;  // (L)(E) the kept biases; empty for dense layers
    bool cancelled = false;
};

struct CalibrationOptions {
    int context = 512;             // tokens per window
    float rate = 0;                // u at the start; 0: half the top-k's mean margin, per layer
    int max_passes = 30;
    int patience = 2;
    double min_gain = 0.01;        // a pass must lower the best CV by this share of it
    std::function<void(const CalibrationPass&)> progress;  // after each pass
    const std::atomic<bool>* cancel = nullptr;             // checked before each window
};

// m must be a top-k MoE (or get one: model_set_expert_bias is called when it has no bias). On return m
// holds the kept biases.
Result<CalibrationReport> calibrate_expert_bias(Model& m, const std::vector<int>& ids, const CalibrationOptions& o = {});

// The file routelab-cli calibrate writes beside a model ("routelab_expert_bias": 1, the passes, and
// "layers": [{"layer", "expert_bias": [E]}]) and probe / eval / analyse --expert-bias F read back.
nlohmann::json calibration_to_json(const CalibrationReport& r);
// Gives m the biases of such a file; refused in one line when its layers or expert counts are not m's
// (every sparse layer once, E biases each).
Status calibration_apply(Model& m, const nlohmann::json& j);

}  // namespace rl
