// Whole-model checks: parameter counts, finite-difference gradients of every parameter tensor for
// each preset's structure (and further variants), KV-cache decode vs full forward, windows.
#include <gtest/gtest.h>

#include <cmath>

#include "config/presets.h"
#include "gradcheck.h"
#include "infer/cost.h"
#include "model/model.h"

using namespace rl;
using namespace rl::test;

namespace {

// The preset's structure (norms, positions, FFN kind, W_O, heads, windows, ...) at a width where
// float32 finite differences are reliable: C 16, 2 layers, T 10, V 29, F 32, CoPE 6 positions
// (so positions clamp within T = 10).
ModelConfig shrink(ModelConfig c) {
    const bool mh3 = c.moe.kind == FfnRouting::mh_moe && c.moe.n_heads == 3;
    c.d_model = mh3 ? 24 : 16;  // MH-MoE splits C into n_heads sub-tokens
    c.n_layers = 2;
    c.head_dim = c.attention.use_wo ? 4 : c.d_model / c.n_heads;
    if (c.moe.kind != FfnRouting::dense) {
        c.moe.d_ff_expert = 8;
        c.moe.n_experts = std::min(c.moe.n_experts, 6);
        c.moe.top_k = std::min(c.moe.top_k, 3);
        if (c.moe.group_topk > 0) c.moe.n_experts = 2 * c.moe.n_groups, c.moe.top_k = c.moe.group_topk;  // valid groups
    }
    c.seq_len = 10;
    c.vocab_size = 29;
    c.ffn.d_ff = 32;
    c.attention.cope_npos = 6;
    auto& w = c.attention.window;
    if (w.kind == WindowKind::adaptive) w.min = 2, w.max = 8;  // clamp(10/2, 2, 8) = 5 < T: binds
    if (w.kind == WindowKind::sliding) w.size = 4;
    return c;
}

// Random, generic parameters: matrices and CoPE tables N(0, 0.3), norm gains 1 + N(0, 0.1).
void randomize(Model& m, unsigned seed) {
    auto r = randn(m.params.data.size(), seed, 0.3f);
    for (const TensorSpec& s : m.layout.specs())
        for (size_t i = 0; i < s.numel; i++) {
            float& p = m.params.data[s.offset + i];
            p = s.init == Init::ones ? 1.f + r[s.offset + i] / 3.f : r[s.offset + i];
        }
}

struct Batch {
    std::vector<int> tok, tgt;
};
Batch make_batch(int B, int T, int V, unsigned seed) {
    std::mt19937 g(seed);
    Batch b{std::vector<int>(B * T), std::vector<int>(B * T)};
    for (int i = 0; i < B * T; i++) b.tok[i] = g() % V, b.tgt[i] = g() % V;
    b.tgt[3] = -1;  // one padded target
    return b;
}

// cope_piece for the skip path's saved rows: block (b, h) holds n rows of (n, keys) gates.
uint64_t skip_cope_piece(const LayerActs& L, int B, int H, int T, int npos, uint64_t h) {
    for (int bh = 0; bh < B * H; bh++) {
        const int* rows = L.skip_rows.data() + (size_t)bh * (T + 1);
        const int n = rows[0];
        if (n == 0) continue;
        for (int r = 0; r < n; r++) {
            const float* g = L.skip_gates + (size_t)bh * T * T + (size_t)r * T;
            float p = 0.f;
            for (int j = rows[1 + r]; j >= 0 && g[j] != 0.f; j--) {  // a gate of 0: outside the window
                p += g[j];
                h = hash_mix(h, p > (float)(npos - 1) ? 1000003u : (uint64_t)std::floor(p));
            }
        }
    }
    return h;
}

// Checks 8 random coordinates of every parameter tensor, h = 3e-3. Routing decisions (top-k head
// masks, expert choices, capacity drops) are part of the piece signature, so a difference that
// would flip a selection is measured one-sided on the unperturbed selection's side (gradcheck.h):
// the selection is held fixed, as the backward assumes. A float32 forward through a
// whole model leaves ~3e-5 of noise in a finite difference at this step, so the tolerance here is
// |a - fd| <= 5e-2 * max(|a|, |fd|, 2e-3), i.e. 5% relative or 1e-4 absolute: it checks the wiring
// (residuals, norms, heads, tying), where a missing path or a sign error is large (err ~1-2); the
// layer tests check each op's gradient to 2e-2 relative without the absolute term.
// skip: train on the skip path (only the pairs with a non-zero gate, forward and backward).
void check_model_grads(const ModelConfig& c, const std::string& label, int window = 0, bool skip = false) {
    Model m;
    model_create(m, c, 3, 0.02f);
    randomize(m, 11);
    const int B = 1, T = c.seq_len;  // one sequence: fewer CoPE positions and selections to straddle
    Activations a;
    activations_create(a, c, B, T);
    Batch b = make_batch(B, T, c.vocab_size, 5);
    model_zero_grad(m);
    // Training mode (capacity, noise and jitter on), with a fixed noise seed.
    const ForwardOptions o{.window = window, .training = true, .seed = 42, .skip = skip};
    model_forward(m, a, b.tok.data(), b.tgt.data(), B, T, o);
    model_backward(m, a, b.tok.data(), b.tgt.data());
    auto loss = [&] { return (double)model_forward(m, a, b.tok.data(), b.tgt.data(), B, T, o); };
    // The linear piece the last forward sat on: ReLU signs and CoPE integer positions per layer.
    auto piece = [&] {
        uint64_t h = 0xcbf29ce484222325ULL;
        for (const LayerActs& L : a.layers) {
            if (c.ffn.kind == FfnKind::relu) h = relu_piece(L.fa, (size_t)B * T * c.ffn.d_ff, h);
            if (L.gates && a.skip) h = skip_cope_piece(L, B, c.n_heads, T, c.attention.cope_npos, h);
            else if (L.gates) h = cope_piece(L.gates, B * c.n_heads, T, c.attention.cope_npos, h);
            if (c.attention.heads.kind == HeadSelection::moh) h = mask_piece(L.hr.mask, (size_t)B * T * (c.n_heads - c.attention.heads.n_shared), h);
            if (c.moe.kind != FfnRouting::dense) h = moe_piece(L.ms, L.moe_int.size(), h);
        }
        return h;
    };
    double worst = 0;
    std::string worst_name;
    for (const TensorSpec& s : m.layout.specs()) {
        auto r = gradcheck(loss, m.params.data.data() + s.offset, m.grads.data.data() + s.offset, s.numel, 8, 3e-3f,
                           1, piece, 2e-3);
        EXPECT_LT(r.norm_err, 2e-2) << r.describe(label + " " + s.name);
        if (r.norm_err > worst) worst = r.norm_err, worst_name = s.name;
    }
    std::printf("[gradcheck] %s: %zu tensors, worst norm err %.3g (%s)\n", label.c_str(), m.layout.specs().size(), worst,
                worst_name.c_str());
}

}  // namespace

TEST(Params, SeedBaselineCountMatchesThePlan) {
    auto cfg = preset_load("seed-baseline");
    ASSERT_TRUE(cfg.is_ok()) << cfg.status.msg;
    cfg->model.vocab_size = 605;
    Layout L = model_param_layout(cfg->model);
    size_t total = 0;
    for (const auto& s : L.specs()) total += s.numel;
    EXPECT_EQ(total, 573440u);  // docs/architecture.md §4.3: 3 x 139,520 + 2 x 605 x 128
    ASSERT_NE(L.find("layers.2.attn.cope_pos"), nullptr);
    EXPECT_EQ(L.find("layers.2.attn.cope_pos")->shape, (std::vector<int>{8, 64, 16}));
    EXPECT_EQ(L.find("layers.0.attn.wk")->shape, (std::vector<int>{64, 128}));  // (out, in)
    EXPECT_EQ(L.find("final_norm"), nullptr);
    EXPECT_EQ(L.find("layers.0.attn.wo"), nullptr);
}

class PresetGrad : public ::testing::TestWithParam<std::string> {};

TEST_P(PresetGrad, EveryParameterMatchesFiniteDifferences) {
    auto cfg = preset_load(GetParam());
    ASSERT_TRUE(cfg.is_ok()) << cfg.status.msg;
    ModelConfig c = shrink(cfg->model);
    ASSERT_TRUE(config_validate(Config{"", "", c, cfg->train, cfg->data}).is_ok());
    check_model_grads(c, GetParam());
}
INSTANTIATE_TEST_SUITE_P(AllPresets, PresetGrad, ::testing::ValuesIn(preset_names()),
                         [](const auto& info) {
                             std::string n = info.param;
                             for (auto& ch : n) if (ch == '-') ch = '_';
                             return n;
                         });

struct Variant {
    const char* name;
    void (*apply)(ModelConfig&);
};
class VariantGrad : public ::testing::TestWithParam<Variant> {};

TEST_P(VariantGrad, EveryParameterMatchesFiniteDifferences) {
    ModelConfig c = shrink(preset_load("seed-baseline")->model);
    GetParam().apply(c);
    ASSERT_TRUE(config_validate(Config{"", "", c, {}, {}}).is_ok()) << config_validate(Config{"", "", c, {}, {}}).msg;
    check_model_grads(c, GetParam().name);
}
INSTANTIATE_TEST_SUITE_P(
    Options, VariantGrad,
    ::testing::Values(
        Variant{"rope_wo", [](ModelConfig& c) { c.attention.positional = PosKind::rope; c.attention.use_wo = true; c.head_dim = 4; }},
        Variant{"learned_mha", [](ModelConfig& c) { c.attention.positional = PosKind::learned; c.n_kv_heads = c.n_heads; }},
        Variant{"nopos_mqa", [](ModelConfig& c) { c.attention.positional = PosKind::none; c.n_kv_heads = 1; }},
        Variant{"cope_shared", [](ModelConfig& c) { c.attention.cope_shared = true; }},
        Variant{"sliding_window", [](ModelConfig& c) { c.attention.window.kind = WindowKind::sliding; c.attention.window.size = 3; }},
        Variant{"adaptive_entropy", [](ModelConfig& c) {
            c.attention.window = {WindowKind::adaptive, 0, WindowStrategy::entropy, 2, 6}; }},
        Variant{"layernorm_pre_gelu_final", [](ModelConfig& c) {
            c.norm = NormKind::layernorm; c.ffn.kind = FfnKind::gelu; c.final_norm = true; }},
        Variant{"rmsnorm_post_relu", [](ModelConfig& c) { c.norm_position = NormPosition::post; c.ffn.kind = FfnKind::relu; }},
        Variant{"tied_bias", [](ModelConfig& c) { c.tie_embeddings = true; c.lm_head_bias = true; }},
        Variant{"moh_rope_wo_paper", [](ModelConfig& c) {
            c.attention.positional = PosKind::rope; c.attention.use_wo = true; c.head_dim = 4;
            c.attention.heads = {HeadSelection::moh, 8, 2, 2, 0.5f, GateScaling::paper}; }},
        Variant{"moh_learned_sliding_noshared", [](ModelConfig& c) {
            c.attention.positional = PosKind::learned; c.attention.window.kind = WindowKind::sliding;
            c.attention.window.size = 3; c.attention.heads = {HeadSelection::moh, 8, 0, 3, 0.5f, GateScaling::official}; }},
        Variant{"static_pruning", [](ModelConfig& c) { c.attention.heads.kind = HeadSelection::static_pruning; c.attention.heads.n_active = 5; }},
        Variant{"moe_noisy_topk", [](ModelConfig& c) {
            c.moe = MoeConfig{}; c.moe.kind = FfnRouting::moe; c.moe.n_experts = 4; c.moe.d_ff_expert = 8;
            c.moe.routing = MoeRouting::noisy_topk; c.moe.jitter = 1.f; c.moe.aux_weight = 0.5f; c.moe.z_loss_weight = 0.1f; }},
        Variant{"moe_expert_choice", [](ModelConfig& c) {
            c.moe = MoeConfig{}; c.moe.kind = FfnRouting::moe; c.moe.n_experts = 4; c.moe.d_ff_expert = 8;
            c.moe.routing = MoeRouting::expert_choice; c.moe.capacity_factor = 1.5f; }},
        Variant{"moe_shared_hf_jitter", [](ModelConfig& c) {
            c.moe = MoeConfig{}; c.moe.kind = FfnRouting::moe; c.moe.n_experts = 5; c.moe.d_ff_expert = 8;
            c.moe.n_shared_experts = 1; c.moe.aux_convention = AuxConvention::hf; c.moe.jitter = 0.1f;
            c.moe.aux_weight = 0.5f; }},
        // engine routing (docs/routing-math.md §12): sigmoid + per-sequence aux + gamma, and the
        // sub-token sequences of MH-MoE under seq_aux_loss
        Variant{"moe_sigmoid_seq_aux_scaled", [](ModelConfig& c) {
            c.moe = MoeConfig{}; c.moe.kind = FfnRouting::moe; c.moe.n_experts = 6; c.moe.d_ff_expert = 8;
            c.moe.score_function = ScoreFunction::sigmoid; c.moe.load_balancing = LoadBalancing::seq_aux_loss;
            c.moe.topk_scaling_factor = 2.f; c.moe.aux_weight = 0.5f; c.moe.z_loss_weight = 0.1f; }},
        Variant{"mh_moe_seq_aux_probs_drop", [](ModelConfig& c) {
            c.moe = MoeConfig{}; c.moe.kind = FfnRouting::mh_moe; c.moe.n_heads = 2; c.moe.n_experts = 4;
            c.moe.d_ff_expert = 8; c.moe.routing = MoeRouting::top1_capacity; c.moe.top_k = 1;
            c.moe.token_drop_policy = TokenDropPolicy::probs; c.moe.capacity_factor = 0.8f;
            c.moe.load_balancing = LoadBalancing::seq_aux_loss; c.moe.aux_weight = 0.5f; }},
        Variant{"moe_global_aux_groups_bias", [](ModelConfig& c) {
            c.moe = MoeConfig{}; c.moe.kind = FfnRouting::moe; c.moe.n_experts = 6; c.moe.top_k = 2;
            c.moe.d_ff_expert = 8; c.moe.n_groups = 3; c.moe.group_topk = 2; c.moe.expert_bias = true;
            c.moe.load_balancing = LoadBalancing::global_aux_loss; c.moe.aux_weight = 0.5f; }},
        Variant{"moh_head_bias", [](ModelConfig& c) {
            c.attention.heads = {HeadSelection::moh, 8, 2, 2, 0.f, GateScaling::official, true}; }}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Window, AdaptivePresetBindsAtT80AndBackwardReusesIt) {
    auto cfg = preset_load("seed-adaptive");
    ASSERT_TRUE(cfg.is_ok());
    const int W = model_window(cfg->model, 80, 0.f);
    EXPECT_EQ(W, 40);  // clamp(80/2, 16, 64)
    EXPECT_LT(W, cfg->model.seq_len);
    // The entropy strategy moves with the entropy it is given, within [min, max].
    ModelConfig e = cfg->model;
    e.attention.window.strategy = WindowStrategy::entropy;
    EXPECT_EQ(model_window(e, 80, 0.f), 16);
    EXPECT_EQ(model_window(e, 80, 2.f), 40);
    EXPECT_EQ(model_window(e, 80, 9.f), 64);

    // At T = 80 the bound window changes the output (it is not a no-op), and the forward records it.
    ModelConfig c = cfg->model;
    c.vocab_size = 50;
    Model m;
    model_create(m, c, 1, 0.02f);
    randomize(m, 2);
    Activations a;
    activations_create(a, c, 1, 80);
    Batch b = make_batch(1, 80, 50, 3);
    model_forward(m, a, b.tok.data(), nullptr, 1, 80);
    EXPECT_EQ(a.window, 40);
    std::vector<float> windowed(a.logits, a.logits + 80 * 50);
    model_forward(m, a, b.tok.data(), nullptr, 1, 80, {.window = 80});
    double diff = 0;
    for (int i = 40 * 50; i < 80 * 50; i++) diff = std::max(diff, (double)std::fabs(windowed[i] - a.logits[i]));
    EXPECT_GT(diff, 1e-3) << "rows past the window must see fewer keys";
    for (int i = 0; i < 40 * 50; i++) ASSERT_NEAR(windowed[i], a.logits[i], 1e-5) << "rows within the window are unchanged";
}

// Batch-1 decoding state: activations for one token and a KV cache of `capacity` positions.
struct Decoder {
    Activations a;
    KVCache kv;
    Decoder(const ModelConfig& c, int capacity) {
        activations_create(a, c, 1, 1);
        kvcache_create(kv, c, capacity);
    }
    const float* step(const Model& m, int token, const ForwardOptions& o) {
        model_decode_step(m, a, kv, token, o);
        return a.logits;
    }
};

class KvCache : public ::testing::TestWithParam<std::string> {};

// The largest |decode - full forward| over every position and logit of one random sequence, for
// a random model of config c decoded one token at a time through the KV cache with window W.
double decodeVersusFull(const ModelConfig& c, int W) {
    Model m;
    model_create(m, c, 4, 0.02f);
    randomize(m, 6);
    const int T = c.seq_len, V = c.vocab_size;
    Batch b = make_batch(1, T, V, 7);
    Activations full;
    activations_create(full, c, 1, T);
    model_forward(m, full, b.tok.data(), nullptr, 1, T, {.window = W});
    Decoder one(c, T);
    double max_diff = 0;
    for (int t = 0; t < T; t++) {
        const float* logits = one.step(m, b.tok[t], {.window = W});
        for (int v = 0; v < V; v++) max_diff = std::max(max_diff, (double)std::fabs(logits[v] - full.logits[t * V + v]));
    }
    return max_diff;
}

TEST_P(KvCache, DecodeEqualsFullForwardLogits) {
    auto cfg = preset_load(GetParam());
    ASSERT_TRUE(cfg.is_ok());
    ModelConfig c = shrink(cfg->model);
    const double max_diff = decodeVersusFull(c, model_window(c, c.seq_len, 1.f));
    RecordProperty("max_abs_diff", std::to_string(max_diff));
    std::printf("[kv-cache] %s: max |decode - full| over %d positions x %d logits = %.3g\n", GetParam().c_str(), c.seq_len,
                c.vocab_size, max_diff);
    EXPECT_LT(max_diff, 1e-4);
}

// The presets all use CoPE or learned positions; RoPE rotates each cached key at its own position
// (kv.pos0 in kv_forward) and each query at the decoded one. Decoding a token at a time with the
// cache must give the full forward's logits with RoPE too, on the dense path (every head) and
// through an MoE FFN.
TEST(KvCacheRope, DecodeEqualsFullForwardOnTheDensePath) {
    for (const char* preset : {"seed-baseline", "moe-top2-8"}) {
        auto cfg = preset_load(preset);
        ASSERT_TRUE(cfg.is_ok());
        ModelConfig c = shrink(cfg->model);
        c.attention.positional = PosKind::rope;
        ASSERT_TRUE(config_validate(Config{"rope", "", c, cfg->train, cfg->data}).is_ok());
        ASSERT_EQ(c.attention.heads.kind, HeadSelection::all_heads);
        EXPECT_LT(decodeVersusFull(c, c.seq_len), 1e-4) << preset << " with RoPE";
    }
}

TEST(KvCacheWindow, ZeroMeansTheModelWindowOfTheCache) {
    // ForwardOptions::window <= 0 asks for model_window(c, capacity, prev_entropy), as the full forward does.
    auto cfg = preset_load("seed-adaptive");
    ASSERT_TRUE(cfg.is_ok());
    ModelConfig c = shrink(cfg->model);
    c.attention.window.min = 3;  // a window that binds at the shrunk length
    c.attention.window.max = 4;
    Model m;
    model_create(m, c, 4, 0.02f);
    randomize(m, 6);
    const int T = c.seq_len, V = c.vocab_size, W = model_window(c, T, 0.f);
    ASSERT_LT(W, T);
    Batch b = make_batch(1, T, V, 7);
    Decoder given(c, T), zero(c, T);
    for (int t = 0; t < T; t++) {
        const float* lg = given.step(m, b.tok[t], {.window = W});
        const float* lz = zero.step(m, b.tok[t], {.window = 0});
        EXPECT_EQ(zero.a.window, W);
        for (int v = 0; v < V; v++) ASSERT_EQ(lz[v], lg[v]) << "position " << t;
    }
}
INSTANTIATE_TEST_SUITE_P(AllPresets, KvCache, ::testing::ValuesIn(preset_names()),
                         [](const auto& info) {
                             std::string n = info.param;
                             for (auto& ch : n) if (ch == '-') ch = '_';
                             return n;
                         });

TEST(Flops, ModelCountsTheMatmuls) {
    auto cfg = preset_load("seed-baseline");
    cfg->model.vocab_size = 605;
    FlopBreakdown f = model_flops_per_token(cfg->model, 80);
    EXPECT_DOUBLE_EQ(f.attn_proj, 3 * 2.0 * 128 * (128 + 64 + 64));
    EXPECT_DOUBLE_EQ(f.ffn, 3 * 2.0 * 128 * 256 * 3);
    EXPECT_DOUBLE_EQ(f.lm_head, 2.0 * 128 * 605);
    EXPECT_EQ(f.attn_out, 0.0);
}

// ---- the skip path (inference with head selection) equals the dense-masked path ----

struct SkipCase {
    const char* name;
    const char* preset;
    void (*apply)(ModelConfig&);
};
class SkipPath : public ::testing::TestWithParam<SkipCase> {};

TEST_P(SkipPath, FullForwardAndDecodeEqualDenseMasked) {
    auto cfg = preset_load(GetParam().preset);
    ASSERT_TRUE(cfg.is_ok());
    ModelConfig c = cfg->model;
    c.vocab_size = 50;
    GetParam().apply(c);
    ASSERT_TRUE(config_validate(Config{"", "", c, cfg->train, cfg->data}).is_ok())
        << config_validate(Config{"", "", c, cfg->train, cfg->data}).msg;
    // Trained-like scale (weights N(0, 0.08): logits of order 1), CoPE tables and routers non-trivial.
    Model m;
    model_create(m, c, 5, 0.08f);
    auto r = randn(m.params.data.size(), 8, 0.3f);
    for (const TensorSpec& t : m.layout.specs())
        if (t.name.find("cope_pos") != std::string::npos || t.name.find("router") != std::string::npos)
            for (size_t i = 0; i < t.numel; i++) m.params.data[t.offset + i] = r[t.offset + i];
    const int B = 2, T = c.seq_len, V = c.vocab_size;
    const int W = model_window(c, T, 1.f);
    Batch b = make_batch(B, T, V, 9);
    Activations dense, skip;
    activations_create(dense, c, B, T);
    activations_create(skip, c, B, T);
    model_forward(m, dense, b.tok.data(), nullptr, B, T, {.window = W});
    model_forward(m, skip, b.tok.data(), nullptr, B, T, {.window = W, .skip = true});
    double full_diff = 0;
    for (int i = 0; i < B * T * V; i++) full_diff = std::max(full_diff, (double)std::fabs(dense.logits[i] - skip.logits[i]));
    // The gates really switch heads off (otherwise this test would compare two dense paths).
    int off = 0;
    for (int i = 0; i < B * T * c.n_heads; i++) off += skip.layers[0].head_gates[i] == 0.f;
    EXPECT_GT(off, 0);

    Decoder one_d(c, T), one_s(c, T);
    double dec_diff = 0;
    for (int t = 0; t < T; t++) {
        const float* ld = one_d.step(m, b.tok[t], {.window = W});
        const float* ls = one_s.step(m, b.tok[t], {.window = W, .skip = true});
        for (int v = 0; v < V; v++) {
            dec_diff = std::max(dec_diff, (double)std::fabs(ld[v] - ls[v]));
            dec_diff = std::max(dec_diff, (double)std::fabs(ls[v] - dense.logits[t * V + v]));
        }
    }
    double lmax = 0;
    for (int i = 0; i < B * T * V; i++) lmax = std::max(lmax, (double)std::fabs(dense.logits[i]));
    std::printf("[skip] %s: max |skip - dense| full forward %.3g, decode %.3g (max |logit| %.3g; %d of %d layer-0 pairs off)\n",
                GetParam().name, full_diff, dec_diff, lmax, off, B * T * c.n_heads);
    EXPECT_GT(lmax, 0.5) << "logits of a meaningful scale";
    EXPECT_LT(full_diff, 1e-5);
    EXPECT_LT(dec_diff, 1e-4);  // decode vs full forward also differs by summation order
    // The mean attention entropy (the adaptive window's input) covers the same rows on both paths:
    // those of heads that are on for their query.
    EXPECT_GT(dense.entropy, 0.f);
    EXPECT_NEAR(skip.entropy, dense.entropy, 1e-5);
    EXPECT_GT(one_d.a.entropy, 0.f);
    EXPECT_NEAR(one_s.a.entropy, one_d.a.entropy, 1e-5);
}
INSTANTIATE_TEST_SUITE_P(
    HeadSelection, SkipPath,
    ::testing::Values(
        SkipCase{"seed_moh", "seed-moh", [](ModelConfig&) {}},
        SkipCase{"moh_50", "moh-50", [](ModelConfig&) {}},
        SkipCase{"moh_wo_rope_paper", "seed-moh", [](ModelConfig& c) {
            c.attention.use_wo = true; c.attention.positional = PosKind::rope;
            c.attention.heads.gate_scaling = GateScaling::paper; }},
        SkipCase{"moh_mqa_sliding_no_shared", "seed-moh", [](ModelConfig& c) {
            c.n_kv_heads = 1; c.attention.window = {WindowKind::sliding, 24, WindowStrategy::seq_len, 16, 64};
            c.attention.heads.n_shared = 0; c.attention.heads.n_active_routed = 3; }},
        SkipCase{"static_pruning_5_of_8", "seed-baseline", [](ModelConfig& c) {
            c.attention.heads.kind = HeadSelection::static_pruning; c.attention.heads.n_active = 5; }},
        SkipCase{"static_pruning_kv_group_off_wo", "seed-baseline", [](ModelConfig& c) {
            c.attention.use_wo = true;
            c.attention.heads.kind = HeadSelection::static_pruning; c.attention.heads.n_active = 4; }},
        SkipCase{"moh_moe", "moh-moe", [](ModelConfig&) {}}),
    [](const auto& info) { return std::string(info.param.name); });

// ---- training on the skip path: the same loss and gradients as dense-masked training ----

class SkipTrain : public ::testing::TestWithParam<SkipCase> {};

TEST_P(SkipTrain, LossAndGradientsEqualDenseMasked) {
    auto cfg = preset_load(GetParam().preset);
    ASSERT_TRUE(cfg.is_ok());
    ModelConfig c = cfg->model;
    c.vocab_size = 50;
    GetParam().apply(c);
    ASSERT_TRUE(config_validate(Config{"", "", c, cfg->train, cfg->data}).is_ok())
        << config_validate(Config{"", "", c, cfg->train, cfg->data}).msg;
    Model m;
    model_create(m, c, 5, 0.08f);
    auto r = randn(m.params.data.size(), 8, 0.3f);
    for (const TensorSpec& t : m.layout.specs())
        if (t.name.find("cope_pos") != std::string::npos || t.name.find("router") != std::string::npos)
            for (size_t i = 0; i < t.numel; i++) m.params.data[t.offset + i] = r[t.offset + i];
    const int B = 3, T = c.seq_len;
    Batch b = make_batch(B, T, c.vocab_size, 9);
    Activations dense, skip;
    activations_create(dense, c, B, T);
    activations_create(skip, c, B, T);
    const ForwardOptions od{.training = true, .seed = 7}, os{.training = true, .seed = 7, .skip = true};
    model_zero_grad(m);
    const double ld = model_forward(m, dense, b.tok.data(), b.tgt.data(), B, T, od);
    model_backward(m, dense, b.tok.data(), b.tgt.data());
    const auto gd = m.grads.data;
    model_zero_grad(m);
    const double ls = model_forward(m, skip, b.tok.data(), b.tgt.data(), B, T, os);
    model_backward(m, skip, b.tok.data(), b.tgt.data());
    EXPECT_TRUE(skip.skip);
    EXPECT_FALSE(dense.skip);
    int off = 0;
    for (int i = 0; i < B * T * c.n_heads; i++) off += skip.layers[0].head_gates[i] == 0.f;
    EXPECT_GT(off, 0) << "the gates switch pairs off";
    EXPECT_NEAR(ls, ld, 1e-5 * std::fabs(ld)) << "loss";
    EXPECT_NEAR(skip.moh_balance, dense.moh_balance, 1e-6 * std::max(1.0, std::fabs(dense.moh_balance)));
    EXPECT_NEAR(skip.entropy, dense.entropy, 1e-5);
    // Every tensor's gradient: ||g_skip - g_dense|| <= 1e-4 ||g_dense|| (float rounding, other summation order).
    double worst = 0;
    std::string worst_name;
    for (const TensorSpec& t : m.layout.specs()) {
        double dd = 0, nd = 0;
        for (size_t i = 0; i < t.numel; i++) {
            const double x = gd[t.offset + i], y = m.grads.data[t.offset + i];
            dd += (x - y) * (x - y), nd += x * x;
        }
        const double rel = std::sqrt(dd) / std::max(std::sqrt(nd), 1e-12);
        if (nd > 0) EXPECT_LT(rel, 1e-4) << t.name << " |g_dense| " << std::sqrt(nd);
        else EXPECT_EQ(dd, 0.0) << t.name;
        if (rel > worst && nd > 0) worst = rel, worst_name = t.name;
    }
    std::printf("[skip-train] %s: loss dense %.7f skip %.7f, worst gradient rel diff %.3g (%s), %d of %d layer-0 pairs off\n",
                GetParam().name, ld, ls, worst, worst_name.c_str(), off, B * T * c.n_heads);
    // The skip path is deterministic: the same step again gives bit-identical gradients.
    const auto g1 = m.grads.data;
    model_zero_grad(m);
    model_forward(m, skip, b.tok.data(), b.tgt.data(), B, T, os);
    model_backward(m, skip, b.tok.data(), b.tgt.data());
    EXPECT_EQ(g1, m.grads.data);
}
INSTANTIATE_TEST_SUITE_P(
    HeadSelection, SkipTrain,
    ::testing::Values(
        SkipCase{"seed_moh", "seed-moh", [](ModelConfig&) {}},
        SkipCase{"moh_50", "moh-50", [](ModelConfig&) {}},
        SkipCase{"moh_wo_rope_paper", "seed-moh", [](ModelConfig& c) {
            c.attention.use_wo = true; c.attention.positional = PosKind::rope;
            c.attention.heads.gate_scaling = GateScaling::paper; }},
        SkipCase{"moh_wo_cope_shared", "seed-moh", [](ModelConfig& c) {
            c.attention.use_wo = true; c.attention.cope_shared = true; }},
        SkipCase{"moh_mqa_sliding_no_shared", "seed-moh", [](ModelConfig& c) {
            c.n_kv_heads = 1; c.attention.window = {WindowKind::sliding, 24, WindowStrategy::seq_len, 16, 64};
            c.attention.heads.n_shared = 0; c.attention.heads.n_active_routed = 3; }},
        SkipCase{"moh_learned_mha_post", "moh-50", [](ModelConfig& c) {
            c.attention.positional = PosKind::learned; c.n_kv_heads = c.n_heads; c.norm_position = NormPosition::post; }},
        SkipCase{"static_pruning_5_of_8", "seed-baseline", [](ModelConfig& c) {
            c.attention.heads.kind = HeadSelection::static_pruning; c.attention.heads.n_active = 5; }},
        SkipCase{"static_pruning_kv_group_off_wo", "seed-baseline", [](ModelConfig& c) {
            c.attention.use_wo = true;
            c.attention.heads.kind = HeadSelection::static_pruning; c.attention.heads.n_active = 4; }},
        SkipCase{"moh_moe", "moh-moe", [](ModelConfig&) {}}),
    [](const auto& info) { return std::string(info.param.name); });

// Finite differences through training on the skip path: every parameter of MoH / static pruning
// configs, with CoPE (per head and shared), RoPE, learned positions, GQA / MQA, W_O on and off,
// sliding windows, S = 0.
class SkipGrad : public ::testing::TestWithParam<Variant> {};

TEST_P(SkipGrad, EveryParameterMatchesFiniteDifferences) {
    ModelConfig c = shrink(preset_load("seed-moh")->model);
    GetParam().apply(c);
    ASSERT_TRUE(config_validate(Config{"", "", c, {}, {}}).is_ok()) << config_validate(Config{"", "", c, {}, {}}).msg;
    check_model_grads(c, std::string("skip ") + GetParam().name, 0, true);
}
INSTANTIATE_TEST_SUITE_P(
    HeadSelection, SkipGrad,
    ::testing::Values(
        Variant{"seed_moh", [](ModelConfig&) {}},
        Variant{"moh_50", [](ModelConfig& c) { c.attention.heads.n_active_routed = 2; }},
        Variant{"moh_rope_wo_paper", [](ModelConfig& c) {
            c.attention.positional = PosKind::rope; c.attention.use_wo = true; c.head_dim = 4;
            c.attention.heads.gate_scaling = GateScaling::paper; }},
        Variant{"moh_cope_shared_wo", [](ModelConfig& c) {
            c.attention.cope_shared = true; c.attention.use_wo = true; c.head_dim = 4; }},
        Variant{"moh_learned_sliding_noshared_mqa", [](ModelConfig& c) {
            c.attention.positional = PosKind::learned; c.attention.window.kind = WindowKind::sliding;
            c.attention.window.size = 3; c.n_kv_heads = 1;
            c.attention.heads = {HeadSelection::moh, 8, 0, 3, 0.5f, GateScaling::official}; }},
        Variant{"moh_cope_sliding", [](ModelConfig& c) {
            c.attention.window.kind = WindowKind::sliding; c.attention.window.size = 4; }},
        Variant{"static_pruning_wo", [](ModelConfig& c) {
            c.attention.heads.kind = HeadSelection::static_pruning; c.attention.heads.n_active = 3;
            c.attention.use_wo = true; c.head_dim = 4; }}),
    [](const auto& info) { return std::string(info.param.name); });

// ---- the cost report's training side and the plain-model comparison ----

TEST(Cost, TrainingSideAndPlainModel) {
    auto cfg = preset_load("seed-moh");
    ASSERT_TRUE(cfg.is_ok());
    ModelConfig c = cfg->model;
    c.vocab_size = 50;
    c.seq_len = 24;
    Model m;
    model_create(m, c, 5, 0.08f);
    Batch b = make_batch(2, c.seq_len, c.vocab_size, 9);
    CostReport r = cost_flops(m, b.tok.data(), 2, c.seq_len);
    ASSERT_TRUE(r.heads_gated);
    const double C = c.d_model, H = c.n_heads, S = c.attention.heads.n_shared;
    for (const CostSide* side : {&r.forward, &r.decode, &r.train}) {
        const double mul = side == &r.train ? 3 : 1;
        const CostComponent& at = side->components[0];
        // The plain model: the dense-masked attention without the router (2C(R + S + 2) per layer and token).
        EXPECT_NEAR(at.flops_all_heads, at.flops_dense - mul * c.n_layers * 2 * C * (H - S + S + 2), 1e-6 * at.flops_dense);
        EXPECT_LT(at.flops_routed, at.flops_all_heads) << "25% of the pairs are off";
        EXPECT_GT(side->total().speedup_vs_all_heads_flops(), 1.0);
        EXPECT_GT(side->total().speedup_flops(), side->total().speedup_vs_all_heads_flops());
    }
    for (int i = 0; i < 4; i++) {  // a training step costs 3 forwards, on every side of the comparison
        EXPECT_NEAR(r.train.components[i].flops_routed, 3 * r.forward.components[i].flops_routed,
                    1e-9 * r.forward.components[i].flops_routed);
        EXPECT_NEAR(r.train.components[i].flops_dense, 3 * r.forward.components[i].flops_dense,
                    1e-9 * r.forward.components[i].flops_dense);
    }
    // Measured: every variant timed on every side.
    CostReport t = cost_measure(m, 0.005, 1);
    for (const CostSide* side : {&t.forward, &t.decode, &t.train})
        for (const CostComponent& x : side->components) {
            EXPECT_GT(x.sec_dense, 0) << x.name;
            EXPECT_GT(x.sec_routed, 0) << x.name;
            EXPECT_GT(x.sec_all_heads, 0) << x.name;
            EXPECT_GT(x.measured_ratio, 0) << x.name;
            EXPECT_GT(x.ratio_vs_all_heads, 0) << x.name;
        }
    // (No comparison of the sides' times: timings on a shared machine belong in the bench, not a test.)
    EXPECT_NEAR(t.train.total().flops_routed, 3 * t.forward.total().flops_routed, 1e-6 * t.forward.total().flops_routed)
        << "a step is a forward and a backward (2 forwards) in the FLOP model";
    EXPECT_NE(t.explanation.find("plain model"), std::string::npos);
    for (const CostSide* side : {&t.forward, &t.decode, &t.train})
        for (const CostComponent& x : side->components) {  // the rounds' spread is kept beside the median
            EXPECT_GE(x.rounds, 5) << x.name;
            EXPECT_LE(x.ratio_q1, x.measured_ratio) << x.name;
            EXPECT_GE(x.ratio_q3, x.measured_ratio) << x.name;
        }
    EXPECT_GE(t.threads, 1);

    // Without head selection there is no plain-model comparison, and training compares a path with itself.
    ModelConfig e = shrink(preset_load("moe-top2-8")->model);
    Model me;
    model_create(me, e, 5, 0.08f);
    Batch be = make_batch(2, e.seq_len, e.vocab_size, 9);
    CostReport re = cost_flops(me, be.tok.data(), 2, e.seq_len);
    EXPECT_FALSE(re.heads_gated);
    EXPECT_DOUBLE_EQ(re.train.total().speedup_flops(), 1.0);
    EXPECT_GT(re.forward.components[1].flops_dense, re.forward.components[1].flops_routed) << "every expert, masked";
    EXPECT_DOUBLE_EQ(re.train.components[1].flops_dense, re.train.components[1].flops_routed) << "training routes both";
}

// Whether a measured speedup can be stood behind (cost_doubt): the 22.85x against a FLOP
// model of 3.98x is flagged, a wide spread is flagged, agreeing rounds within the FLOP bound are not.
TEST(Cost, DoubtfulMeasurementsAreFlagged) {
    CostComponent c;
    c.name = "ffn";
    c.flops_dense = 3.98, c.flops_routed = 1;  // the FLOP model's speedup: 3.98x
    c.rounds = 9;
    c.measured_ratio = 2.64, c.ratio_q1 = 2.55, c.ratio_q3 = 2.70;  // the idle machine's figure
    EXPECT_EQ(cost_doubt(c), "");
    c.measured_ratio = 22.85, c.ratio_q1 = 20.1, c.ratio_q3 = 24.0;  // timed under load
    EXPECT_NE(cost_doubt(c).find("beats its FLOP model 3.98x"), std::string::npos) << cost_doubt(c);
    c.measured_ratio = 2.6, c.ratio_q1 = 1.9, c.ratio_q3 = 3.4;  // rounds that disagree
    EXPECT_NE(cost_doubt(c).find("rounds disagree"), std::string::npos) << cost_doubt(c);
    c.measured_ratio = 5.0, c.ratio_q1 = 4.9, c.ratio_q3 = 5.1;  // above the model, within the margin
    EXPECT_EQ(cost_doubt(c), "");
    c.rounds = 0;  // FLOPs only: nothing to doubt
    EXPECT_EQ(cost_doubt(c), "");
    CostReport r;
    c.rounds = 9, c.measured_ratio = 22.85, c.ratio_q1 = 20.1, c.ratio_q3 = 24.0;
    r.forward.components = {c};
    EXPECT_EQ(cost_doubts(r).rfind("forward ffn: measured 22.85x", 0), 0u) << cost_doubts(r);
}
