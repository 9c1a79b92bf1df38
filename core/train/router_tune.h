// Router-only fine-tuning (issue 24): the routers' weights (an MoE layer's router, its noise weights
// and shared-expert gate, a MoH layer's head routers) learn by gradient on the user's text, every
// other weight frozen. The one forward and backward of the model run as in training; the backward
// takes no weight gradient for a frozen tensor (model_grads_for: their gradient views are null) but
// still carries each input's gradient through it, BF16 matrices of a mapped checkpoint included
// (gemm_bf16w_acc_nn). Gradients and AdamW moments exist for the routers alone: for OLMoE-1B-7B
// that is 16 x 64 x 2048 = 2.1M parameters, 8 MB each, next to 6.9B frozen ones.
// The loss is the model's training loss (cross-entropy plus the config's routing losses, which a
// Hugging Face model's settings leave at 0 unless asked for).
#pragma once
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "model/model.h"
#include "util/status.h"

namespace rl {

// Whether a parameter (model_param_layout's name) is a router's: "layers.3.moe.router", ".moe.noise",
// ".moe.shared_gate", "layers.0.attn.router.w_routed", ...
bool router_tensor(const std::string& name);

// Why router tuning cannot run on m, in one line ("" = it can): no learned router, packed BF16 panels
// (opened for --bf16-activations: forward only), a setting the backward does not differentiate.
std::string router_tune_blocker(const Model& m);

// Bytes tuning m's routers takes at B sequences of T: the weights as held (float32, and BF16 mapped
// from the checkpoint), the routers' gradients and two AdamW moments, the activations of a step.
struct RouterTuneMemory {
    double weights = 0, grads = 0, moments = 0, activations = 0;
    double total() const { return weights + grads + moments + activations; }
};
RouterTuneMemory router_tune_memory(const Model& m, int B, int T);

struct RouterTuneOptions {
    int steps = 100;
    int batch = 1;                 // sequences per step
    int context = 256;             // tokens per sequence (<= the model's seq_len)
    float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.f;
    float grad_clip = 1.f;         // global norm over the routers' gradients (0 = none)
    unsigned seed = 1;             // which windows of the text each step reads
    std::function<void(int step, double loss)> progress;
    const std::atomic<bool>* cancel = nullptr;  // checked before each step
};

struct RouterTuneStep {
    int step = 0;
    double loss = 0;               // the step's training loss, before its update
    double grad_norm = 0;          // before clipping
    double load_cv = 0;            // mean over sparse layers of the step's expert-load CV
    double seconds = 0;            // forward + backward + update
};

struct RouterTuneReport {
    std::vector<RouterTuneStep> steps;
    std::vector<std::string> tensors;  // the tensors trained
    int64_t trainable = 0;             // their parameters
    int64_t frozen = 0;                // every other parameter
    RouterTuneMemory memory;
    double seconds_per_step = 0;       // mean over the steps after the first
    bool cancelled = false;
};

// Tunes m's routers in place on windows of ids (at least context + 1 of them). m has gradients for its
// routers only during the call and none after it: a frozen model comes back frozen, and a model of the
// lab's own (model_create) loses its full gradients (tune a copy of a run's model, not the run's).
Result<RouterTuneReport> router_tune(Model& m, const std::vector<int>& ids, const RouterTuneOptions& o);

}  // namespace rl
