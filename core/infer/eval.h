// Perplexity and routing of a frozen model over a long text (routelab-cli eval; the window's
// interventions panel): the ids cut into windows of `context` tokens, each window one forward that
// predicts its own next tokens (the first token of a window has no earlier context: non-overlapping
// windows, as in the usual strided perplexity with stride = context). Per sparse layer: each expert's
// rows over the whole text, their coefficient of variation, and the share of (token, expert)
// choices a capacity dropped. Active parameters per token count every parameter but the routed
// experts, plus the routed experts' parameters times the experts each token reached on average.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include "config/config.h"
#include "infer/interventions.h"
#include "model/model.h"
#include "util/status.h"

namespace rl {

struct EvalLayer {
    int layer = 0;
    std::vector<double> rows;     // (E) tokens each expert computed, over the whole text (after capacity)
    double load_cv = 0;           // std / mean of rows (0 = balanced)
    double dropped = 0;           // top-k: share of the (token, chosen expert) pairs a capacity dropped;
                                  // other routings: share of tokens that reached no expert
    double experts_per_token = 0; // mean experts a token (an MH-MoE sub-token) reached
};

struct EvalReport {
    int64_t tokens = 0;           // tokens predicted (every id but the first of each window)
    int windows = 0, context = 0;
    double nll = 0;               // mean cross-entropy, nats
    double perplexity = 0;        // exp(nll)
    double forward_s = 0;         // seconds in the forwards
    double total_params = 0;      // every parameter of the model
    double active_params = 0;     // per token, as measured on this text
    std::vector<EvalLayer> layers;  // sparse layers only
    bool cancelled = false;       // stopped by the cancel flag: the numbers cover the windows done
};

struct EvalOptions {
    int context = 512;                                 // tokens per window (<= the model's seq_len)
    std::function<void(int done, int total)> progress;  // after each window
    const std::atomic<bool>* cancel = nullptr;          // checked before each window
};

// The text's windows of `context` tokens (as above), each one forward with its next-token targets into
// a (made for batch 1, context tokens); after each, each(T) reads a's activations of its T tokens.
// Stops before a window once *cancel is set.
struct EvalWindows {
    int64_t predicted = 0;        // tokens predicted
    int windows = 0;
    double nll_sum = 0;           // of the predicted tokens' cross-entropy, nats
    double forward_s = 0;         // seconds in the forwards
    bool cancelled = false;
};
EvalWindows eval_windows(const Model& m, Activations& a, const std::vector<int>& ids, int context,
                         const std::atomic<bool>* cancel, const std::function<void(int T)>& each);

// ids: at least 2. The model's config (with any interventions applied) decides the routing.
Result<EvalReport> model_eval(const Model& m, const std::vector<int>& ids, const EvalOptions& o = {});

// Perplexity against active compute: the text evaluated once per top-k in `ks` (each with the other
// interventions of iv), m's config put back afterwards. cfg: the config m was built from (m.cfg is its
// model part). The first failing point's message is returned.
Result<std::vector<EvalReport>> eval_top_k_sweep(Model& m, const Config& cfg, const Interventions& iv,
                                                 const std::vector<int>& ks, const std::vector<int>& ids,
                                                 const EvalOptions& o = {});

// iv with its mask_least_used resolved: each sparse layer's iv.mask_least_used experts of fewest rows in
// `unchanged` (the model's report on the same text without interventions; ties to the lower index)
// added to iv.mask as "layer:expert" entries, mask_least_used then 0.
Interventions eval_mask_least_used(const Interventions& iv, const EvalReport& unchanged);

// Active parameters per token of m's config if each sparse layer's tokens reach experts_per_token[l]
// routed experts (the nominal count is top_k): the total less the routed experts, plus that many.
double eval_active_params(const ModelConfig& c, const std::vector<double>& experts_per_token);
double eval_total_params(const ModelConfig& c);

}  // namespace rl
