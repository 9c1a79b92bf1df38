// Mixture-of-Heads router (arXiv 2410.11842, code SkyworkAI/MoH; docs/routing-math.md §3) and
// the gate that scales each head's output. Size key: N rows (B*T), C width, H heads, S shared heads (h_s),
// R routed heads (h_r = H - S), K active routed heads per token, D head dim.
//
// r = softmax(W_r x) over the R routed heads, top-K (ties to the lowest index) -> mask;
// [a1, a2] = softmax(W_h x); shared s = softmax(W_s x).
// official: routed g_i = 2 a2 K r_i m_i / sum_j r_j m_j,  shared g_i = 2 a1 S s_i
// paper:    routed g_i = a2 r_i m_i,                      shared g_i = a1 s_i
// S = 0: no W_s, W_h; official g_i = K r_i m_i / sum r m, paper g_i = r_i m_i.
// Balance (training): f_i = mean_t m_ti, P_i = mean_t r_ti, L_b = R sum f P (official) or sum f P.
#pragma once
#include "layers/routing.h"

namespace rl {

struct HeadRouterDims {
    int N = 1, C = 1, H = 1, S = 0, K = 1;
    bool paper = false;
    const float* bias = nullptr;  // (R) head_bias: added to r for the top-K choice only; null = none
    int R() const { return H - S; }
};

// Saved for backward (all overwritten; the query-norm rule writes r and mask only): r (N,R), mask (N,R)
// 0/1, ss (N,S), alpha (N,2).
struct HeadRouterSaved {
    float* r = nullptr;
    float* mask = nullptr;
    float* ss = nullptr;
    float* alpha = nullptr;
};

// gates (N,H). w_shared (S,C), w_routed (R,C), w_type (2,C); w_shared/w_type null when S = 0.
// scratch: head_router_forward_scratch_floats (the stacked weights and every logit, one product).
int head_router_forward_scratch_floats(const HeadRouterDims& d);
void head_router_forward(float* gates, const HeadRouterSaved& sv, const float* x, const float* w_shared,
                         const float* w_routed, const float* w_type, const HeadRouterDims& d, float* scratch);
// f, P (R) from the saved r and mask; returns the balance loss L_b.
float head_router_balance(float* f, float* P, const HeadRouterSaved& sv, const HeadRouterDims& d);
// dgates (N,H) -> accumulates dx (N,C), dw_shared, dw_routed, dw_type. dbalance = dLoss/dL_b (beta / L);
// f is the balance's f (held fixed: it carries no gradient). scratch: head_router_scratch_floats
// (at least head_router_forward_scratch_floats, so one buffer serves both).
int head_router_scratch_floats(const HeadRouterDims& d);
void head_router_backward(float* dx, float* dw_shared, float* dw_routed, float* dw_type, float* scratch,
                          const float* dgates, float dbalance, const float* f, const HeadRouterSaved& sv,
                          const float* x, const float* w_shared, const float* w_routed, const float* w_type,
                          const HeadRouterDims& d);
// Naive reference of head_router_forward (double precision, no shared code).
void head_router_forward_ref(float* gates, float* mask, const float* x, const float* w_shared, const float* w_routed,
                             const float* w_type, const HeadRouterDims& d);

// MoH-LLaMA3's rule (SkyworkAI/MoH, MoH-LLaMA3/Inference_code/modeling_llama.py, LlamaAttention.forward):
// no router weights; for each row of q (N,H*D), the queries before RoPE, the K routed heads S..H-1
// with the largest L2 norm are on. Gates (N,H): 1 for the S shared heads and the chosen ones, 0 for
// the rest (the code multiplies head outputs by this 0/1 mask; its softmax values never reach the
// output). sv.r (N,R) gets what that code's softmax computes, softmax(norm / std) with the unbiased
// std over the R norms (what the views show as router probability); sv.mask (N,R) the choice.
void head_gates_query_norm(float* gates, const HeadRouterSaved& sv, const float* q, const HeadRouterDims& d, int D);
// Naive reference of it (double precision, its own selection).
void head_gates_query_norm_ref(float* gates, const float* q, const HeadRouterDims& d, int D);

// JetMoE's mixture of attention heads (transformers modeling_jetmoe.py JetMoeTopKGating.forward,
// JetMoeMoA): the H heads form E experts, head h in expert h % E; logits z = x W_r^T (N,E), per token
// the k = K E / H experts of largest logit (ties to the lower index), each with gate softmax over the k
// chosen logits, that gate on all of its H / E heads, the other heads 0. w (E,C). sv.r (N,H) gets each
// head's share of the full softmax over the E logits (its expert's probability over H / E, so a row
// sums to 1, as the learned router's r); sv.mask (N,H) 0/1. scratch: head_router_forward_scratch_floats.
void head_gates_experts(float* gates, const HeadRouterSaved& sv, const float* x, const float* w, const HeadRouterDims& d,
                        int E, float* scratch);
// Its backward: dgates (N,H) and the balance's dbalance and f (head_router_backward's) -> accumulates dx
// (N,C) and dw (E,C) (null: frozen). gates: the forward's. scratch: head_router_scratch_floats.
void head_gates_experts_backward(float* dx, float* dw, float* scratch, const float* dgates, float dbalance, const float* f,
                                 const HeadRouterSaved& sv, const float* gates, const float* x, const float* w,
                                 const HeadRouterDims& d, int E);
// Naive reference of head_gates_experts (double precision, its own selection).
void head_gates_experts_ref(float* gates, const float* x, const float* w, const HeadRouterDims& d, int E);

// Static pruning's gates (N,H): 1 for the first n_active heads, 0 for the rest (no router).
void head_gates_static(float* gates, int N, int H, int n_active);
// out (N,H*D) = in * gate per head block (scale each head's output before W_O).
void head_gate_forward(float* out, const float* in, const float* gates, int N, int H, int D);
// din (N,H*D) += dout * gate; dgates (N,H) = sum over the head's D of dout * in (overwrites).
void head_gate_backward(float* din, float* dgates, const float* dout, const float* in, const float* gates, int N,
                        int H, int D);


}  // namespace rl
