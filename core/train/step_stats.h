// StepStats (docs/architecture.md §9): what one training step reports, fixed size so it can travel through a
// lock-free ring to the GUI. Per layer: the MoH head load f_i and mean gate P_i, the expert load and
// the balance numbers (CV, dropped, entropy, dead experts, diversity). It lives with the trainer
// that fills it; metrics, io and the views only read it.
#pragma once
#include <cstdint>
#include <vector>

namespace rl {

struct Activations;
struct ModelConfig;

constexpr int k_stats_layers = 16;
constexpr int k_stats_heads = 32;
constexpr int k_stats_experts = 64;

struct LayerRouteStats {
    int n_routed_heads = 0;                 // 0 without MoH
    float head_f[k_stats_heads] = {};       // fraction of tokens that chose routed head i
    float head_P[k_stats_heads] = {};       // mean router probability of routed head i
    float head_cv = 0;                      // std/mean of head_f
    int n_experts = 0;                      // 0 with a dense FFN
    float expert_load[k_stats_experts] = {};  // fraction of expert rows that went to expert e
    float load_cv = 0;                      // std/mean of expert_load (0 = perfectly balanced)
    float dropped_frac = 0;                 // tokens that reached no expert (capacity)
    float router_entropy = 0;               // mean entropy of the expert router (nats)
    float dead_frac = 0;                    // experts that got no row this step
    float diversity = 0;                    // exp(H(load)) / E (1 = uniform)
    bool has_head_bias = false, has_expert_bias = false;  // aux-loss-free balancing on
    float head_bias[k_stats_heads] = {};    // routed head i's selection bias after this step's update
    float expert_bias[k_stats_experts] = {};  // expert e's selection bias after this step's update
};

struct StepStats {
    int step = 0;          // 1-based, after the update
    float loss = 0;        // total training loss of this step's batch
    float ce = 0, moh_balance = 0, moe_aux = 0, zloss = 0;  // parts (routing losses: unweighted layer means)
    float w_moh_balance = 0, w_moe_aux = 0, w_zloss = 0;    // their weights in force at this step (live keys; 0 = off)
    float lr = 0;
    float grad_norm = 0;   // before clipping
    float tok_per_s = 0;   // this step's B*T / wall time
    int threads = 0;       // threads the step ran on (ThreadGovernor)
    float wall_s = 0;      // seconds of training steps since the run started, this one included
    int window = 0;        // attention window used
    // A step whose loss or gradient norm was NaN or infinite is not applied: the weights stay those of
    // the step before, step stays at that step's number + 1 (the one that failed), and this says which.
    enum NonFinite : int { finite = 0, loss_non_finite = 1, grad_non_finite = 2 };
    int non_finite = finite;
    int n_layers = 0;
    bool truncated = false;  // the model has more layers or experts than these stats keep (the first ones are kept)
    LayerRouteStats layers[k_stats_layers];
};

// One step's routing loads, compact (the run store keeps them; the cluster cost model reads them):
// per layer, each routed expert's share of the step's (token, expert) assignments and each routed
// head's share of its (token, head) choices, each row summing to 1; an empty row where the layer has
// no such router. A step whose stats were truncated (more than k_stats_layers layers or
// k_stats_experts experts) keeps no expert rows: the cluster cost needs every layer and expert.
struct StepLoads {
    int step = 0;
    std::vector<std::vector<float>> expert;  // [layer][E]
    std::vector<std::vector<float>> head;    // [layer][H routed]
};
StepLoads step_loads(const StepStats& s);

// Fills the routing part of st from the last forward's activations.
void stats_collect(StepStats& st, const ModelConfig& c, const Activations& a);
struct Model;
// The selection biases (expert_bias, head_bias) of each layer, read after the step's update.
void stats_collect_bias(StepStats& st, const Model& m);
// Coefficient of variation std/mean of n values (0 when the mean is 0).
float stats_cv(const float* v, int n);

}  // namespace rl
