// The backend seam: one dispatch point per op. The model, the trainer and the benches call every op
// through a table of function pointers, Ops; a backend is one such table, and the buffers the ops
// read and write live where that backend can reach them (docs/architecture.md §6).
//
// The CPU table, ops_cpu(), names the layer functions themselves. A CUDA table would name kernels
// with the same signatures over device pointers; this build has none (backend/device.h says why and
// what `device` then means). The ops are the layer functions of core/layers, the optimizer's, and the
// model's three fused steps that have no single layer function: which kv groups an active head reads,
// and MoH's skip path forward and backward (model/skip_cpu.cpp), each of which a GPU would run as one
// kernel sequence rather than as the CPU's per-(sequence, head) loops.
#pragma once
#include <cstddef>
#include <vector>

#include "config/config.h"
#include "layers/attention.h"
#include "layers/embedding.h"
#include "layers/ffn.h"
#include "layers/head_router.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/moe.h"
#include "layers/norm.h"
#include "layers/residual.h"
#include "optim/optim.h"
#include "tensor/arena.h"
#include "tensor/gemm.h"

namespace rl {

struct LayerWeights;
struct LayerActs;
struct Activations;
struct KvSource;

// The model's fused ops (their CPU versions are in model/skip_cpu.cpp).
// The kv groups (G) some head with a non-zero gate reads, for any of the N rows: need[g] = 0/1; returns how many.
int kv_groups_needed(const ModelConfig& c, const LayerActs& L, int N, std::vector<char>& need);
// MoH's skip path of one attention block (docs/routing-math.md §3.8): every (token, head) pair whose
// gate is non-zero, into atty (no W_O) or attn_out, and the mean entropy of those rows.
void attn_skip_forward(const ModelConfig& c, const LayerWeights& w, LayerActs& L, Activations& s, const float* in,
                       int B, int T, int window, const KvSource& kv, float* entropy);
// Its backward: din (N,C) += dL/d in over the same pairs, the block's weight gradients into g.
void attn_skip_backward(const ModelConfig& c, const LayerWeights& w, LayerWeights& g, const LayerActs& a,
                        Activations& s, float* din, const float* dout, const float* in, int B, int T, int window,
                        float dbalance);

// Every op, once. X(name): a field `name` of the function's own type; ops_cpu() points it at rl::name.
#define ROUTELAB_OPS(X)                                                                                      \
    X(tensor_zero) X(tensor_scale) X(gemm)                                                                   \
    X(embedding_forward) X(embedding_backward)                                                               \
    X(rmsnorm_forward) X(rmsnorm_backward) X(layernorm_forward) X(layernorm_backward)                        \
    X(linear_forward) X(linear_backward)                                                                     \
    X(rope_forward) X(rope_backward)                                                                         \
    X(attention_forward) X(attention_backward) X(attention_decode_row)                                       \
    X(head_router_forward) X(head_router_balance) X(head_router_backward) X(head_gates_static)               \
    X(head_gates_query_norm) X(head_gates_experts) X(head_gates_experts_backward)                            \
    X(head_gate_forward) X(head_gate_backward) X(route_bias_update)                                          \
    X(kv_groups_needed) X(attn_skip_forward) X(attn_skip_backward)                                           \
    X(swiglu_ffn_forward) X(swiglu_ffn_backward) X(relu_forward) X(relu_backward) X(gelu_forward)            \
    X(gelu_backward)                                                                                         \
    X(moe_forward) X(moe_backward)                                                                           \
    X(residual_forward) X(residual_backward)                                                                 \
    X(crossentropy_forward) X(crossentropy_backward)                                                         \
    X(grad_clip) X(adamw_update)

struct Ops {
    const char* device = "cpu";  // the config's name of where these ops run (DeviceKind)
#define ROUTELAB_OP_FIELD(name) decltype(&::rl::name) name = nullptr;
    ROUTELAB_OPS(ROUTELAB_OP_FIELD)
#undef ROUTELAB_OP_FIELD
};

// The CPU backend: the layer functions of core/layers (OpenMP, Eigen/libxsmm GEMMs).
const Ops& ops_cpu();
// The names of the ops, in table order (tests, the docs' op list).
const std::vector<const char*>& ops_names();
// Op i of a table, by its position in ROUTELAB_OPS (null where that backend lacks it).
const void* ops_entry(const Ops& o, size_t i);

}  // namespace rl
