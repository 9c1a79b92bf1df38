#include "lessons/lessons.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "config/presets.h"
#include "lessons/lesson_cluster.h"
#include "model/model.h"
#include "train/trainer.h"
#include "util/strfmt.h"

namespace rl {

namespace {

// The rule of cost_doubt (infer/cost.h) for speeds measured in separate runs: a model can run faster
// than another only as far as it computes less, so a speed ratio beyond the FLOP ratio by more than
// k_cost_beyond_flops was measured while the machine was busy with something else. Empty when sound.
std::string speed_doubt(const std::vector<LessonResult>& r, std::initializer_list<size_t> against_first) {
    std::string out;
    for (size_t k : against_first) {
        if (k >= r.size() || r[0].tok_per_s <= 0 || r[k].tok_per_s <= 0 || r[k].flops_per_token <= 0) continue;
        const double measured = r[k].tok_per_s / r[0].tok_per_s, flops = r[0].flops_per_token / r[k].flops_per_token;
        if (measured > k_cost_beyond_flops * flops)
            out += str_printf(" Measured under load: %s ran %.2fx the speed of %s while its FLOPs allow %.2fx; re-run this lesson on a "
                              "quiet machine before trusting the speeds.",
                              r[k].spec.label.c_str(), measured, r[0].spec.label.c_str(), flops);
    }
    return out;
}


// Layer means of the routing summary.
double mean_expert_cv(const LessonResult& r) {
    double s = 0;
    for (const auto& l : r.routing.layers) s += l.expert_load_cv;
    return r.routing.layers.empty() ? 0 : s / r.routing.layers.size();
}
double mean_head_cv(const LessonResult& r) {
    double s = 0;
    for (const auto& l : r.routing.layers) s += l.head_load_cv;
    return r.routing.layers.empty() ? 0 : s / r.routing.layers.size();
}
double mean_of(const LessonResult& r, double LayerRoutingSummary::*f) {
    double s = 0;
    for (const auto& l : r.routing.layers) s += l.*f;
    return r.routing.layers.empty() ? 0 : s / r.routing.layers.size();
}
// The largest layer-mean expert load CV over the run's steps, and its step.
std::pair<double, int> peak_cv(const LessonResult& r) {
    double best = 0;
    int at = 0;
    for (const StepStats& s : r.curve) {
        double cv = 0;
        for (int l = 0; l < s.n_layers; l++) cv += s.layers[l].load_cv / s.n_layers;
        if (cv > best) best = cv, at = s.step;
    }
    return {best, at};
}
const CostComponent& component(const CostSide& s, const char* name) {
    for (const auto& c : s.components)
        if (c.name == name) return c;
    return s.total();
}

Lesson lesson_heads() {
    return {"heads", "What Mixture-of-Heads does",
            "MoH keeps a few shared heads on for every token and lets a router switch on K of the other (routed) "
            "heads per token, scaling each head's output by its gate. Train seed-moh (2 shared + 4 of 6 routed heads) "
            "and see which routed heads which tokens pick.",
            "heads", "dark cells: heads switched off for that token; the S columns (shared heads) never go dark", "heads.map",
            {{"seed-moh", "seed-moh", {"train.steps=300"}}},
            [](const std::vector<LessonResult>& r) {
                const LessonResult& a = r[0];
                const auto& L = a.routing.layers.front();
                const auto mm = std::minmax_element(L.head_load_f.begin(), L.head_load_f.end());
                const int S = a.cfg.model.attention.heads.n_shared;
                return str_printf("After %d steps (validation loss %.3f): in layer 0 the shared heads 0..%d ran for every token, while "
                           "routed head %d ran for %.0f%% of the tokens and routed head %d for %.0f%% (each token picks %d of %zu; "
                           "a perfectly even split is %.0f%%). The head load CV is %.2f averaged over the layers: the router "
                           "prefers some heads, and the balance loss (beta %.3g) keeps it from using only those.",
                           a.steps, a.val_loss, S - 1, S + (int)(mm.second - L.head_load_f.begin()), 100 * *mm.second,
                           S + (int)(mm.first - L.head_load_f.begin()), 100 * *mm.first, a.cfg.model.attention.heads.n_active_routed,
                           L.head_load_f.size(), 100.0 * a.cfg.model.attention.heads.n_active_routed / L.head_load_f.size(),
                           mean_head_cv(a), a.cfg.model.attention.heads.beta);
            }};
}

Lesson lesson_collapse() {
    return {"collapse", "Router collapse: MoE without a balance loss",
            "A router learns to send tokens to the experts that are already good, which makes them better still: "
            "without a balance loss a few experts take most tokens and the rest starve. Train moe-top2-8 twice, with "
            "the aux and z losses off and with the default aux loss 0.01.",
            "curves", "the expert load CV curve (balance plot) and the per-expert load of each run", "curves.balance",
            {{"no balance loss", "moe-top2-8", {"train.steps=300", "model.moe.aux_weight=0", "model.moe.z_loss_weight=0"}},
             {"aux loss 0.01", "moe-top2-8", {"train.steps=300"}}},
            [](const std::vector<LessonResult>& r) {
                const auto [peak, at] = peak_cv(r[0]);
                const double gap = r[1].val_loss - r[0].val_loss;
                return str_printf("Without a balance loss the expert load CV (layer mean, last 50 steps) ended at %.2f, peaking at %.2f "
                           "at step %d, with %.0f%% of the experts dead (no token in a step); with the aux loss it ended at %.2f "
                           "with %.0f%% dead. Validation loss: %.3f without, %.3f with: %s",
                           mean_expert_cv(r[0]), peak, at, 100 * mean_of(r[0], &LayerRoutingSummary::dead_expert_frac),
                           mean_expert_cv(r[1]), 100 * mean_of(r[1], &LayerRoutingSummary::dead_expert_frac), r[0].val_loss,
                           r[1].val_loss,
                           gap <= 0 ? "the balanced run is no worse, and every expert keeps learning."
                                    : str_printf("balance cost %.3f nats here, the price of keeping every expert in use.", gap).c_str());
            }};
}

Lesson lesson_capacity() {
    return {"capacity", "Switch capacity: how many tokens are dropped",
            "Switch Transformer routes each token to one expert and gives every expert room for capacity_factor x "
            "T/E tokens; tokens over the room skip the FFN (only the residual carries them). Train switch-top1 at "
            "capacity factor 1.0 and 1.5.",
            "experts", "each layer's dropped share, on the line above its load bars (this is the capacity 1.5 run; an expert over "
            "its room drops the rest of its tokens in training, so the probe text, routed without a limit, has none framed)", "experts.load",
            {{"capacity 1.0", "switch-top1", {"train.steps=300", "model.moe.capacity_factor=1.0"}},
             {"capacity 1.5", "switch-top1", {"train.steps=300", "model.moe.capacity_factor=1.5"}}},
            [](const std::vector<LessonResult>& r) {
                const double d0 = mean_of(r[0], &LayerRoutingSummary::dropped_frac), d1 = mean_of(r[1], &LayerRoutingSummary::dropped_frac);
                return str_printf("At capacity factor 1.0, %.1f%% of the tokens were dropped per layer (mean of the last 50 steps); at "
                           "1.5, %.1f%%. Validation loss %.3f at 1.0 and %.3f at 1.5 (%s). A dropped token still reaches the "
                           "next layer through the residual; the room an expert reserves costs memory and compute on a real "
                           "accelerator, which is what the factor trades.",
                           100 * d0, 100 * d1, r[0].val_loss, r[1].val_loss,
                           std::abs(r[0].val_loss - r[1].val_loss) < 0.02 ? "about the same after this short run"
                           : r[1].val_loss < r[0].val_loss ? "fewer drops, lower loss" : "the drops did not hurt here");
            }};
}

Lesson lesson_expert_size() {
    return {"expert-size", "Same-size experts or fine-grained ones",
            "The notes say top-2 of 8 experts is faster than a dense model. With experts the size of the dense FFN "
            "(moe-top2-8), top-2 computes two FFNs per token: twice the FFN work of the dense model. Fine-grained "
            "experts (deepseek-shared: 2 shared + top-6 of 30 experts of a quarter the width) keep the parameters "
            "and the active compute. Train the dense baseline and both.",
            "speedup", "the FLOP model and the measured columns for the FFN", "speedup.bars",
            {{"dense", "seed-baseline", {"train.steps=200"}},
             {"top-2 of 8 same-size", "moe-top2-8", {"train.steps=200"}},
             {"fine-grained", "deepseek-shared", {"train.steps=200"}}},
            [](const std::vector<LessonResult>& r) {
                return str_printf("FLOP model per token: the dense model %.2f MFLOP, top-2 of 8 same-size experts %.2f (%.2fx the dense), "
                           "fine-grained %.2f (%.2fx). Measured training speed: dense %.0f tok/s, top-2 of 8 %.0f (%.2fx the dense "
                           "speed), fine-grained %.0f (%.2fx). Validation loss after %d steps: %.3f, %.3f, %.3f. So top-2 of 8 "
                           "same-size experts is %.0f%% %s than the dense model on this machine; what MoE buys is parameters "
                           "(8 FFNs) at the compute of 2, not speed over a dense model of one.",
                           r[0].flops_per_token / 1e6, r[1].flops_per_token / 1e6, r[1].flops_per_token / r[0].flops_per_token,
                           r[2].flops_per_token / 1e6, r[2].flops_per_token / r[0].flops_per_token, r[0].tok_per_s, r[1].tok_per_s,
                           r[1].tok_per_s / r[0].tok_per_s, r[2].tok_per_s, r[2].tok_per_s / r[0].tok_per_s, r[0].steps,
                           r[0].val_loss, r[1].val_loss, r[2].val_loss,
                           100 * std::abs(1 - r[1].tok_per_s / r[0].tok_per_s),
                           r[1].tok_per_s < r[0].tok_per_s ? "slower" : "faster") +
                       speed_doubt(r, {1, 2});
            }};
}

Lesson lesson_moh_speed() {
    return {"moh-speed", "What skipping heads really saves",
            "The notes estimate that running 75% of the heads makes a model 5-8% faster. moh-50 runs half its heads "
            "per token. RouteLab skips the heads a token switched off, forward and backward, and measures the same "
            "weights dense (every head computed and masked, as the official MoH code does) and routed.",
            "speedup", "naive, FLOP model and measured, per component, for the forward, decode and a training step", "speedup.bars",
            {{"moh-50", "moh-50", {"train.steps=300"}, true}},
            [](const std::vector<LessonResult>& r) {
                const CostReport& c = r[0].cost;
                const CostComponent &f = c.forward.total(), &t = c.train.total(), &fa = component(c.forward, "attention");
                const std::string doubts = cost_doubts(c);
                return str_printf("%.0f%% of the (token, head) pairs were active. Forward: naive estimate %.2fx, FLOP model %.2fx, "
                           "measured %.2fx (attention alone: FLOP model %.2fx, measured %.2fx). A training step: FLOP model "
                           "%.2fx, measured %.2fx. Against the plain model of the same shape (every head, no router): forward "
                           "%.2fx, training %.2fx. The naive estimate counts only the head work; the router, the untouched "
                           "FFN and LM head, and the cost of gathering rows set what is really saved.",
                           100 * c.active_head_fraction, f.speedup_naive(), f.speedup_flops(), f.speedup_measured(),
                           fa.speedup_flops(), fa.speedup_measured(), t.speedup_flops(), t.speedup_measured(),
                           f.speedup_vs_all_heads(), t.speedup_vs_all_heads()) +
                       (doubts.empty() ? "" : " Measured under load: re-measure before trusting these times (" + doubts + ").");
            }};
}

Lesson lesson_aux_free() {
    return {"aux-free", "Balancing without an aux loss: the expert bias",
            "DeepSeek-V3 scores experts with a sigmoid and balances them with a per-expert bias added to the scores for "
            "the choice only, moved after each step against the expert's load; no balance loss pulls on the task "
            "gradient. Train moe-top2-8 with sigmoid scores and no aux or z loss, with and without the bias (rate "
            "0.003 so it shows in a short run).",
            "curves", "the expert bias plot under the per-expert load: over-chosen experts' biases fall, starved ones' rise", "curves.bias",
            {{"sigmoid, no bias", "moe-top2-8", {"train.steps=300", "model.moe.aux_weight=0", "model.moe.z_loss_weight=0",
                                                  "model.moe.score_function=\"sigmoid\""}},
             {"sigmoid + expert bias", "moe-top2-8", {"train.steps=300", "model.moe.aux_weight=0", "model.moe.z_loss_weight=0",
                                                       "model.moe.score_function=\"sigmoid\"", "model.moe.expert_bias=true",
                                                       "model.moe.bias_update_rate=0.003"}}},
            [](const std::vector<LessonResult>& r) {
                return str_printf("Expert load CV (layer mean, last 50 steps): %.2f without the bias, %.2f with it (%.0f%% lower), with "
                           "%.0f%% and %.0f%% dead experts. Validation loss %.3f and %.3f. The bias balances the load without a "
                           "loss term: the gradient only ever sees the language-modelling loss.",
                           mean_expert_cv(r[0]), mean_expert_cv(r[1]), 100 * (1 - mean_expert_cv(r[1]) / std::max(1e-9, mean_expert_cv(r[0]))),
                           100 * mean_of(r[0], &LayerRoutingSummary::dead_expert_frac),
                           100 * mean_of(r[1], &LayerRoutingSummary::dead_expert_frac), r[0].val_loss, r[1].val_loss);
            }};
}

Lesson lesson_specialization() {
    return {"specialization", "What experts learn",
            "Do experts specialise? Train moe-top2-8 and route validation text: count which domain (stories, facts, "
            "dialogue, arithmetic, code) each token's top expert sees, and compare with the same model whose router "
            "weights are random.",
            "experts", "the expert x domain matrix and the NMI line above it", "experts.matrix",
            {{"moe-top2-8", "moe-top2-8", {"train.steps=300"}, false, true}},
            [](const std::vector<LessonResult>& r) {
                const SpecializationBaseline& b = r[0].spec_nmi;
                std::string per;
                for (size_t l = 0; l < b.trained.layers.size(); l++)
                    per += str_printf("%slayer %zu: %.3f (random router %.3f)", l ? ", " : "", l, b.trained.layers[l].nmi_domain,
                               b.random_router.layers[l].nmi_domain);
                // The most specialised expert: the largest share of one domain among its tokens.
                int best_e = -1, best_d = 0, best_l = 0;
                double best = 0;
                for (size_t l = 0; l < b.trained.layers.size(); l++)
                    for (size_t e = 0; e < b.trained.layers[l].by_domain.size(); e++) {
                        const auto& row = b.trained.layers[l].by_domain[e];
                        double sum = 0;
                        for (double x : row) sum += x;
                        for (size_t d = 0; d < row.size(); d++)
                            if (sum >= 20 && row[d] / sum > best) best = row[d] / sum, best_e = (int)e, best_d = (int)d, best_l = (int)l;
                    }
                return str_printf("NMI between each token's top expert and its domain, %s: the trained router's experts are %s "
                           "than chance. The most specialised is expert %d of layer %d: %.0f%% of its tokens are %s.",
                           per.c_str(),
                           b.trained.layers.empty() || b.trained.layers[0].nmi_domain > b.random_router.layers[0].nmi_domain
                               ? "more domain-specific" : "not more domain-specific",
                           best_e, best_l, 100 * best, domain_name(best_d));
            }};
}

std::vector<Lesson> make_lessons() {
    return {lesson_heads(), lesson_collapse(), lesson_capacity(), lesson_expert_size(), lesson_moh_speed(), lesson_aux_free(), lesson_specialization(),
            lesson_imbalance_cost()};
}

}  // namespace

const std::vector<Lesson>& lessons() {
    static const std::vector<Lesson> v = make_lessons();
    return v;
}

const Lesson* lesson_find(const std::string& name) {
    for (const Lesson& l : lessons())
        if (l.name == name) return &l;
    return nullptr;
}

Result<std::vector<LessonResult>> lesson_run(const Lesson& l, const std::function<void(int, int, int)>& progress) {
    std::vector<LessonResult> out;
    for (size_t i = 0; i < l.runs.size(); i++) {
        const LessonRunSpec& spec = l.runs[i];
        auto cfg = preset_load(spec.preset);
        if (!cfg) return cfg.status;
        for (const auto& s : spec.sets)
            if (Status st = config_apply_override(*cfg, s); !st) return st;
        const auto t0 = std::chrono::steady_clock::now();
        auto st = trainer_create(*cfg);
        if (!st) return st.status;
        TrainState& s = **st;
        LessonResult r;
        r.spec = spec;
        std::vector<StepStats> tail;
        while (s.step < s.cfg.train.steps) {
            r.curve.push_back(trainer_step(s));
            if (r.curve.back().non_finite)
                return Status::error("lesson " + l.name + ", run '" + spec.label + "': " + non_finite_message(r.curve.back()) +
                                     " (the step was not applied; try the lesson again)");
            if (progress) progress((int)i, s.step, s.cfg.train.steps);
        }
        for (size_t k = r.curve.size() > (size_t)k_routing_summary_steps ? r.curve.size() - k_routing_summary_steps : 0;
             k < r.curve.size(); k++) {
            tail.push_back(r.curve[k]);
            r.tok_per_s += r.curve[k].tok_per_s;
        }
        r.tok_per_s /= std::max<size_t>(1, tail.size());
        r.routing = routing_summary_build(s.cfg.model, tail);
        r.val_loss = trainer_eval(s);
        r.steps = s.step;
        r.cfg = s.cfg;
        r.flops_per_token = model_flops_per_token(s.cfg.model, s.cfg.model.seq_len).total();
        if (spec.measure_cost) r.cost = cost_measure(s.model, 0.25, 3);
        if (spec.measure_specialization)
            r.spec_nmi = specialization_baseline_measure(s.model, s.data->tok, s.data->val, 16 * 80 * 8, s.cfg.train.seed + 99);
        r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        out.push_back(std::move(r));
    }
    return out;
}

}  // namespace rl
