// The lesson on a real model (`routelab --lesson real-model --model DIR`, `routelab-cli lesson
// real-model --model DIR`; issue 24): what a checkpoint's experts specialise in on the embedded
// corpus's five domains, and what fewer (or more) experts per token cost it, concluded from its own
// numbers. Unlike the other lessons it trains nothing on a model the user gives; without one it says
// how to get one and runs on a tiny MoE the lab trains for the occasion (moe-top2-8, a few hundred
// steps), so the lesson always has numbers to conclude from.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "config/config.h"
#include "infer/eval.h"
#include "metrics/domain_analysis.h"
#include "model/model.h"
#include "train/tokenizer.h"
#include "train/trainer.h"
#include "util/status.h"

namespace rl {

constexpr const char* k_real_model_lesson = "real-model";
// The lesson's text, and what to do without a model (where to get one, what runs instead).
const char* real_model_lesson_text();
const char* real_model_lesson_without_model();
// The tiny model's preset and steps when no model is given.
constexpr const char* k_real_model_stand_in = "moe-top2-8";
constexpr int k_real_model_stand_in_steps = 300;

// The stand-in when no model is given: k_real_model_stand_in trained k_real_model_stand_in_steps steps on
// the embedded corpus. progress(step, steps).
Result<std::unique_ptr<TrainState>> real_model_lesson_stand_in(const std::function<void(int, int)>& progress = {});

struct RealModelFindings {
    Analysis analysis;                // the embedded corpus's domains
    int model_top_k = 0;
    std::vector<int> ks;              // the sweep's top-k (those the routing takes)
    std::vector<EvalReport> sweep;    // one per k, on a mix of the domains
};

// The lesson's top-k: 1, K/2, K, 2K within 1..E, those the routing takes.
std::vector<int> real_model_lesson_ks(const Config& cfg, const ModelConfig& c);

// Measures m (cfg: its run's config) on `tokens` tokens per domain: the analysis, then the top-k
// sweep (1, K/2, K, 2K within 1..E) on an equal share of each domain, 4,096 tokens in all at most.
// progress: what is being done, a share of it.
Result<RealModelFindings> real_model_lesson_measure(Model& m, const Config& cfg, const Tokenizer& tok, int tokens,
                                                    int context, const std::function<void(const std::string&)>& progress = {});

// The conclusion from the findings' own numbers: how far above chance the first expert names the
// domain, the most domain-bound expert, how token-bound routing is, and perplexity against active
// parameters at each top-k.
std::string real_model_lesson_conclude(const RealModelFindings& f);

}  // namespace rl
