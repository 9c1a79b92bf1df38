#include "lessons/lesson_cluster.h"

#include <algorithm>

#include "metrics/cluster_cost.h"
#include "util/strfmt.h"

namespace rl {

namespace {

// A run's cluster report: its last quarter of steps (at most 200, as `cluster --run` takes them),
// each a batch of B T K pairs, at EP ep on nodes of 8 GPUs, 4096 tokens a rank, capacity factor cf.
Result<ClusterReport> run_cluster(const LessonResult& r, int ep, double cf) {
    const size_t late = std::min(r.curve.size(), cluster_late_steps(r.curve.size()));
    std::vector<StepLoads> steps;  // the late ones only
    for (size_t i = r.curve.size() - late; i < r.curve.size(); i++) steps.push_back(step_loads(r.curve[i]));
    ClusterSetup c;
    c.ep = ep, c.gpus_per_node = 8, c.tokens_per_rank = 4096, c.capacity_factor = cf;
    cluster_setup_model(c, r.cfg.model);
    return cluster_cost(cluster_loads_of_steps(steps, cluster_step_pairs(r.cfg), r.cfg.model.moe.n_experts), c);
}

double max_imbalance(const ClusterReport& r) {
    double v = 0;
    for (const ClusterLayer& l : r.layers) v = std::max(v, l.imbalance);
    return v;
}

double mean_dropped(const ClusterReport& r) {
    double v = 0;
    for (const ClusterLayer& l : r.layers) v += l.dropped_share;
    return r.layers.empty() ? 0 : v / r.layers.size();
}

std::string conclude(const std::vector<LessonResult>& runs) {
    std::string out = "On one node of 8 GPUs (EP 8), 4096 tokens a rank, dropless, then at capacity factor 1.25, from each run's last steps:\n";
    std::vector<double> slow;
    for (const LessonResult& r : runs) {
        auto d = run_cluster(r, 8, 0), c = run_cluster(r, 8, 1.25), wide = run_cluster(r, 64, 0);
        if (!d || !c || !wide) return "the cluster model refused these runs: " + (!d ? d.status.msg : !c ? c.status.msg : wide.status.msg);
        slow.push_back(d->time_measured_s / d->time_balanced_s);
        out += str_printf("  %s: worst layer's imbalance %.2f (1 = balanced, 8 = one GPU gets everything); the MoE layers take "
                          "%.2fx the balanced time; %.1f%% of the pairs dropped at 1.25; at EP 64 on 8 nodes %.2fx; val loss %.3f\n",
                          r.spec.label.c_str(), max_imbalance(*d), slow.back(), 100 * mean_dropped(*c),
                          wide->time_measured_s / wide->time_balanced_s, r.val_loss);
    }
    const auto best = std::min_element(slow.begin(), slow.end()) - slow.begin();
    const auto worst = std::max_element(slow.begin(), slow.end()) - slow.begin();
    out += str_printf("The busiest GPU sets the pace: %s would run its MoE layers %.0f%% slower than balanced, %s %.0f%%. "
                      "Balance buys time on a cluster even where the loss barely moves; whether routing at scale looks like "
                      "this small run's is what the model cannot know (the cluster view lists its assumptions).",
                      runs[worst].spec.label.c_str(), 100 * (slow[worst] - 1), runs[best].spec.label.c_str(), 100 * (slow[best] - 1));
    return out;
}

}  // namespace

Lesson lesson_imbalance_cost() {
    return {"imbalance-cost", "The cost of imbalance: what balancing saves on a cluster",
            "With expert parallelism each GPU holds some of the experts, every token crosses an all-to-all to reach "
            "them, and the GPU that receives the most tokens sets every layer's pace. Train moe-top2-8 three ways, "
            "with the Switch aux loss, with the aux-loss-free expert bias (DeepSeek-V3: sigmoid scores, bias rate "
            "0.003) and with no balancing at all, and cost each run's measured loads on the same cluster.",
            "cluster", "the imbalance over training and the MoE layers' time, measured over balanced", "cluster.trend",
            {{"aux loss", "moe-top2-8", {"train.steps=300"}},
             {"aux-loss-free bias", "moe-top2-8", {"train.steps=300", "model.moe.aux_weight=0", "model.moe.z_loss_weight=0",
                                                    "model.moe.score_function=\"sigmoid\"", "model.moe.expert_bias=true",
                                                    "model.moe.bias_update_rate=0.003"}},
             {"no balancing", "moe-top2-8", {"train.steps=300", "model.moe.aux_weight=0", "model.moe.z_loss_weight=0"}}},
            conclude};
}

}  // namespace rl
