// Every op: fast vs naive *_ref, and backward vs finite differences (tolerance in gradcheck.h).
// Losses are L = sum(out * R) for a fixed random R, so dL/dout = R.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>

#include "gradcheck.h"
#include "layers/attention.h"
#include "layers/embedding.h"
#include "layers/ffn.h"
#include "layers/linear.h"
#include "layers/norm.h"
#include "layers/loss.h"
#include "tensor/gemm.h"
#include "tensor/gemm_bf16.h"

using namespace rl;
using namespace rl::test;

namespace {
constexpr double k_tol = 2e-2;

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    double m = 0;
    for (size_t i = 0; i < a.size(); i++) m = std::max(m, (double)std::fabs(a[i] - b[i]));
    return m;
}
}  // namespace

// Every library gemm() can pick, every transpose case, sub-blocks of wider buffers (ld > width),
// beta 0 / 1 / other and alpha != 1 (the cases libxsmm cannot take must reach another library).
TEST(Gemm, EveryLibraryAndCaseMatchesRef) {
    struct Shape { int M, N, K; };
    for (Shape sh : {Shape{80, 128, 128}, Shape{16, 80, 16}, Shape{3, 5, 7}, Shape{1, 128, 605}, Shape{4, 300, 20}, Shape{1280, 64, 128}, Shape{80, 605, 128}, Shape{64, 48, 1300}})
        for (GemmLib lib : {GemmLib::eigen, GemmLib::xsmm})
            for (int ta = 0; ta < 2; ta++)
                for (int tb = 0; tb < 2; tb++)
                    for (float beta : {0.f, 1.f, 0.5f}) {
                        const int M = sh.M, N = sh.N, K = sh.K, pad = 3;
                        const int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
                        const float alpha = beta == 0.5f ? -0.75f : 1.f;
                        auto a = randn((size_t)(ta ? K : M) * lda, 1), b = randn((size_t)(tb ? N : K) * ldb, 2);
                        auto c = randn((size_t)M * ldc, 3), cr = c;
                        gemm_with(lib, ta, tb, M, N, K, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
                        gemm_ref(ta, tb, M, N, K, alpha, a.data(), lda, b.data(), ldb, beta, cr.data(), ldc);
                        double worst = 0;
                        for (int i = 0; i < M; i++)
                            for (int j = 0; j < ldc; j++) {
                                const size_t at = (size_t)i * ldc + j;
                                // padding columns must be left alone
                                worst = std::max(worst, (double)std::fabs(c[at] - cr[at]) / (1.0 + std::fabs(cr[at])));
                            }
                        EXPECT_LT(worst, 1e-5 + 6e-8 * K)  /* fp32 sums: error grows with K */ << gemm_lib_name(lib) << " ta " << ta << " tb " << tb << " beta " << beta
                                               << " " << M << "x" << N << "x" << K;
                    }
    // the choice: tiny products stay in Eigen; libxsmm takes every case at alpha 1, beta 0/1
    EXPECT_EQ(gemm_choice(false, false, 1, 128, 128, 1.f, 0.f), GemmLib::eigen);
    EXPECT_EQ(gemm_choice(true, false, 128, 128, 80, 1.f, 0.5f), GemmLib::eigen);
    if (gemm_available(GemmLib::xsmm))
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) EXPECT_EQ(gemm_choice(ta, tb, 80, 128, 1280, 1.f, 1.f), GemmLib::xsmm);
}

// BF16 weights (a checkpoint's experts as mapped), each kernel against the naive sum, at shapes whose
// K is no multiple of 32 (the masked last step) and N no multiple of the tiles, a row stride wider than
// K, one row and many. The error is measured against sum |a b| (the product's own scale): float32-like
// for widen, ~2^-18 for split, ~2^-9 for bf16 activations (which must also differ from split).
TEST(Gemm, Bf16WeightsMatchRef) {
    struct Shape { int M, N, K; };
    for (Shape sh : {Shape{1, 37, 24}, Shape{5, 300, 64}, Shape{33, 1030, 128}, Shape{7, 21, 56}, Shape{64, 40, 2048}, Shape{9, 130, 1000}}) {
        const int M = sh.M, N = sh.N, K = sh.K, lda = K + 5, ldc = N + 3;
        auto a = randn((size_t)M * lda, 1), bw = randn((size_t)N * K, 2);
        std::vector<uint16_t> b(bw.size());
        std::vector<float> bf(bw.size());
        for (size_t i = 0; i < b.size(); i++) {
            uint32_t bits;
            std::memcpy(&bits, &bw[i], 4);
            b[i] = (uint16_t)(bits >> 16);
            bits = (uint32_t)b[i] << 16;
            std::memcpy(&bf[i], &bits, 4);
        }
        std::vector<float> cr((size_t)M * ldc, 7.f), scale((size_t)M * ldc, 1.f);
        gemm_bf16w_ref(M, N, K, a.data(), lda, b.data(), cr.data(), ldc);
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double s = 0;
                for (int k = 0; k < K; k++) s += std::fabs((double)a[(size_t)i * lda + k] * bf[(size_t)j * K + k]);
                scale[(size_t)i * ldc + j] = (float)s;
            }
        double err[3] = {0, 0, 0};
        for (Bf16Kernel kern : {Bf16Kernel::widen, Bf16Kernel::split, Bf16Kernel::bf16}) {
            std::vector<float> c((size_t)M * ldc, 7.f);
            gemm_bf16w_with(kern, M, N, K, a.data(), lda, b.data(), c.data(), ldc);
            double& worst = err[(int)kern];
            for (size_t i = 0; i < c.size(); i++)  // padding columns must stay 7 (scale 1 there)
                worst = std::max(worst, (double)std::fabs(c[i] - cr[i]) / scale[i]);
        }
        const std::string at = std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K);
        EXPECT_LT(err[0], 1e-6) << at;
        if (!bf16_dot_available()) continue;  // split and bf16 fall back to widen
        EXPECT_LT(err[1], 8e-6) << at;
        EXPECT_LT(err[2], 4e-3) << at;
        EXPECT_GT(err[2], 10 * err[1]) << at;
    }
}

// The backward's product through a BF16 weight (router-only tuning): C += A . B with B (N,K) BF16, against
// the double-sum reference, accumulating onto what C held; shapes with blocks of rows that do not divide N.
TEST(Gemm, Bf16AccNnMatchesRef) {
    struct Shape { int M, N, K; };
    for (Shape sh : {Shape{1, 37, 24}, Shape{5, 300, 64}, Shape{17, 1030, 40}, Shape{3, 70, 2048}}) {
        const int M = sh.M, N = sh.N, K = sh.K, lda = N + 3, ldc = K + 5;
        auto a = randn((size_t)M * lda, 3), bw = randn((size_t)N * K, 4), c0 = randn((size_t)M * ldc, 5);
        std::vector<uint16_t> b(bw.size());
        for (size_t i = 0; i < b.size(); i++) b[i] = (uint16_t)(std::bit_cast<uint32_t>(bw[i]) >> 16);
        std::vector<float> c = c0, cr = c0;
        gemm_bf16w_acc_nn(M, N, K, a.data(), lda, b.data(), c.data(), ldc);
        gemm_bf16w_acc_nn_ref(M, N, K, a.data(), lda, b.data(), cr.data(), ldc);
        double worst = 0;  // against the sum of |terms| (float32 rounding grows with it), as above
        for (int i = 0; i < M; i++)
            for (int k = 0; k < ldc; k++) {
                double scale = std::fabs(c0[(size_t)i * ldc + k]);
                for (int j = 0; k < K && j < N; j++)
                    scale += std::fabs((double)a[(size_t)i * lda + j] * bf16_to_float(b[(size_t)j * K + k]));
                const size_t at = (size_t)i * ldc + k;
                worst = std::max(worst, (double)std::fabs(c[at] - cr[at]) / std::max(scale, 1e-30));
            }
        EXPECT_LT(worst, 1e-6) << M << "x" << N << "x" << K;
        EXPECT_GT(std::fabs(c[0] - c0[0]), 1e-3) << "it accumulates a product, not nothing";
    }
}

// Packed weights (bf16_pack, the layout gemm_bf16w_packed reads): against the naive sum over the packed
// layout (which also checks the packing, element by element through the indices the kernel does not
// use), and against the dot-form bf16 kernel on the unpacked bits (the same products, summed in another
// order). Shapes: odd K (the zero pair), K across several chunks of 256 pairs, N no multiple of the
// 32-column panels, M no multiple of the tiles, one row, and products big enough to split the panels over
// the threads; then one call from inside a parallel region (an expert's), which must run on its thread.
TEST(Gemm, Bf16PackedWeightsMatchRefAndTheDotKernel) {
    if (!bf16_dot_available()) GTEST_SKIP() << "no AVX512-BF16 on this CPU: the packed kernel is not used";
    struct Shape { int M, N, K; };
    // N 50: a last panel of 18 columns (both vector masks partial); K 600: a second chunk added into C.
    for (Shape sh : {Shape{1, 37, 25}, Shape{13, 64, 64}, Shape{64, 40, 2048}, Shape{25, 130, 1001}, Shape{256, 1030, 96},
                     Shape{3, 50, 30}, Shape{40, 50, 600}}) {
        const int M = sh.M, N = sh.N, K = sh.K, lda = K + 3, ldc = N + 5;
        auto a = randn((size_t)M * lda, 11), bw = randn((size_t)N * K, 12);
        std::vector<uint16_t> b(bw.size());
        for (size_t i = 0; i < b.size(); i++) b[i] = (uint16_t)(std::bit_cast<uint32_t>(bw[i]) >> 16);
        std::vector<uint16_t> packed(bf16_packed_elements(N, K), 0xFFFF);  // all written, padding as zeros
        bf16_pack(b.data(), N, K, packed.data());
        std::vector<float> c((size_t)M * ldc, 7.f), cr((size_t)M * ldc, 7.f), cd((size_t)M * ldc, 7.f);
        gemm_bf16w_packed(M, N, K, a.data(), lda, packed.data(), c.data(), ldc);
        gemm_bf16w_packed_ref(M, N, K, a.data(), lda, packed.data(), cr.data(), ldc);
        gemm_bf16w_with(Bf16Kernel::bf16, M, N, K, a.data(), lda, b.data(), cd.data(), ldc);
        double to_ref = 0, to_dot = 0;
        for (size_t i = 0; i < c.size(); i++) {  // padding columns must stay 7
            to_ref = std::max(to_ref, (double)std::fabs(c[i] - cr[i]) / (1.0 + std::fabs(cr[i])));
            to_dot = std::max(to_dot, (double)std::fabs(c[i] - cd[i]) / (1.0 + std::fabs(cd[i])));
        }
        const std::string at = std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K);
        EXPECT_LT(to_ref, 1e-5 + 6e-8 * K) << at;
        EXPECT_LT(to_dot, 1e-5 + 6e-8 * K) << at;
        for (uint16_t v : packed) ASSERT_NE(v, 0xFFFF) << at << ": a packed element left unwritten";
        if (sh.M != 40) continue;
        std::vector<float> cp((size_t)M * ldc, 7.f);
#pragma omp parallel num_threads(2)
        {
#pragma omp single
            gemm_bf16w_packed(M, N, K, a.data(), lda, packed.data(), cp.data(), ldc);
        }
        EXPECT_EQ(cp, c) << at << " inside a parallel region";
    }
}

TEST(Linear, FastMatchesRefAndFiniteDifferences) {
    const int N = 7, I = 5, O = 6;
    auto x = randn(N * I, 1), w = randn(O * I, 2), b = randn(O, 3), R = randn(N * O, 4);
    std::vector<float> y(N * O), yr(N * O);
    linear_forward(y.data(), x.data(), w.data(), b.data(), N, I, O);
    linear_forward_ref(yr.data(), x.data(), w.data(), b.data(), N, I, O);
    EXPECT_LT(max_abs_diff(y, yr), 1e-5);

    std::vector<float> dx(N * I), dw(O * I), db(O), dxr(N * I), dwr(O * I), dbr(O);
    linear_backward(dx.data(), dw.data(), db.data(), R.data(), x.data(), w.data(), N, I, O);
    linear_backward_ref(dxr.data(), dwr.data(), dbr.data(), R.data(), x.data(), w.data(), N, I, O);
    EXPECT_LT(max_abs_diff(dx, dxr), 1e-5);
    EXPECT_LT(max_abs_diff(dw, dwr), 1e-5);
    EXPECT_LT(max_abs_diff(db, dbr), 1e-5);

    auto loss = [&] {
        linear_forward(y.data(), x.data(), w.data(), b.data(), N, I, O);
        return dot(y, R);
    };
    for (auto [name, p, g] : {std::tuple{"x", &x, &dx}, {"w", &w, &dw}, {"b", &b, &db}}) {
        auto r = gradcheck(loss, p->data(), g->data(), p->size());
        EXPECT_LT(r.max_err, k_tol) << r.describe(std::string("linear d") + name);
    }
}

TEST(Norm, RmsnormFastMatchesRefAndFiniteDifferences) {
    const int N = 5, C = 12;
    auto x = randn(N * C, 5), w = randn(C, 6), R = randn(N * C, 7);
    std::vector<float> y(N * C), yr(N * C), rs(N), rsr(N);
    rmsnorm_forward(y.data(), rs.data(), x.data(), w.data(), N, C, 1e-5f);
    rmsnorm_forward_ref(yr.data(), rsr.data(), x.data(), w.data(), N, C, 1e-5f);
    EXPECT_LT(max_abs_diff(y, yr), 1e-5);
    std::vector<float> dx(N * C), dw(C), dxr(N * C), dwr(C);
    rmsnorm_backward(dx.data(), dw.data(), R.data(), x.data(), w.data(), rs.data(), N, C);
    rmsnorm_backward_ref(dxr.data(), dwr.data(), R.data(), x.data(), w.data(), rs.data(), N, C);
    EXPECT_LT(max_abs_diff(dx, dxr), 1e-4);
    EXPECT_LT(max_abs_diff(dw, dwr), 1e-4);
    auto loss = [&] {
        rmsnorm_forward(y.data(), rs.data(), x.data(), w.data(), N, C, 1e-5f);
        return dot(y, R);
    };
    auto rx = gradcheck(loss, x.data(), dx.data(), x.size());
    EXPECT_LT(rx.max_err, k_tol) << rx.describe("rmsnorm dx");
    auto rw = gradcheck(loss, w.data(), dw.data(), w.size());
    EXPECT_LT(rw.max_err, k_tol) << rw.describe("rmsnorm dw");
}

TEST(Norm, LayernormFastMatchesRefAndFiniteDifferences) {
    const int N = 5, C = 12;
    auto x = randn(N * C, 8), w = randn(C, 9), b = randn(C, 10), R = randn(N * C, 11);
    std::vector<float> y(N * C), yr(N * C), m(N), rs(N), mr(N), rsr(N);
    layernorm_forward(y.data(), m.data(), rs.data(), x.data(), w.data(), b.data(), N, C, 1e-5f);
    layernorm_forward_ref(yr.data(), mr.data(), rsr.data(), x.data(), w.data(), b.data(), N, C, 1e-5f);
    EXPECT_LT(max_abs_diff(y, yr), 1e-5);
    std::vector<float> dx(N * C), dw(C), db(C), dxr(N * C), dwr(C), dbr(C);
    layernorm_backward(dx.data(), dw.data(), db.data(), R.data(), x.data(), w.data(), m.data(), rs.data(), N, C);
    layernorm_backward_ref(dxr.data(), dwr.data(), dbr.data(), R.data(), x.data(), w.data(), m.data(), rs.data(), N, C);
    EXPECT_LT(max_abs_diff(dx, dxr), 1e-4);
    auto loss = [&] {
        layernorm_forward(y.data(), m.data(), rs.data(), x.data(), w.data(), b.data(), N, C, 1e-5f);
        return dot(y, R);
    };
    for (auto [name, p, g] : {std::tuple{"x", &x, &dx}, {"w", &w, &dw}, {"b", &b, &db}}) {
        auto r = gradcheck(loss, p->data(), g->data(), p->size());
        EXPECT_LT(r.max_err, k_tol) << r.describe(std::string("layernorm d") + name);
    }
}

TEST(Ffn, ActivationsMatchFiniteDifferences) {
    const int n = 64;
    auto a = randn(n, 12), b = randn(n, 13), R = randn(n, 14);
    // Keep ReLU inputs away from its kink so the central difference is exact.
    for (auto& v : a) v += v > 0 ? 0.1f : -0.1f;
    std::vector<float> h(n);
    {
        std::vector<float> da(n), db(n);
        swiglu_backward(da.data(), db.data(), R.data(), a.data(), b.data(), n);
        auto loss = [&] { swiglu_forward(h.data(), a.data(), b.data(), n); return dot(h, R); };
        auto r1 = gradcheck(loss, a.data(), da.data(), n);
        auto r2 = gradcheck(loss, b.data(), db.data(), n);
        EXPECT_LT(r1.max_err, k_tol) << r1.describe("swiglu dgate");
        EXPECT_LT(r2.max_err, k_tol) << r2.describe("swiglu dup");
        // in place, as swiglu_ffn_backward runs it: d gate over d hidden
        std::vector<float> inplace = R, db2(n);
        swiglu_backward(inplace.data(), db2.data(), inplace.data(), a.data(), b.data(), n);
        EXPECT_EQ(inplace, da);
        EXPECT_EQ(db2, db);
    }
    for (int kind = 0; kind < 2; kind++) {
        std::vector<float> dx(n);
        if (kind == 0) gelu_backward(dx.data(), R.data(), a.data(), n);
        else relu_backward(dx.data(), R.data(), a.data(), n);
        auto loss = [&] {
            if (kind == 0) gelu_forward(h.data(), a.data(), n);
            else relu_forward(h.data(), a.data(), n);
            return dot(h, R);
        };
        auto r = gradcheck(loss, a.data(), dx.data(), n, 0, 1e-3f);
        EXPECT_LT(r.max_err, k_tol) << r.describe(kind == 0 ? "gelu dx" : "relu dx");
    }
}

TEST(Embedding, TokenAndPositionGradients) {
    const int B = 2, T = 3, C = 4, V = 5;
    auto te = randn(V * C, 15), pe = randn(T * C, 16), R = randn(B * T * C, 17);
    std::vector<int> tok = {1, 4, 1, 0, 2, 4};
    std::vector<float> out(B * T * C), dte(V * C), dpe(T * C);
    embedding_backward(dte.data(), dpe.data(), R.data(), tok.data(), B, T, C);
    auto loss = [&] {
        embedding_forward(out.data(), tok.data(), te.data(), pe.data(), B, T, C);
        return dot(out, R);
    };
    auto r1 = gradcheck(loss, te.data(), dte.data(), te.size());
    auto r2 = gradcheck(loss, pe.data(), dpe.data(), pe.size());
    EXPECT_LT(r1.max_err, k_tol) << r1.describe("tok_emb");
    EXPECT_LT(r2.max_err, k_tol) << r2.describe("pos_emb");
}

TEST(Loss, CrossEntropyMatchesRefAndFiniteDifferencesWithPadding) {
    const int N = 6, V = 7;
    auto logits = randn(N * V, 18, 2.f);
    std::vector<int> tgt = {3, -1, 0, 6, -1, 2};  // -1 = padding, ignored
    std::vector<float> probs(N * V), losses(N), dl(N * V);
    int valid = 0;
    float l = crossentropy_forward(losses.data(), probs.data(), logits.data(), tgt.data(), N, V, &valid);
    EXPECT_EQ(valid, 4);
    EXPECT_NEAR(l, crossentropy_forward_ref(logits.data(), tgt.data(), N, V), 1e-5);
    crossentropy_backward(dl.data(), probs.data(), tgt.data(), N, V, 1.f / valid);
    for (int v = 0; v < V; v++) EXPECT_EQ(dl[1 * V + v], 0.f);  // padded rows get no gradient
    auto loss = [&] {
        return (double)crossentropy_forward(losses.data(), probs.data(), logits.data(), tgt.data(), N, V, nullptr);
    };
    auto r = gradcheck(loss, logits.data(), dl.data(), logits.size(), 0, 1e-2f);
    EXPECT_LT(r.max_err, k_tol) << r.describe("cross-entropy dlogits");
}

TEST(Rope, BackwardIsTheAdjointAndPreservesNorm) {
    const int B = 2, T = 5, nh = 3, D = 8;
    auto x = randn(B * T * nh * D, 19), R = randn(B * T * nh * D, 20);
    auto x0 = x;
    std::vector<float> inv_freq(D / 2);
    rope_inv_freq(inv_freq.data(), D, 10000.f);
    rope_forward(x.data(), B, T, nh, D, inv_freq.data());
    // A rotation keeps each (i, i+D/2) pair's length.
    double n0 = dot(x0, x0), n1 = dot(x, x);
    EXPECT_NEAR(n0, n1, 1e-3 * n0);
    auto g = R;
    rope_backward(g.data(), B, T, nh, D, inv_freq.data());
    auto y = x0;
    auto loss = [&] {
        y = x0;
        rope_forward(y.data(), B, T, nh, D, inv_freq.data());
        return dot(y, R);
    };
    auto r = gradcheck(loss, x0.data(), g.data(), x0.size());
    EXPECT_LT(r.max_err, k_tol) << r.describe("rope dx");
}

struct AttnCase {
    const char* name;
    int H, G, npos;
    bool shared;
    int window;
};

class Attention : public ::testing::TestWithParam<AttnCase> {};

TEST_P(Attention, FastMatchesRefAndFiniteDifferences) {
    const AttnCase& c = GetParam();
    AttnDims d;
    d.B = 2; d.T = 9; d.H = c.H; d.G = c.G; d.D = 4;
    d.npos = c.npos; d.cope_shared = c.shared; d.window = c.window;
    const size_t nq = (size_t)d.B * d.T * d.H * d.D, nk = (size_t)d.B * d.T * d.G * d.D;
    const size_t ne = c.npos ? (size_t)(c.shared ? 1 : d.H) * c.npos * d.D : 1;
    auto q = randn(nq, 21), k = randn(nk, 22), v = randn(nk, 23), e = randn(ne, 24, 0.5f), R = randn(nq, 25);
    std::vector<float> y(nq), yr(nq), att((size_t)d.B * d.H * d.T * d.T), attr(att.size()), gates(att.size());
    std::vector<float> scratch(attention_scratch_floats(d));
    const float* ep = c.npos ? e.data() : nullptr;
    float ent = 0;
    attention_forward(y.data(), att.data(), gates.data(), &ent, scratch.data(), q.data(), k.data(), v.data(), ep, d);
    attention_forward_ref(yr.data(), attr.data(), q.data(), k.data(), v.data(), ep, d);
    EXPECT_LT(max_abs_diff(y, yr), 1e-5) << "fast vs ref forward";
    EXPECT_LT(max_abs_diff(att, attr), 1e-5) << "fast vs ref probabilities";
    EXPECT_GT(ent, 0.f);
    // Masked keys (future, or outside the window) get exactly zero probability.
    for (int i = 0; i < d.T; i++)
        for (int j = 0; j < d.T; j++)
            if (j > i || j <= i - d.window) EXPECT_EQ(att[i * d.T + j], 0.f) << i << "," << j;

    std::vector<float> dq(nq), dk(nk), dv(nk), de(ne);
    attention_backward(dq.data(), dk.data(), dv.data(), de.data(), scratch.data(), R.data(), q.data(), k.data(),
                       v.data(), att.data(), gates.data(), ep, d);
    auto loss = [&] {
        attention_forward(y.data(), att.data(), gates.data(), nullptr, scratch.data(), q.data(), k.data(), v.data(), ep, d);
        return dot(y, R);
    };
    auto piece = [&] { return c.npos ? cope_piece(gates.data(), d.B * d.H, d.T, c.npos) : 0; };
    for (auto [name, p, g] : {std::tuple{"q", &q, &dq}, {"k", &k, &dk}, {"v", &v, &dv}}) {
        auto r = gradcheck(loss, p->data(), g->data(), p->size(), 0, 1e-2f, 1, piece);
        EXPECT_LT(r.max_err, k_tol) << r.describe(std::string(c.name) + " d" + name);
    }
    if (c.npos) {
        auto r = gradcheck(loss, e.data(), de.data(), e.size(), 0, 1e-2f, 1, piece);
        EXPECT_LT(r.max_err, k_tol) << r.describe(std::string(c.name) + " dcope_e");
    }
}

INSTANTIATE_TEST_SUITE_P(
    Variants, Attention,
    ::testing::Values(AttnCase{"mha", 4, 4, 0, false, 1 << 30}, AttnCase{"gqa", 4, 2, 0, false, 1 << 30},
                      AttnCase{"mqa", 4, 1, 0, false, 1 << 30}, AttnCase{"gqa_sliding3", 4, 2, 0, false, 3},
                      AttnCase{"cope_per_head", 4, 2, 8, false, 1 << 30}, AttnCase{"cope_shared", 4, 2, 8, true, 1 << 30},
                      AttnCase{"cope_clamped_npos3", 2, 1, 3, false, 1 << 30},
                      AttnCase{"cope_sliding4", 4, 4, 8, false, 4}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Attention, DecodeRowMatchesFullForwardLastRow) {
    AttnDims d;
    d.B = 1; d.T = 7; d.H = 4; d.G = 2; d.D = 4; d.npos = 6; d.window = 5;
    auto q = randn(7 * 16, 26), k = randn(7 * 8, 27), v = randn(7 * 8, 28), e = randn(4 * 6 * 4, 29, 0.5f);
    std::vector<float> y(7 * 16), att(4 * 49), gates(att.size()), scratch(attention_scratch_floats(d));
    attention_forward(y.data(), att.data(), gates.data(), nullptr, scratch.data(), q.data(), k.data(), v.data(), e.data(), d);
    for (int len = 1; len <= 7; len++) {
        std::vector<float> row(16), s(attention_decode_scratch_floats(d, len));
        attention_decode_row(row.data(), s.data(), q.data() + (len - 1) * 16, k.data(), v.data(), len, e.data(), d);
        for (int c = 0; c < 16; c++) EXPECT_NEAR(row[c], y[(len - 1) * 16 + c], 1e-5) << "len " << len;
    }
}

// ---- attention rows of the training skip path: fast vs ref, vs the full kernels, finite differences ----

struct RowsCase {
    const char* name;
    int npos, window;
    std::vector<int> pos;  // the given rows (ascending)
    int T = 9;             // of a sequence of T (more than 16 given rows: several causal row blocks)
};
class AttentionRows : public ::testing::TestWithParam<RowsCase> {};

TEST_P(AttentionRows, MatchRefFullKernelsAndFiniteDifferences) {
    const RowsCase& c = GetParam();
    const int T = c.T, D = 4, P = c.npos, n = (int)c.pos.size(), keys = c.pos.back() + 1;
    // The head reads kv group 1 of 2: keys and values (T, 2D), the group's D columns at offset D.
    auto q_all = randn((size_t)T * D, 31), kv_k = randn((size_t)T * 2 * D, 32), kv_v = randn((size_t)T * 2 * D, 33);
    auto e = randn(P ? (size_t)P * D : 1, 34, 0.5f), R = randn((size_t)n * D, 35);
    const float* ep = P ? e.data() : nullptr;
    std::vector<float> q((size_t)n * D);
    for (int r = 0; r < n; r++) std::copy_n(q_all.data() + (size_t)c.pos[r] * D, D, q.data() + (size_t)r * D);
    std::vector<float> kc((size_t)T * D), vc((size_t)T * D);  // the group's columns, contiguous
    for (int j = 0; j < T; j++)
        for (int d = 0; d < D; d++) kc[j * D + d] = kv_k[j * 2 * D + D + d], vc[j * D + d] = kv_v[j * 2 * D + D + d];

    // The fast kernel's rows have all T keys (0 where masked); the reference's the keys up to the last row.
    std::vector<float> y((size_t)n * D), att((size_t)n * T), gates((size_t)n * T),
        z(attention_rows_forward_scratch_floats(n, T, P, D));
    const double ent = attention_rows_forward(y.data(), D, att.data(), gates.data(), z.data(), q.data(), D, c.pos.data(),
                                              n, kv_k.data() + D, kv_v.data() + D, 2 * D, T, ep, P, D, c.window);
    EXPECT_GT(ent, 0.0);
    std::vector<float> yr(y.size()), attr((size_t)n * keys);
    attention_rows_forward_ref(yr.data(), attr.data(), q.data(), c.pos.data(), n, kc.data(), vc.data(), ep, P, D, c.window);
    EXPECT_LT(max_abs_diff(y, yr), 1e-5) << "fast vs ref forward";
    for (int r = 0; r < n; r++)
        for (int j = 0; j < T; j++)
            EXPECT_NEAR(att[r * T + j], j < keys ? attr[r * keys + j] : 0.f, 1e-5) << "fast vs ref probabilities";

    // The same rows of the full kernel (one sequence, one head, the group's keys).
    AttnDims d;
    d.B = 1; d.T = T; d.H = 1; d.G = 1; d.D = D; d.npos = P; d.window = c.window;
    std::vector<float> yf((size_t)T * D), attf((size_t)T * T), gf(attf.size()), scratch(attention_scratch_floats(d));
    attention_forward(yf.data(), attf.data(), gf.data(), nullptr, scratch.data(), q_all.data(), kc.data(), vc.data(), ep, d);
    for (int r = 0; r < n; r++) {
        for (int dd = 0; dd < D; dd++) EXPECT_NEAR(y[r * D + dd], yf[c.pos[r] * D + dd], 1e-5) << "row " << r;
        for (int j = 0; j < T; j++) {
            EXPECT_NEAR(att[r * T + j], attf[c.pos[r] * T + j], 1e-6) << "row " << r << " key " << j;
            if (P) EXPECT_NEAR(gates[r * T + j], gf[c.pos[r] * T + j], 1e-6) << "gate row " << r << " key " << j;
        }
    }

    // Backward: fast vs ref, and vs the full kernel with dy zero on the rows not given.
    std::vector<float> dq((size_t)n * D), dk((size_t)T * 2 * D), dv(dk.size()), de(e.size());
    std::vector<float> bscr(attention_rows_backward_scratch_floats(n, T, P, D));
    attention_rows_backward(dq.data(), D, dk.data() + D, dv.data() + D, 2 * D, de.data(), bscr.data(), R.data(), D, q.data(),
                            D, c.pos.data(), n, kv_k.data() + D, kv_v.data() + D, 2 * D, T, att.data(), gates.data(), ep,
                            P, D, c.window);
    for (int j = 0; j < T; j++)
        for (int dd = 0; dd < D; dd++) {
            EXPECT_EQ(dk[j * 2 * D + dd], 0.f) << "the other group's columns are untouched";
            if (j >= keys) EXPECT_EQ(dk[j * 2 * D + D + dd], 0.f) << "keys after the last row get nothing";
        }
    std::vector<float> dkc((size_t)T * D), dvc((size_t)T * D);
    for (int j = 0; j < T; j++)
        for (int dd = 0; dd < D; dd++) dkc[j * D + dd] = dk[j * 2 * D + D + dd], dvc[j * D + dd] = dv[j * 2 * D + D + dd];
    std::vector<float> dqr(dq.size()), dkr(dkc.size()), dvr(dvc.size()), der(de.size());
    attention_rows_backward_ref(dqr.data(), dkr.data(), dvr.data(), der.data(), R.data(), q.data(), c.pos.data(), n,
                                kc.data(), vc.data(), ep, P, D, c.window);
    EXPECT_LT(max_abs_diff(dq, dqr), 1e-4) << "fast vs ref dq";
    EXPECT_LT(max_abs_diff(dkc, dkr), 1e-4) << "fast vs ref dk";
    EXPECT_LT(max_abs_diff(dvc, dvr), 1e-4) << "fast vs ref dv";
    if (P) EXPECT_LT(max_abs_diff(de, der), 1e-4) << "fast vs ref dcope_e";

    std::vector<float> dyf((size_t)T * D, 0.f), dqf((size_t)T * D), dkf((size_t)T * D), dvf((size_t)T * D), def(e.size());
    for (int r = 0; r < n; r++) std::copy_n(R.data() + (size_t)r * D, D, dyf.data() + (size_t)c.pos[r] * D);
    attention_backward(dqf.data(), dkf.data(), dvf.data(), def.data(), scratch.data(), dyf.data(), q_all.data(), kc.data(),
                       vc.data(), attf.data(), gf.data(), ep, d);
    EXPECT_LT(max_abs_diff(dkc, dkf), 1e-5) << "rows vs full dk";
    EXPECT_LT(max_abs_diff(dvc, dvf), 1e-5) << "rows vs full dv";
    if (P) EXPECT_LT(max_abs_diff(de, def), 1e-5) << "rows vs full dcope_e";
    for (int r = 0; r < n; r++)
        for (int dd = 0; dd < D; dd++) EXPECT_NEAR(dq[r * D + dd], dqf[c.pos[r] * D + dd], 1e-5) << "rows vs full dq";

    // Finite differences of L = sum(y * R) through the fast forward.
    auto loss = [&] {
        attention_rows_forward(y.data(), D, att.data(), gates.data(), z.data(), q.data(), D, c.pos.data(), n,
                               kv_k.data() + D, kv_v.data() + D, 2 * D, T, ep, P, D, c.window);
        return dot(y, R);
    };
    auto piece = [&] {  // floor of every position p_ij (and the clamp), from the saved gates
        uint64_t h = 0xcbf29ce484222325ULL;
        for (int r = 0; r < n && P; r++) {
            float p = 0.f;
            for (int j = c.pos[r]; j >= std::max(0, c.pos[r] - c.window + 1); j--) {
                p += gates[r * T + j];
                h = hash_mix(h, p > (float)(P - 1) ? 1000003u : (uint64_t)std::floor(p));
            }
        }
        return h;
    };
    for (auto [name, p, g] : {std::tuple{"q", q.data(), dq.data()}, {"k", kv_k.data() + D, dk.data() + D},
                              {"v", kv_v.data() + D, dv.data() + D}}) {
        // k and v: the group's columns only, i.e. every other D-block of the (T, 2D) buffer
        const size_t len = std::string(name) == "q" ? q.size() : (size_t)T * 2 * D - D;
        auto r = gradcheck(loss, p, g, len, 0, 1e-2f, 1, piece);
        EXPECT_LT(r.max_err, k_tol) << r.describe(std::string(c.name) + " d" + name);
    }
    if (P) {
        auto r = gradcheck(loss, e.data(), de.data(), e.size(), 0, 1e-2f, 1, piece);
        EXPECT_LT(r.max_err, k_tol) << r.describe(std::string(c.name) + " dcope_e");
    }
}
INSTANTIATE_TEST_SUITE_P(
    Variants, AttentionRows,
    ::testing::Values(RowsCase{"plain", 0, 1 << 30, {0, 2, 3, 6, 7}}, RowsCase{"sliding3", 0, 3, {1, 4, 5, 8}},
                      RowsCase{"cope", 8, 1 << 30, {0, 2, 3, 6, 7}}, RowsCase{"cope_clamped_npos3", 3, 1 << 30, {2, 5, 8}},
                      RowsCase{"cope_sliding4_all_rows", 8, 4, {0, 1, 2, 3, 4, 5, 6, 7, 8}},
                      RowsCase{"one_row", 8, 1 << 30, {4}},
                      RowsCase{"blocks_cope_sliding7", 8, 7, {0, 1, 3, 4, 5, 7, 8, 9, 11, 12, 13, 14, 16, 17, 18, 20, 21,
                                                               22, 23, 25, 27, 28, 29, 31, 33, 34, 35, 37}, 40},
                      RowsCase{"blocks_all_rows", 0, 1 << 30, [] { std::vector<int> p(37); for (int i = 0; i < 37; i++) p[i] = i; return p; }(), 37}),
    [](const auto& info) { return std::string(info.param.name); });

// Llama 3's bands (factor 8, low 1, high 4, original 64: wavelengths above 64 slowed 8x, below 16 kept,
// between a blend that is continuous at both ends).
TEST(Rope, Llama3ScalingKeepsHighSlowsLowAndBlendsBetween) {
    const int D = 16;
    std::vector<float> base(D / 2);
    rope_inv_freq(base.data(), D, 10000.f);
    std::vector<float> f = base;
    rope_scale_llama3(f.data(), D / 2, 8.f, 1.f, 4.f, 64);
    int high = 0, low = 0, mid = 0;
    for (int i = 0; i < D / 2; i++) {
        const double wavelen = 2 * 3.141592653589793 / base[i];
        if (wavelen < 16) {
            high++;
            EXPECT_EQ(f[i], base[i]) << i;
        } else if (wavelen > 64) {
            low++;
            EXPECT_FLOAT_EQ(f[i], base[i] / 8) << i;
        } else {
            mid++;
            EXPECT_LT(f[i], base[i]) << i;
            EXPECT_GT(f[i], base[i] / 8) << i;
            const double s = (64 / wavelen - 1) / 3;  // 0 at the low edge, 1 at the high edge
            EXPECT_NEAR(f[i], (1 - s) * base[i] / 8 + s * base[i], 1e-6 * base[i]) << i;
        }
    }
    EXPECT_GT(high, 0);
    EXPECT_GT(low, 0);
    EXPECT_GT(mid, 0);
}

TEST(Rope, RowsBackwardIsTheAdjoint) {
    const int n = 4, D = 8, stride = 12;
    const int pos[n] = {0, 3, 4, 9};
    auto x = randn((size_t)n * stride, 41), R = randn((size_t)n * stride, 42);
    auto g = R;
    std::vector<float> inv_freq(D / 2);
    rope_inv_freq(inv_freq.data(), D, 10000.f);
    rope_backward_rows(g.data(), n, stride, pos, D, inv_freq.data());
    auto y = x;
    auto loss = [&] {
        y = x;
        rope_forward_rows(y.data(), n, stride, pos, D, inv_freq.data());
        return dot(y, R);
    };
    // Columns D..stride are outside the rotated head: identity, so g there stays R.
    auto r = gradcheck(loss, x.data(), g.data(), x.size());
    EXPECT_LT(r.max_err, k_tol) << r.describe("rope rows dx");
}
