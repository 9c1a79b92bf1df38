// Model, training and data configuration: the JSON a user edits, validated once, up front.
// Every key is documented in README.md ("Config keys"); unknown keys are rejected by name.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace rl {

enum class NormKind { rmsnorm, layernorm };
enum class NormPosition { pre, post };
enum class PosKind { none, learned, rope, cope };
enum class WindowKind { full, sliding, adaptive };
enum class WindowStrategy { fixed, seq_len, entropy };
enum class FfnKind { swiglu, relu, gelu };
enum class HeadSelection { all_heads, static_pruning, moh };
enum class GateScaling { official, paper };
enum class HeadRouterKind { learned, query_norm, experts };
enum class HeadsPath { skip, dense_masked };
enum class DeviceKind { automatic, cpu, cuda };
enum class FfnRouting { dense, moe, mh_moe };
enum class MoeRouting { topk, top1_capacity, noisy_topk, expert_choice };
enum class AuxConvention { switch_t, hf };
enum class ScoreFunction { softmax, sigmoid };
enum class LoadBalancing { aux_loss, seq_aux_loss, global_aux_loss, none };
enum class TokenDropPolicy { position, probs };
enum class QkNorm { none, full, head };
enum class RopeScaling { none, llama3 };
enum class TopkWeights { automatic, renormalised, probs };

struct WindowConfig {
    WindowKind kind = WindowKind::full;
    int size = 0;                 // sliding, and adaptive "fixed": keys visible incl. self
    WindowStrategy strategy = WindowStrategy::seq_len;  // adaptive only
    int min = 16;                 // adaptive bounds
    int max = 64;
};

// Which heads run for each token (docs/routing-math.md §3). Gates scale each head's output before W_O.
struct HeadsConfig {
    HeadSelection kind = HeadSelection::all_heads;
    int n_active = 8;             // static_pruning: heads 0..n_active-1 on for every token
    int n_shared = 2;             // moh: heads 0..n_shared-1 always on
    int n_active_routed = 4;      // moh: K of the n_heads - n_shared routed heads per token
    float beta = 0.01f;           // moh: balance-loss weight (live)
    GateScaling gate_scaling = GateScaling::official;
    // Aux-loss-free head balancing: a per-routed-head bias added to r for the top-K choice only (the
    // gates use r), moved after each step by bias_update_rate * sign(mean f - f_i). A buffer, not a
    // parameter (docs/routing-math.md §12.5).
    bool head_bias = false;
    float bias_update_rate = 1e-3f;
    // moh: who chooses the routed heads. learned: the router above (W_r, W_s, W_h). query_norm: no
    // weights; per token the n_active_routed routed heads whose queries (before RoPE) have the largest
    // L2 norm, every gate 1 (shared and chosen heads), others 0: the rule SkyworkAI's MoH-LLaMA3
    // inference code applies to Llama-3 weights (docs/hf-models.md). Forward only. experts: JetMoE's
    // mixture of attention heads (docs/hf-models.md): the heads form n_experts attention experts of
    // H / n_experts heads, head h in expert h % n_experts (so that a kv group holds one head of each);
    // W_r (n_experts, C), per token the top k = n_active_routed / (H / n_experts) experts by logit,
    // each of their heads gated by the softmax over the k chosen logits, the other heads 0 (n_shared
    // 0). Forward and router gradient; training refuses it (config_training_blocker).
    HeadRouterKind router = HeadRouterKind::learned;
    int n_experts = 0;            // experts router only: attention experts
};

// RoPE frequencies rescaled per band, as Llama 3.1+ checkpoints set (transformers modeling_rope_utils.py
// _compute_llama3_parameters): wavelengths above original_max_positions / low_freq_factor are divided by
// factor, those below original_max_positions / high_freq_factor kept, the band between blended.
struct RopeScalingConfig {
    RopeScaling kind = RopeScaling::none;
    float factor = 8.f;
    float low_freq_factor = 1.f;
    float high_freq_factor = 4.f;
    int original_max_positions = 8192;
};

struct AttentionConfig {
    bool use_wo = false;          // output projection W_O (C x H*D)
    PosKind positional = PosKind::cope;
    int cope_npos = 64;           // CoPE integer positions
    bool cope_shared = false;     // one table per layer shared by its heads (docs/routing-math.md §1.5) vs one per head
    float rope_theta = 10000.f;
    RopeScalingConfig rope_scaling;  // forward only (config_training_blocker)
    // Settings that Hugging Face checkpoints carry (docs/hf-models.md): forward only, training refuses
    // them (config_training_blocker).
    float scale = 0.f;            // score scale; 0 = 1/sqrt(head_dim) (GraniteMoe: attention_multiplier)
    bool qkv_bias = false;        // biases on W_q, W_k, W_v (Qwen2-MoE)
    bool out_bias = false;        // a bias (C) added to the block's output after W_O (JetMoE's experts.bias)
    QkNorm qk_norm = QkNorm::none; // RMSNorm of q and k before RoPE: over the whole projection (OLMoE) or per head (Qwen3-MoE)
    WindowConfig window;
    HeadsConfig heads;
};

struct FfnConfig {
    FfnKind kind = FfnKind::swiglu;
    int d_ff = 256;
};

// Sparse FFN (docs/routing-math.md §2, §4). Experts are SwiGLU FFNs of width d_ff_expert; with mh_moe each token is
// split into n_heads sub-tokens of width d_model/n_heads between a head and a merge layer.
struct MoeConfig {
    FfnRouting kind = FfnRouting::dense;
    int n_experts = 8;                    // E routed experts
    int top_k = 2;                        // K
    MoeRouting routing = MoeRouting::topk;
    float capacity_factor = 1.25f;        // top1_capacity: C = ceil(T/E * cf); expert_choice: T*cf/E per expert (live)
    int n_shared_experts = 0;             // always-on experts (DeepSeekMoE); routed weights then unnormalised
    int d_ff_expert = 256;
    float aux_weight = 0.01f;             // alpha (live)
    AuxConvention aux_convention = AuxConvention::switch_t;  // switch: E*sum f P (sum f = 1); hf: sum f = K
    float z_loss_weight = 1e-3f;          // ST-MoE router z-loss (live)
    float jitter = 0.f;                   // noisy_topk noise scale / Switch input jitter (live)
    int n_heads = 2;                      // mh_moe sub-tokens per token
    // Engine routing (docs/routing-math.md §12; names are Megatron-Core's TransformerConfig fields).
    ScoreFunction score_function = ScoreFunction::softmax;  // sigmoid: s = sigma(z), top-K weights s / sum s (DeepSeek-V3)
    bool expert_bias = false;             // aux-loss-free balancing: per-expert bias on the selection scores only
    float bias_update_rate = 1e-3f;       // u: b_i += u * sign(mean load - load_i) after each step (live)
    LoadBalancing load_balancing = LoadBalancing::aux_loss;  // what aux_weight multiplies
    int global_aux_window = 8;            // global_aux_loss: f counts over this many steps (this one included)
    float topk_scaling_factor = 1.f;      // gamma: every routed combine weight times gamma (routed_scaling_factor)
    int n_groups = 1;                     // experts in n_groups contiguous groups
    int group_topk = 0;                   // > 0: a token first keeps its best group_topk groups (group-limited routing)
    TokenDropPolicy token_drop_policy = TokenDropPolicy::position;  // over capacity: latest tokens or lowest weights lose
    // Softmax top-k combine weights: renormalised over the K selected (HF norm_topk_prob=true, Mixtral), the
    // plain probabilities (norm_topk_prob=false, OLMoE), or automatic (renormalised for topk without
    // shared experts and noisy_topk, as before).
    TopkWeights topk_weights = TopkWeights::automatic;
    int d_ff_shared = 0;                  // width of each shared expert; 0 = d_ff_expert (Qwen2-MoE's is wider)
    bool shared_expert_gate = false;      // the shared experts' sum times sigmoid(w . x), w (1, C) (Qwen2-MoE)
    bool out_bias = false;                // a bias (C) added once to the sparse block's output (JetMoE's mlp.bias)
    // Layers whose FFN is the dense one (model.ffn) rather than the sparse one: comma-separated indices
    // ("0,3"), as HF's mlp_only_layers / decoder_sparse_step / first_k_dense_replace produce.
    std::string dense_layers;
    // Routing interventions (issue 24: experiments on a frozen model, forward only). masked_experts:
    // comma-separated experts no token may choose ("3,5"; their selection key is -inf, so the next best
    // ones are chosen), an entry "l:e" for layer l only ("0:3,1:5": each layer's least used experts). inference_capacity_factor: 0 = none; > 0 = outside training, each expert keeps at
    // most ceil(N K cf / E) of its N K choices under token_drop_policy (GShard's capacity with top-k), the
    // rest dropped as in training.
    std::string masked_experts;
    float inference_capacity_factor = 0.f;
};

struct ModelConfig {
    int d_model = 128;            // C
    int n_layers = 3;             // L
    int n_heads = 8;              // H
    int n_kv_heads = 4;           // G
    int head_dim = 16;            // D
    int seq_len = 80;             // T (context length; learned positions have this many rows)
    int vocab_size = 0;           // V; 0 = taken from the tokenizer
    NormKind norm = NormKind::rmsnorm;
    NormPosition norm_position = NormPosition::pre;
    float norm_eps = 1e-5f;
    bool final_norm = false;
    float final_norm_eps = 0.f;   // the final norm's epsilon; 0 = norm_eps (JetMoE's layer norms keep 1e-6)
    bool tie_embeddings = false;
    bool lm_head_bias = false;
    float embedding_multiplier = 1.f;  // embeddings times this (GraniteMoe)
    float residual_multiplier = 1.f;   // each block branch times this before the residual add (GraniteMoe)
    float logits_scaling = 1.f;        // logits divided by this (GraniteMoe)
    AttentionConfig attention;
    FfnConfig ffn;
    MoeConfig moe;
};

struct TrainConfig {
    int steps = 1000;
    int batch_size = 16;
    float lr = 3e-3f;
    float min_lr = 3e-4f;
    int warmup_steps = 50;
    float weight_decay = 0.01f;
    float beta1 = 0.9f;
    float beta2 = 0.95f;
    float eps = 1e-8f;
    float grad_clip = 1.0f;       // global norm; 0 = off
    int eval_every = 100;
    int eval_batches = 8;
    unsigned seed = 1234;
    float init_std = 0.02f;
    // Head selection (MoH, static pruning): skip computes only the (token, head) pairs with a non-zero
    // gate, forward and backward; dense_masked computes every head and masks, as the official MoH code
    // does (docs/routing-math.md §3.8). Same loss and gradients; skip is faster.
    HeadsPath heads_path = HeadsPath::skip;
    // Where the model lives and its ops run (backend/device.h): cpu, cuda, or auto (CUDA when this build
    // has the backend and a GPU answers, else the CPU, said once).
    DeviceKind device = DeviceKind::automatic;
};

struct DataConfig {
    // auto: word for the embedded corpus and files up to 200 KB, bpe above (a closed word vocabulary
    // of a large text is mostly rare words); word | bpe | unigram
    std::string tokenizer = "auto";
    // 0 = sized to the text: bpe/unigram 2000..8000 by corpus size, word capped at 8000 for files
    // (the embedded corpus is never capped). > 0: the subword target, or the word cap.
    int vocab_size = 0;
    std::string corpus = "embedded";  // "embedded" or a path (.txt, or RustGPT .json array)
    int synthetic_docs = 1500;        // procedural documents per synthetic domain (arithmetic, code)
    float val_fraction = 0.1f;
    unsigned corpus_seed = 7;
};

struct Config {
    std::string name;
    std::string description;
    ModelConfig model;
    TrainConfig train;
    DataConfig data;
};

// Parsing rejects unknown keys and wrong types, naming the full key path ("model.attention.window.size").
Result<Config> config_from_json(const std::string& text);
Result<Config> config_load(const std::string& path);
std::string config_to_json(const Config& cfg);  // pretty JSON, every key written
// Checks value ranges and cross-key constraints (C % H, H % G, ...); the message names the key,
// its value and what is allowed. Called once, up front, by everything that builds a model.
Status config_validate(const Config& cfg);
// Advice that does not block training (e.g. MoH with K = 1 gives the router no task gradient).
std::vector<std::string> config_warnings(const Config& cfg);
// Why generation is unavailable for this config (expert choice is not causal), or empty.
std::string config_generation_blocker(const ModelConfig& m);
// Why this config cannot be trained (settings that only the forward honours: an imported Hugging Face
// model's quirks), or empty.
std::string config_training_blocker(const ModelConfig& m);
// model.moe.dense_layers as a per-layer flag (L): true where the layer's FFN is dense. Empty when the
// model has no sparse FFN at all. Assumes a validated config.
std::vector<char> config_dense_layers(const ModelConfig& m);

// The one reader of model.moe.masked_experts ("3,5" in every layer, "0:3,1:5" per layer; spaces
// around numbers allowed): calls each(layer, expert) per entry, layer -1 for every layer, and returns
// false at the first malformed entry (config_validate says why). Allocates nothing: the model reads
// the list per layer and step.
template <class F>
bool config_masks_each(std::string_view s, F&& each) {
    size_t i = 0;
    auto number = [&](int& v) {  // digits, and the spaces around them
        while (i < s.size() && s[i] == ' ') i++;
        const size_t from = i;
        for (v = 0; i < s.size() && s[i] >= '0' && s[i] <= '9' && i - from < 6; i++) v = v * 10 + (s[i] - '0');
        const bool ok = i > from && !(i < s.size() && s[i] >= '0' && s[i] <= '9');
        while (i < s.size() && s[i] == ' ') i++;
        return ok;
    };
    while (i < s.size()) {
        int a = 0, b = -1;
        if (!number(a)) return false;
        if (i < s.size() && s[i] == ':') {
            i++;
            if (!number(b)) return false;
        }
        b < 0 ? each(-1, a) : each(a, b);
        if (i < s.size() && (s[i] != ',' || i + 1 == s.size())) return false;  // not a separator, or a trailing comma
        i++;
    }
    return true;
}
// Whether layer l's FFN is sparse (MoE or MH-MoE).
bool config_layer_sparse(const ModelConfig& m, int l);
// The allowed values of an enum key ("model.moe.routing" -> topk, top1_capacity, ...), empty for others.
std::vector<std::string> config_key_choices(const std::string& key);
// Applies "a.b.c=value" overrides (CLI --set); value is parsed as JSON, falling back to a string.
Status config_apply_override(Config& cfg, const std::string& assignment);

// The config's own names of these values ("moh", "top1_capacity"): reports and views use these,
// never a copy of the list.
const char* pos_kind_name(PosKind k);
const char* ffn_kind_name(FfnKind k);
const char* head_selection_name(HeadSelection k);
const char* head_router_name(HeadRouterKind k);
const char* ffn_routing_name(FfnRouting k);
const char* moe_routing_name(MoeRouting k);
const char* aux_convention_name(AuxConvention k);
const char* score_function_name(ScoreFunction k);
const char* load_balancing_name(LoadBalancing k);
const char* token_drop_policy_name(TokenDropPolicy k);
const char* qk_norm_name(QkNorm k);
const char* rope_scaling_name(RopeScaling k);
const char* topk_weights_name(TopkWeights k);
const char* device_kind_name(DeviceKind k);

// MH-MoE FLOPs parity with an SMoE of E experts of width d_ff, top-k, c = 3 matrices per
// SwiGLU expert (docs/routing-math.md §4.2): d_ff' = d_ff - 2d/(k c), E' = round(h E d_ff / d_ff').
struct MhMoeMatch {
    int d_ff_expert;
    int n_experts;
};
MhMoeMatch mh_moe_match_flops(int d_model, int n_heads, int smoe_experts, int smoe_d_ff, int top_k);

}  // namespace rl
