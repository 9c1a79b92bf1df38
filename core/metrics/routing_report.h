// ProbeSnapshot and Specialization (DESIGN.md §3): how a trained model routes real text.
#pragma once
#include <string>
#include <vector>

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
    std::vector<std::vector<int>> experts;                  // [token] chosen experts (rank order by weight)
    std::vector<std::vector<float>> expert_weights;         // [token] their combine weights
};
struct ProbeSnapshot {
    int step = 0;
    std::vector<ProbeToken> tokens;
    std::vector<ProbeLayer> layers;
    int n_heads = 0, n_shared_heads = 0, n_experts = 0, mh_heads = 1;  // MH-MoE: experts of sub-tokens, token-major
};
// Runs the probe text (truncated to seq_len tokens) through the model, inference mode.
ProbeSnapshot probe_run(const Model& m, const Tokenizer& tok, const std::string& text, int step = 0);
std::string probe_to_json(const ProbeSnapshot& p);

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
// Routes `n_tokens` validation tokens (fixed windows) and counts, per layer, each token's top-1
// expert against its domain and lexical class. Empty layers for a dense FFN.
Specialization specialization_measure(const Model& m, const Tokenizer& tok, const TokenStream& val, int n_tokens);
std::string specialization_to_json(const Specialization& s);
// Normalised mutual information I(X;Y) / ((H(X)+H(Y))/2) of a count table.
double nmi(const std::vector<std::vector<double>>& counts);

}  // namespace rl
