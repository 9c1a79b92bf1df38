#include "lessons/real_model.h"

#include <algorithm>
#include <set>

#include "config/presets.h"
#include "infer/interventions.h"
#include "util/strfmt.h"

namespace rl {

const char* real_model_lesson_text() {
    return "A real MoE checkpoint on text you can read: do its experts specialise by domain (stories, facts, dialogue, "
           "arithmetic, code: the embedded corpus through the model's own tokenizer), against a random router of the "
           "same load; and what does routing each token to fewer (or more) experts than it was trained with cost?";
}

const char* real_model_lesson_without_model() {
    return "No model given. Download one in the Hugging Face layout (for example `huggingface-cli download "
           "allenai/OLMoE-1B-7B-0924 --local-dir olmoe`; Mixtral, Qwen2-MoE, Qwen3-MoE, GraniteMoE and OLMoE "
           "folders open) and run `routelab --lesson real-model --model olmoe`. Meanwhile the lesson runs on a tiny "
           "MoE trained here (moe-top2-8, 300 steps).";
}

Result<std::unique_ptr<TrainState>> real_model_lesson_stand_in(const std::function<void(int, int)>& progress) {
    auto cfg = preset_load(k_real_model_stand_in);
    if (!cfg) return cfg.status;
    cfg->train.steps = k_real_model_stand_in_steps;
    auto st = trainer_create(*cfg);
    if (!st) return st.status;
    for (int s = 0; s < cfg->train.steps; s++) {
        const StepStats stats = trainer_step(**st);
        if (stats.non_finite) return Status::error(non_finite_message(stats));
        if (progress) progress(s + 1, cfg->train.steps);
    }
    return st;
}

// Of 1, K/2, K, 2K, those the routing takes (a group-limited router needs a top-k its kept groups divide).
std::vector<int> real_model_lesson_ks(const Config& cfg, const ModelConfig& c) {
    const int K = c.moe.top_k, E = c.moe.n_experts;
    const std::set<int> want{1, std::max(1, K / 2), K, std::min(E, 2 * K)};
    return interventions_top_k_accepted(cfg, c, {}, {want.begin(), want.end()});
}

Result<RealModelFindings> real_model_lesson_measure(Model& m, const Config& cfg, const Tokenizer& tok, int tokens,
                                                    int context, const std::function<void(const std::string&)>& progress) {
    if (m.cfg.moe.kind == FfnRouting::dense || m.cfg.moe.routing != MoeRouting::topk)
        return Status::error("the real-model lesson needs a top-k MoE model (a dense FFN has no experts to read)");
    auto domains = analysis_domains_read({}, tok, (size_t)std::max(16, tokens));
    if (!domains) return domains.status;
    RealModelFindings f;
    f.model_top_k = m.cfg.moe.top_k;
    const int ctx = std::clamp(context, 2, m.cfg.seq_len);
    AnalysisOptions ao;
    ao.context = ctx;
    ao.progress = [&](int64_t done, int64_t total) {
        if (progress) progress(str_printf("experts x domains: %lld of %lld tokens", (long long)done, (long long)total));
    };
    f.analysis = analysis_run(m, tok, *domains, ao);
    std::vector<int> mix;  // an equal share of each domain, 4,096 tokens in all at most
    const size_t share = 4096 / domains->size();
    for (const AnalysisDomain& d : *domains) mix.insert(mix.end(), d.ids.begin(), d.ids.begin() + (ptrdiff_t)std::min(share, d.ids.size()));
    f.ks = real_model_lesson_ks(cfg, m.cfg);
    EvalOptions eo;
    eo.context = ctx;
    eo.progress = [&](int done, int total) {
        if (progress) progress(str_printf("top-k sweep: window %d of %d", done, total));
    };
    auto sweep = eval_top_k_sweep(m, cfg, {}, f.ks, mix, eo);
    if (!sweep) return sweep.status;
    f.sweep = std::move(*sweep);
    return f;
}

std::string real_model_lesson_conclude(const RealModelFindings& f) {
    const Analysis& a = f.analysis;
    if (a.layers.empty() || f.sweep.empty()) return "nothing was measured";
    const LayerAnalysis *lo = &a.layers[0], *hi = &a.layers[0];
    double excess = 0, vocab = 0;
    for (const LayerAnalysis& l : a.layers) {
        if (l.nmi_domain < lo->nmi_domain) lo = &l;
        if (l.nmi_domain > hi->nmi_domain) hi = &l;
        excess += l.nmi_domain - l.nmi_domain_random_router;
        vocab += l.vocab_specialisation;
    }
    excess /= a.layers.size(), vocab /= a.layers.size();
    // The most domain-bound expert: the largest share of one domain among its choices (at least 50).
    int be = 0, bl = 0, bd = 0;
    double best = 0;
    for (const LayerAnalysis& l : a.layers)
        for (size_t e = 0; e < l.by_domain.size(); e++) {
            double sum = 0;
            for (double x : l.by_domain[e]) sum += x;
            for (size_t d = 0; sum >= 50 && d < l.by_domain[e].size(); d++)
                if (l.by_domain[e][d] / sum > best) best = l.by_domain[e][d] / sum, be = (int)e, bl = l.layer, bd = (int)d;
        }
    const int E = (int)a.layers[0].by_domain.size(), D = (int)a.domains.size();
    std::string s = str_printf(
        "On %lld tokens of %d domains, a token's first expert names its domain with NMI %.3f (layer %d) to %.3f (layer %d), "
        "%.3f above a random router of the same load on average: %s. ",
        (long long)a.tokens, D, lo->nmi_domain, lo->layer, hi->nmi_domain, hi->layer, excess,
        excess > 0.1 ? "well above chance" : excess > 0.02 ? "a little above chance" : "no more than chance");
    if (best > 0)
        s += str_printf("The most domain-bound expert is %d of layer %d, with %.0f%% of its choices from %s (an even split "
                        "would be %.0f%%). ", be, bl, 100 * best, a.domains[bd].c_str(), 100.0 / D);
    s += str_printf("Much of that follows the tokens, which differ between domains: a token's favourite expert is among its "
                    "experts in %.0f%% of its occurrences (about %.0f%% if routing ignored the token). ",
                    100 * vocab, 100.0 * f.model_top_k / E);
    size_t own = f.sweep.size();
    for (size_t i = 0; i < f.ks.size() && i < f.sweep.size(); i++)
        if (f.ks[i] == f.model_top_k) own = i;
    if (own == f.sweep.size()) return s + "The top-k sweep did not reach the model's own top-k: no cost to compare with.";
    const EvalReport& base = f.sweep[own];
    s += str_printf("At its own top-%d the perplexity is %.2f with %.3gM active parameters per token", f.model_top_k,
                    base.perplexity, base.active_params / 1e6);
    for (size_t i = 0; i < f.sweep.size() && i < f.ks.size(); i++) {
        if (i == own) continue;
        s += str_printf("; top-%d: %.2f (%+.1f%%) with %+.0f%% active parameters", f.ks[i], f.sweep[i].perplexity,
                        100 * (f.sweep[i].perplexity / base.perplexity - 1), 100 * (f.sweep[i].active_params / base.active_params - 1));
    }
    return s + ".";
}

}  // namespace rl
