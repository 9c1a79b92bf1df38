// What a model's experts specialise in on the user's own text (routelab-cli analyse, the experts
// view on a model folder; issue 24). The user names a few texts as domains (code, prose, maths...;
// the embedded corpus's domains by default). Every token of every domain goes through the model in
// windows, and per sparse layer we count:
//   - expert x domain: each (token, expert) pair the router chose (all k of them), per domain, and the
//     NMI between a token's first expert and its domain next to the same NMI with the experts
//     shuffled over the tokens (a random router of exactly the same load: what chance alone scores
//     on this many tokens);
//   - vocabulary: each expert's most routed tokens, with the share of that token's occurrences the
//     expert took (among each occurrence's k experts), and per layer the frequency-weighted mean of a
//     token's largest such share over the tokens seen at least min_occurrences times (about k / E
//     when routing ignores the token, 1 when each token always goes to the same experts);
//   - cross-layer co-occurrence: how often a token's first expert i in this layer is followed by first
//     expert j in the next sparse layer, and that table's NMI.
#pragma once
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.h"
#include "train/tokenizer.h"
#include "util/status.h"

namespace rl {

struct AnalysisDomain {
    std::string name;
    std::vector<int> ids;  // the domain's text through the model's tokenizer
};

struct ExpertToken {
    int id = 0;
    std::string text;
    int count = 0;       // occurrences routed to this expert
    double share = 0;    // count / the token's occurrences
};

struct LayerAnalysis {
    int layer = 0;
    std::vector<std::vector<double>> by_domain;       // (E, D) chosen (token, expert) pairs per domain
    double nmi_domain = 0;                            // NMI(first expert; domain)
    double nmi_domain_random_router = 0;              // the same with the first experts shuffled over tokens
    std::vector<std::vector<ExpertToken>> top_tokens; // (E) most routed tokens, most first
    double vocab_specialisation = 0;                  // frequency-weighted mean of a token's largest expert share
    int next_layer = -1;                              // the next sparse layer (-1: none)
    std::vector<std::vector<double>> next_counts;     // (E, E) first expert here x first expert there
    double nmi_next = 0;                              // NMI of next_counts
};

struct Analysis {
    std::vector<std::string> domains;
    std::vector<int64_t> domain_tokens;  // (D) tokens routed per domain
    int64_t tokens = 0;
    int context = 0;
    double seconds = 0;                  // wall time of the forwards and counting
    bool cancelled = false;              // stopped early: the counts cover the windows done
    std::vector<LayerAnalysis> layers;   // sparse layers only
};

struct AnalysisOptions {
    int context = 512;                 // tokens per forward (<= the model's seq_len)
    int top_tokens = 8;                // per expert
    int shuffles = 8;                  // random-router NMI: mean over this many shuffles
    int min_occurrences = 8;           // vocab_specialisation counts the tokens seen this often
    unsigned seed = 1;
    std::function<void(int64_t done, int64_t total)> progress;  // tokens, after each window
    const std::atomic<bool>* cancel = nullptr;                  // checked before each window
};

// The domains of "NAME=FILE" specs, each file through tok (its special tokens added) and cut to `cap`
// tokens; no specs: the embedded corpus's five domains. A bad spec, an unreadable or empty file is
// refused in one line naming it.
Result<std::vector<AnalysisDomain>> analysis_domains_read(const std::vector<std::string>& specs, const Tokenizer& tok,
                                                          size_t cap);

// Empty layers for a dense model. Each domain's ids are cut into windows of o.context tokens.
Analysis analysis_run(const Model& m, const Tokenizer& tok, const std::vector<AnalysisDomain>& domains,
                      const AnalysisOptions& o = {});
nlohmann::json analysis_to_json(const Analysis& a);

}  // namespace rl
