// ProbeSnapshot and Specialization (docs/architecture.md §9): how a trained model routes real text.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.h"
#include "train/corpus.h"
#include "train/tokenizer.h"

namespace rl {

// ---- ProbeSnapshot: per token and layer, every head's gate and the chosen experts with weights ----
struct ProbeToken {
    int id = 0;
    std::string text;
};
struct ProbeLayer {
    std::vector<std::vector<float>> head_gates;             // [token][head]; empty with all_heads
    // MoH router internals (routing diagram; empty unless heads.kind = moh), docs/routing-math.md §3.1-3.2:
    std::vector<std::vector<float>> head_probs;             // [token][R] softmax over the routed heads
    std::vector<std::vector<float>> shared_probs;           // [token][S] softmax over the shared heads
    std::vector<std::vector<float>> head_type;              // [token][2] alpha: shared vs routed weight
    std::vector<std::vector<int>> experts;                  // [row] chosen experts (rank order by weight)
    std::vector<std::vector<float>> expert_weights;         // [row] their combine weights
    std::vector<std::vector<float>> expert_probs;           // [row][E] router scores (softmax or sigmoid), before top-k
    // Engine routing (docs/routing-math.md §12): with a selection bias or group limit, the key the
    // top-k read ([row][E], -inf outside the kept groups) and the experts it would take without the bias.
    std::vector<float> expert_bias;                         // (E) empty without expert_bias
    std::vector<std::vector<float>> expert_keys;            // [row][E] empty without bias or groups
    std::vector<std::vector<int>> experts_unbiased;         // [row] top-k of the key without the bias
    std::vector<float> head_bias;                           // (R) MoH head_bias, empty without
    std::vector<std::vector<float>> attention;              // [head][T*T] causal softmax rows (row = query)
};
struct ProbeSnapshot {
    int step = 0;
    std::vector<ProbeToken> tokens;
    std::vector<ProbeLayer> layers;
    int n_heads = 0, n_shared_heads = 0, n_experts = 0, mh_heads = 1;  // MH-MoE: experts of sub-tokens, token-major
    int head_top_k = 0;        // routed heads each token picks (MoH)
    int n_head_experts = 0;    // JetMoE's attention experts (heads.router=experts): head h is in expert h % this
    int expert_top_k = 0;      // experts per token (top-k routings; 0 for expert choice)
    int n_shared_experts = 0;  // always-on experts added to the routed sum
    bool head_paper_scaling = false;
    std::string head_kind;    // model.attention.heads.kind, e.g. "moh"
    std::string expert_kind;  // model.moe.routing (e.g. "topk"), or "mh_moe"; empty for a dense FFN
    std::string expert_score = "softmax";  // model.moe.score_function
    std::vector<float> token_nll;  // (T-1) -log p(token t+1 | tokens up to t)
    double perplexity = 0;         // exp(mean token_nll); 0 for a one-token text
};
// Runs the probe text (truncated to seq_len tokens) through the model, inference mode.
// with_attention: also keep every head's attention rows (T*T floats per head and layer).
ProbeSnapshot probe_run(const Model& m, const Tokenizer& tok, const std::string& text, int step = 0,
                        bool with_attention = true);
// Same on token ids (a generation's own tokens, which a decode/encode round trip could change).
ProbeSnapshot probe_run_ids(const Model& m, const Tokenizer& tok, std::vector<int> ids, int step = 0, bool with_attention = true);
std::string probe_to_json(const ProbeSnapshot& p);

// Per (sub-)token row of a layer's last forward: the experts it reached (after any capacity), as
// (combine weight, expert), heaviest first (ties to the lower expert).
void routing_token_experts(const LayerActs& L, int rows, std::vector<std::vector<std::pair<float, int>>>& out);

// ---- Specialization: expert x class counts, top tokens per expert, NMI ----
enum LexClass { lex_punct = 0, lex_number, lex_capitalised, lex_function, lex_other, lex_count };
const char* lex_class_name(int c);
int lex_class_of(const std::string& token_text);

struct LayerSpecialization {
    std::vector<std::vector<double>> by_domain;   // [expert][domain] counts of top-1 routing
    std::vector<std::vector<double>> by_lex;      // [expert][lexical class]
    std::vector<std::vector<std::pair<std::string, int>>> top_tokens;  // [expert] most routed tokens
    double nmi_domain = 0;                        // NMI(top-1 expert; domain), arithmetic normalisation
    double nmi_lex = 0;
};
struct Specialization {
    int tokens = 0;
    std::vector<LayerSpecialization> layers;
};
// Routes `n_tokens` validation tokens (fixed windows of B x T, T = 0: the model's seq_len) and counts,
// per layer, each token's top-1 expert against its domain and lexical class. Empty layers for a dense
// FFN. progress (optional): told the share done after each window; returning false stops there (a
// model folder's window is seconds), and the result then counts only the windows done (`tokens`).
Specialization specialization_measure(const Model& m, const Tokenizer& tok, const TokenStream& val, int n_tokens,
                                      int B = 16, int T = 0, const std::function<bool(double)>& progress = {});
std::string specialization_to_json(const Specialization& s);

// ---- Random-router baseline: how much of the specialization the trained routers learned ----
// A copy of m whose expert-router weights are redrawn from N(0, rms of the trained ones); every
// other weight is m's. Routing text through it shows what an untrained router would score.
Model specialization_random_router(const Model& m, unsigned seed);
struct SpecializationBaseline {
    Specialization trained, random_router;  // the same validation tokens through each
};
SpecializationBaseline specialization_baseline_measure(const Model& m, const Tokenizer& tok, const TokenStream& val,
                                                       int n_tokens, unsigned seed);
// Per layer: nmi_domain, nmi_domain_random_router, nmi_lexical, nmi_lexical_random_router.
nlohmann::json specialization_baseline_to_json(const SpecializationBaseline& b);
// One "specialization layer l: NMI(expert; domain) ..." line per layer, as routelab-cli train prints them.
std::string specialization_baseline_text(const SpecializationBaseline& b);
// Normalised mutual information I(X;Y) / ((H(X)+H(Y))/2) of a count table.
double nmi(const std::vector<std::vector<double>>& counts);

}  // namespace rl
