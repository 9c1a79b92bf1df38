// The transformer: parameters, activations, forward and backward.
// Size key: B batch, T seq, C d_model, V vocab, L layers, H q-heads, G kv-heads, D head dim,
// F ffn width, P CoPE positions.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "layers/attention.h"
#include "layers/head_router.h"
#include "layers/moe.h"
#include "tensor/arena.h"

namespace rl {

struct Ops;              // backend/ops.h: the table every op is called through
const Ops& ops_cpu();

// Named views into a parameter-shaped arena (params or grads); null where the config has no such tensor.
struct LayerWeights {
    float* attn_norm = nullptr;       // (C)
    float* attn_norm_bias = nullptr;  // (C) LayerNorm only
    float* wq = nullptr;              // (H*D, C)
    float* wk = nullptr;              // (G*D, C)
    float* wv = nullptr;              // (G*D, C)
    float* wo = nullptr;              // (C, H*D) when use_wo
    float* bq = nullptr;              // (H*D) qkv_bias
    float* bk = nullptr;              // (G*D)
    float* bv = nullptr;              // (G*D)
    float* bo = nullptr;              // (C) attention.out_bias: added after W_O
    float* q_norm = nullptr;          // (H*D) qk_norm full, (D) qk_norm head
    float* k_norm = nullptr;          // (G*D) qk_norm full, (D) qk_norm head
    float* cope_pos = nullptr;        // (H, P, D) or (P, D) when cope_shared
    float* ffn_norm = nullptr;        // (C)
    float* ffn_norm_bias = nullptr;   // (C)
    float* w_gate = nullptr;          // (F, C) SwiGLU
    float* w_up = nullptr;            // (F, C)
    float* b_up = nullptr;            // (F) ReLU/GELU
    float* w_down = nullptr;          // (C, F)
    float* b_down = nullptr;          // (C) ReLU/GELU
    float* router_shared = nullptr;   // (S, C) MoH W_s
    float* router_routed = nullptr;   // (R, C) MoH W_r; (n_experts, C) for the experts head router
    float* router_type = nullptr;     // (2, C) MoH W_h
    float* head_bias = nullptr;       // (R) MoH head_bias: a buffer (null in the gradients)
    MoeWeights moe;                   // sparse FFN: router (E, C'), experts, shared experts
    float* moe_out_bias = nullptr;    // (C) moe.out_bias: added to a sparse layer's output
    float* w_head = nullptr;          // (C, C) MH-MoE head layer
    float* b_head = nullptr;          // (C)
    float* w_merge = nullptr;         // (C, C) MH-MoE merge layer
    float* b_merge = nullptr;         // (C)
    // A frozen model's matrices kept BF16 in a mapped checkpoint (the float view is then null; forward
    // only, tensor/gemm_bf16.h): the attention projections and a dense SwiGLU FFN, same shapes as above.
    Bf16Weight bf16_wq;
    Bf16Weight bf16_wk;
    Bf16Weight bf16_wv;
    Bf16Weight bf16_wo;
    Bf16Weight bf16_gate;
    Bf16Weight bf16_up;
    Bf16Weight bf16_down;
};
struct Weights {
    float* tok_emb = nullptr;         // (V, C)
    float* pos_emb = nullptr;         // (T, C) learned positions
    std::vector<LayerWeights> layers;
    float* final_norm = nullptr;      // (C)
    float* final_norm_bias = nullptr; // (C)
    float* lm_head = nullptr;         // (V, C); null when tied to tok_emb
    float* lm_head_bias = nullptr;    // (V)
    // A frozen model's LM head as BF16 in a mapped checkpoint (lm_head, or the tied tok_emb, whose float
    // view the embedding lookup still reads); null otherwise.
    Bf16Weight bf16_head;  // (V, C)
};

struct Model {
    Model() = default;
    Model(const Model&) = delete;     // w and g point into the arenas: a copy would alias them
    Model& operator=(const Model&) = delete;
    Model(Model&&) = default;         // moving keeps the buffers, so the views stay valid
    Model& operator=(Model&&) = default;
    ModelConfig cfg;                  // vocab_size resolved (> 0)
    Layout layout;                    // parameter names and shapes, docs/architecture.md §4.1 naming
    Arena params, grads;
    Weights w, g;                     // views into params and grads
    // Buffers: state the model reads but no gradient moves (the routers' selection biases), saved in
    // checkpoints by name beside the parameters; views in w (g's stay null).
    Layout buffer_layout;
    Arena buffers;
    // The backend the arenas belong to and every op of a forward, backward and update runs on
    // (backend/device.h chooses it from train.device).
    const Ops* ops = &ops_cpu();
    // What views outside the arenas point into, kept alive with the model: a model folder's mapped
    // shards, which its BF16 experts are read from (io/hf_model.h).
    std::vector<std::shared_ptr<const void>> held;
};

// Parameter layout for a validated config with vocab_size > 0.
Layout model_param_layout(const ModelConfig& c);
// Buffer layout (the selection biases) of the same config: what model_create puts in Model::buffers.
Layout model_buffer_layout(const ModelConfig& c);
// Allocates and initialises (GPT-2 style: N(0, std), residual projections scaled 1/sqrt(2L), norms 1,
// biases and CoPE tables 0). Deterministic for a seed.
void model_create(Model& m, const ModelConfig& c, unsigned seed, float init_std);
// Parameters and buffers of c, zero, without gradients or an init: a model whose weights are read from
// elsewhere and that only runs forward (an imported Hugging Face checkpoint). m.g's views stay null.
// Parameters named in `elsewhere` get no storage (their float views stay null, m.layout leaves them
// out): the caller points their BF16 views at a mapped checkpoint (an expert's bf16_gate, ...).
void model_create_frozen(Model& m, const ModelConfig& c, const std::set<std::string>& elsewhere = {});
size_t model_param_count(const Model& m);
// Gradients for some parameters only (router-only tuning): m.grads holds the tensors `trainable` names
// and m.g's views point at them; every other gradient view is null, and the backward takes no
// gradient for those (their inputs' gradients still flow). Returns the gradients' layout.
Layout model_grads_for(Model& m, const std::function<bool(const std::string&)>& trainable);
// Copies parameters and buffers of a model with the same config (the GUI's snapshots).
void model_copy_state(Model& dst, const Model& src);
void model_zero_grad(Model& m);

// Per-layer saved-for-backward views (activations arena).
struct LayerActs {
    int layer = 0;                      // this block's index (per-layer settings: model.moe.masked_experts "l:e")
    float* x_in = nullptr;              // (N,C) block input; the previous block's output
    float* ln1 = nullptr; float* ln1_mean = nullptr; float* ln1_rstd = nullptr; // (N,C), (N), (N)
    float* q = nullptr; float* k = nullptr; float* v = nullptr; // (N,H*D), (N,G*D), (N,G*D); after RoPE
    float* att = nullptr; float* gates = nullptr; // (B,H,T,T) softmax probs; CoPE gates (null without CoPE)
    float* atty = nullptr;              // (N,H*D) concatenated heads
    float* attn_out = nullptr;          // (N,C) after W_O (== atty without W_O)
    float* res1 = nullptr;              // (N,C) x_in + attn_out
    float* ln2 = nullptr; float* ln2_mean = nullptr; float* ln2_rstd = nullptr;
    float* fa = nullptr; float* fb = nullptr; float* fh = nullptr; // (N,F) SwiGLU gate, up, hidden; ReLU/GELU pre, -, hidden
    float* ffn_out = nullptr;           // (N,C)
    float* res2 = nullptr;              // (N,C) residual after the FFN
    float* out = nullptr;               // (N,C) block output (res2 pre-norm, ln2 post-norm)
    // head selection (null with all_heads)
    float* head_gates = nullptr;        // (N,H) gate of every head
    float* atty_raw = nullptr;          // (N,H*D) heads before their gates
    // the skip path of a full forward (head selection), saved for its backward: block (b, h) holds the
    // n rows of sequence b whose gate for head h is non-zero, packed at its start
    float* skip_q = nullptr;            // (B,H,T,D) the rows' queries after RoPE, (n, D); the memory of q
    float* skip_att = nullptr;          // (B,H,T,T) the rows' probabilities, (n, T); the memory of att
    float* skip_gates = nullptr;        // (B,H,T,T) the rows' CoPE gates, (n, T); the memory of gates (CoPE only)
    float* skip_y = nullptr;            // (B,H,T,D) the rows' head outputs before their gates, (n, D); the memory of atty_raw
    std::vector<int> skip_rows;         // (B,H,T+1) block (b, h): n, then the rows' positions, ascending
    HeadRouterSaved hr;                 // MoH router state: r (N,R), mask (N,R), ss (N,S), alpha (N,2)
    std::vector<float> head_f, head_P;  // (R) balance-loss f and P of the last forward
    float head_balance = 0;             // L_b of this layer
    // sparse FFN
    MoeSaved ms;
    MoeStats mst;
    std::vector<int> moe_int;           // backing store of ms's int buffers
    float* xh = nullptr;                // (N,C) MH-MoE head-layer output
    float* ym = nullptr;                // (N,C) MH-MoE merged-back sub-token outputs, before W_merge
    // global_aux_loss: the choice counts of the last global_aux_window - 1 training steps, a ring
    std::vector<float> moe_ring;        // (W-1, E) counts per step
    std::vector<double> moe_ring_rows;  // (W-1) rows routed that step (0: slot unused)
    std::vector<float> moe_ring_sum;    // (E) sum over the ring
    int moe_ring_pos = 0;
};
struct Activations {
    int B = 0, T = 0;                   // capacity; a forward may use any B' <= B, T' <= T
    int cur_B = 0, cur_T = 0;           // shape of the last forward
    int moe_max_assign = 0;             // routing rows the MoE buffers hold (live capacity changes stay within)
    int window = 0;                     // attention window used by the last forward (backward reuses it)
    float entropy = 0.f;                // mean attention-row entropy of the last forward (adaptive window)
    double time_attn = 0, time_ffn = 0, time_head = 0; // seconds, accumulated when ForwardOptions::timing
    bool training = false;              // options of the last forward (backward replays them)
    bool skip = false;                  // the last forward took the skip path (head selection only)
    bool timing = false;                // ForwardOptions::timing of the last forward: its backward is timed too
    uint64_t seed = 0;
    Layout layout;
    Arena arena, scratch_arena;
    float* x0 = nullptr;                // (N,C) embeddings
    std::vector<LayerActs> layers;
    float* lnf = nullptr; float* lnf_mean = nullptr; float* lnf_rstd = nullptr; // (N,C) final norm (== last out when off)
    float* logits = nullptr;            // (N,V); softmax probs after a forward with targets
    float* losses = nullptr;            // (N)
    // loss parts of the last forward (routing losses are means over layers, unweighted)
    double ce = 0, moh_balance = 0, moe_aux = 0, zloss = 0;
    // backward scratch
    float* dres = nullptr; float* dtmp = nullptr; // (N,C)
    float* datty = nullptr; float* dq = nullptr; float* dk = nullptr; float* dv = nullptr; // (N,H*D), (N,H*D), (N,G*D), (N,G*D)
    float* dfa = nullptr; float* dfb = nullptr; float* dfh = nullptr; // (N,F)
    float* attn_scratch = nullptr;      // attention_scratch_floats
    float* dgates = nullptr;            // (N,H)
    float* datty_raw = nullptr;         // (N,H*D)
    float* router_scratch = nullptr;    // head_router_scratch_floats
    float* moe_scratch = nullptr;       // moe_scratch_floats
    float* dxh = nullptr; float* dym = nullptr; // (N,C) MH-MoE
    float* qk_rstd = nullptr;           // (N*H) qk_norm's row scales (forward only)
    // skip path (head selection)
    float* skip_scratch = nullptr;      // per thread, model_skip_scratch_floats: gathered rows, one head's rows, attention rows
    float* skip_wt = nullptr;           // (C, H*D) W_q^T, then (H*D, C) W_O^T with W_O: a full forward's skip path
    float* skip_seq_grads = nullptr;    // (B, skip grads) each sequence's dW_q, dW_O, dE in the skip backward
    std::vector<char> kv_need;          // (G) skip path: kv groups some active head reads
};
void activations_create(Activations& a, const ModelConfig& c, int B, int T);
// What activations_create(a, c, B, T) allocates, counted without allocating it (the memory estimate).
struct ActivationsBytes {
    size_t saved = 0;    // the saved-for-backward arena
    size_t scratch = 0;  // the backward scratch arena
    size_t other = 0;    // the vectors beside them
    size_t total() const { return saved + scratch + other; }
};
ActivationsBytes activations_bytes(const ModelConfig& c, int B, int T);

// The attention window (keys visible incl. self) for a forward over T tokens (docs/routing-math.md §1.2).
// prev_entropy: the previous step's mean attention-row entropy (adaptive "entropy" strategy).
int model_window(const ModelConfig& c, int T, float prev_entropy);

struct ForwardOptions {
    int window = 0;            // <= 0: model_window(c, T, prev_entropy)
    float prev_entropy = 0.f;
    bool training = false;     // router noise and jitter are drawn only while training
    uint64_t seed = 0;         // noise seed (the trainer passes the step): equal seeds, equal noise
    bool skip = false;         // compute a (token, head) pair only when its gate is non-zero (same result);
                               // in training the backward then differentiates only those pairs
    bool moe_all_experts = false;  // cost probe: every expert on every token, masked (the dense equivalent)
    bool timing = false;       // accumulate per-component seconds into Activations::time_* (and in the backward)
};
// Forward over tokens (B,T). With targets (B,T) (entries < 0 are padding), returns the training
// loss: cross-entropy + beta * mean_l L_b + alpha * mean_l L_aux + w_z * mean_l L_z (parts in a.ce,
// a.moh_balance, a.moe_aux, a.zloss) and leaves probabilities in a.logits; without targets, leaves
// logits and returns 0.
double model_forward(const Model& m, Activations& a, const int* tokens, const int* targets, int B, int T,
                     const ForwardOptions& o = {});
// MoE dims of layer stacks for a batch of N tokens (sub-tokens for MH-MoE). layer: whose masked
// experts to include besides the every-layer ones (model.moe.masked_experts "l:e"); -1: those only.
MoeDims model_moe_dims(const ModelConfig& c, int N, bool training, uint64_t seed, int layer = -1);
// After a training step's update: moves the selection biases (expert_bias, head_bias) by the step's
// load (docs/routing-math.md §12.4) and records its expert counts for global_aux_loss.
void model_route_update(Model& m, Activations& a);
// Backward of the last forward (which must have had targets): accumulates into m.grads.
// a.logits holds dL/d logits afterwards (the probabilities are overwritten in place).
void model_backward(Model& m, Activations& a, const int* tokens, const int* targets);

// Attention dims of the config for (B, T) and a window; the skip path's per-thread scratch for T rows
// (forward and backward).
AttnDims model_attn_dims(const ModelConfig& c, int B, int T, int window);
// RoPE's inverse frequencies of the config (the first head_dim / 2; head_dim <= 1024): rope_theta's,
// rescaled as rope_scaling says. By value, so a training step with RoPE touches no heap.
using RopeFreqs = std::array<float, 512>;
RopeFreqs model_rope_inv_freq(const ModelConfig& c);
HeadRouterDims model_router_dims(const ModelConfig& c, int N);  // the MoH router's dims for N rows
size_t model_skip_scratch_floats(const ModelConfig& c, int T);
// One sequence's share of the skip backward's weight gradients: dW_q, dW_O (with W_O), the CoPE tables.
size_t model_skip_grad_floats(const ModelConfig& c);

// KV cache for batch 1 generation: per layer (capacity, G*D) keys (after RoPE) and values.
struct KVCache {
    int capacity = 0, len = 0;
    std::vector<FloatBuffer> k, v;         // [L] (capacity, G*D)
    FloatBuffer scratch;                   // attention_decode_scratch_floats
};
void kvcache_create(KVCache& kv, const ModelConfig& c, int capacity);

// Where an attention block's keys and values go and come from: the one thing the full forward and
// KV-cache decode do differently. The call writes the K/V rows of its T tokens at positions
// pos0..pos0+T-1 of each sequence and its queries see positions 0..pos0+T-1.
struct KvSource {
    float* k;               // (B*stride, G*D) keys after RoPE
    float* v;               // (B*stride, G*D) values
    int stride;             // rows per sequence: T (the layer's activations) or the cache's capacity
    int pos0;               // position of the first query: 0, or kv.len when decoding
    bool cached;            // the KV cache: later tokens read every kv group, so all are computed
    float* rows_scratch;    // cache only: attention_rows / attention_decode_row scratch for its length
};

// Runs token at position kv.len (learned positions need kv.len < seq_len); logits (V) land in
// a.logits. a must be made with activations_create(a, c, 1, 1). o.window: as for the full sequence
// the cache stands for (<= 0: model_window(c, kv.capacity, o.prev_entropy)); o.skip computes only the heads whose gate is non-zero (their
// query, score row, A.V and W_O slice); o.moe_all_experts and o.timing as in model_forward.
void model_decode_step(const Model& m, Activations& a, KVCache& kv, int token, const ForwardOptions& o);

// FLOPs per token of one forward at sequence length T (multiply-add = 2 FLOPs), by component.
struct FlopBreakdown {
    double attn_proj = 0, attn_scores = 0, attn_av = 0, attn_out = 0, routers = 0, ffn = 0, lm_head = 0;
    double total() const { return attn_proj + attn_scores + attn_av + attn_out + routers + ffn + lm_head; }
};
FlopBreakdown model_flops_per_token(const ModelConfig& c, int T);

}  // namespace rl
