#include "layers/attention.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <span>
#include <vector>

#include "tensor/eigen.h"
#include "tensor/gemm.h"
#include "layers/routing.h"
#include "util/threads.h"

namespace rl {

namespace {

// CoPE interpolation (docs/routing-math.md §1.5): p clamped to npos-1, w = p - floor(p).
struct CopePos {
    int f, c;
    float w;
    bool clamped;
};
inline CopePos cope_pos(float p, int npos) {
    CopePos r;
    r.clamped = p > (float)(npos - 1);
    if (r.clamped) p = (float)(npos - 1);
    r.f = (int)std::floor(p);
    r.c = (int)std::ceil(p);
    r.w = p - (float)r.f;
    return r;
}

// Turns one row of raw scores s[j0..i] into probabilities in place; zeros the rest of [0, row_len).
// With CoPE (z non-null, z[n] = q_i . e[n]): g_ij = sigmoid(s_ij/sqrt(D)), p_ij = sum_{t=j..i} g_it,
// logit = (s + interp(z, p)) / sqrt(D). Returns the row's entropy (nats).
float row_softmax(float* row, float* g_row, const float* z, int j0, int i, int row_len, int npos, float scale) {
    const int n = i - j0 + 1;
    Eigen::Map<Eigen::ArrayXf> r(row + j0, n);  // visible keys j0..i
    if (z) {
        // Gates in one vectorised pass, then the suffix sum (sequential) and the interpolation.
        Eigen::Map<Eigen::ArrayXf> g(g_row + j0, n);
        g = 1.f / (1.f + (-scale * r).exp());
        float gsum = 0.f;
        for (int j = i; j >= j0; j--) {
            gsum += g_row[j];
            CopePos cp = cope_pos(gsum, npos);
            const float pl = (1.f - cp.w) * z[cp.f] + cp.w * z[cp.c];
            row[j] = (row[j] + pl) * scale;
        }
    } else {
        r *= scale;
    }
    const float mx = r.maxCoeff();
    r = (r - mx).exp();
    const float sum = r.sum();
    r *= 1.f / sum;
    const float ent = -(r * r.max(1e-30f).log()).sum();  // vectorised log
    for (int j = 0; j < j0; j++) row[j] = 0.f;
    for (int j = i + 1; j < row_len; j++) row[j] = 0.f;
    if (g_row) {
        for (int j = 0; j < j0; j++) g_row[j] = 0.f;
        for (int j = i + 1; j < row_len; j++) g_row[j] = 0.f;
    }
    return ent;
}

// Backward of one row of row_softmax, in place: r[j0..i] holds dL/dP on entry and dL/dS on return
// (the block's other keys kb0..kend-1 get 0). With CoPE (grow non-null: the row's gates, z = q.e):
// r[j] is both ds_ij and dpl_ij; positions are suffix sums of g, so walk j downward recomputing
// p_ij as the forward did, scatter dpl into dz and keep dp_ij; then dg_it is the prefix sum of dp,
// through the sigmoid. dp_row: scratch of the row's length.
void row_softmax_backward(float* r, const float* a, const float* grow, const float* z, float* dz, float* dp_row,
                          int j0, int i, int kb0, int kend, int npos, float scale) {
    Eigen::Map<const Eigen::ArrayXf> av(a + j0, i - j0 + 1);
    Eigen::Map<Eigen::ArrayXf> rv(r + j0, i - j0 + 1);
    const float dot = (av * rv).sum();
    rv = av * (rv - dot) * scale;
    std::fill(r + kb0, r + j0, 0.f);
    std::fill(r + i + 1, r + kend, 0.f);
    if (!grow) return;
    float suffix = 0.f;
    for (int j = i; j >= j0; j--) {
        suffix += grow[j];
        CopePos cp = cope_pos(suffix, npos);
        const float dpl = r[j];
        dz[cp.f] += (1.f - cp.w) * dpl;
        dz[cp.c] += cp.w * dpl;
        dp_row[j] = cp.clamped ? 0.f : dpl * (z[cp.c] - z[cp.f]);
    }
    float prefix = 0.f;  // p_ij = sum_{t=j..i} g_it  =>  dg_it = sum_{j0<=j<=t} dp_ij
    for (int t = j0; t <= i; t++) {
        prefix += dp_row[t];
        r[t] += prefix * grow[t] * (1.f - grow[t]) * scale;
    }
}

inline int first_key(int i, int window) { return std::max(0, i - window + 1); }

}  // namespace

const float* attention_cope_table(const float* cope_e, const AttnDims& d, int h) {
    return d.cope_shared || !cope_e ? cope_e : cope_e + (size_t)h * d.npos * d.D;
}

void rope_inv_freq(float* inv_freq, int D, float theta) {
    for (int i = 0; i < D / 2; i++) inv_freq[i] = std::pow(theta, -2.f * i / D);
}

void rope_scale_llama3(float* inv_freq, int n, float factor, float low_freq_factor, float high_freq_factor,
                       int original_max_positions) {
    const double orig = original_max_positions, low_wavelen = orig / low_freq_factor, high_wavelen = orig / high_freq_factor;
    for (float& f : std::span<float>(inv_freq, n)) {
        const double wavelen = 6.283185307179586 / f;  // 2 pi / f
        if (wavelen > low_wavelen) {
            f = (float)(f / factor);
        } else if (wavelen >= high_wavelen) {  // the medium band: (1 - s) * f / factor + s * f
            const double s = (orig / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
            f = (float)((1 - s) * f / factor + s * f);
        }
    }
}

// The cos and sin (D/2 each) of angle pos * inv_freq[i]; sign -1 gives the adjoint's negative angle.
static void rope_angles(float* cs, float* sn, int half, float pos, const float* inv_freq, float sign) {
    for (int i = 0; i < half; i++) {
        const float ang = pos * inv_freq[i];  // in float32, as LlamaRotaryEmbedding.forward
        cs[i] = std::cos(ang), sn[i] = sign * std::sin(ang);
    }
}

// Rotates the nh heads (stride D) of one row by the angles of rope_angles.
static void rope_rotate(float* p, int nh, int D, const float* cs, const float* sn) {
    const int half = D / 2;
    for (int h = 0; h < nh; h++, p += D)
        for (int i = 0; i < half; i++) {
            const float x1 = p[i], x2 = p[i + half];
            p[i] = x1 * cs[i] - x2 * sn[i];
            p[i + half] = x2 * cs[i] + x1 * sn[i];
        }
}

// Rows r of x (row stride `stride`, nh heads each) at position pos_of(r), rotated by sign * angle.
template <class PosOf>
static void rope_rows(float* x, int n, size_t stride, int nh, int D, const float* inv_freq, float sign, PosOf pos_of) {
    float cs[512], sn[512];  // head_dim <= 1024 (config_validate); no heap on the decode path
    assert(D / 2 <= 512);
    for (int r = 0; r < n; r++) {
        rope_angles(cs, sn, D / 2, (float)pos_of(r), inv_freq, sign);
        rope_rotate(x + r * stride, nh, D, cs, sn);
    }
}

void rope_forward(float* x, int B, int T, int nh, int D, const float* inv_freq, int pos_offset) {
    rope_rows(x, B * T, (size_t)nh * D, nh, D, inv_freq, 1.f, [&](int r) { return r % T + pos_offset; });
}

void rope_backward(float* dx, int B, int T, int nh, int D, const float* inv_freq, int pos_offset) {
    rope_rows(dx, B * T, (size_t)nh * D, nh, D, inv_freq, -1.f, [&](int r) { return r % T + pos_offset; });
}

void rope_forward_rows(float* x, int n, int stride, const int* pos, int D, const float* inv_freq) {
    rope_rows(x, n, stride, 1, D, inv_freq, 1.f, [&](int r) { return pos[r]; });
}

// Per thread: dP / dS (T,T), Z and dZ (T,P), a dp row (T), a private dE ((H|1),P,D) so threads never
// share a write, and K^T or V^T (D,T) and E^T (D,P) so every product is a plain or A^T-times-B GEMM.
static size_t per_thread_floats(const AttnDims& d) {
    size_t he = d.cope_shared ? 1 : d.H;
    return (size_t)d.T * d.T + 2 * (size_t)d.T * d.npos + d.T + he * d.npos * d.D + (size_t)d.D * d.T +
           (size_t)d.D * d.npos;
}

// The backward's CoPE table gradient per (sequence, kv group), summed in that order afterwards: the
// result does not depend on how many threads ran (a resumed run matches the straight one bit for bit
// whatever threads each step got).
static size_t pair_de_floats(const AttnDims& d) {
    return (size_t)(d.cope_shared ? 1 : d.H / d.G) * d.npos * d.D;
}

size_t attention_scratch_floats(const AttnDims& d) {
    return per_thread_floats(d) * thread_count() + (d.npos ? (size_t)d.B * d.G * pair_de_floats(d) : 0);
}

namespace {

// Causal attention in blocks of query rows: rows r0..r1-1 see keys kb0..r1-1 at most, so the score,
// A.V and backward products of a block skip the keys no row of it can see (about 40% of the T x T
// work at T = 80). Sliding windows start each block at the first key of its first row.
constexpr int k_row_block = 16;

// dst (cols, rows) = src^T for a (rows, cols) block of a row-major buffer with row stride ld.
void transpose_to(float* dst, const float* src, int rows, int cols, int ld) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(size_t)c * rows + r] = src[(size_t)r * ld + c];
}

}  // namespace

// Threads over (sequence, kv group): the heads of a group share K and V (one transpose) and, in the
// backward, their dK/dV rows, so no two threads write the same row. B = 1 still uses every thread.
void attention_forward(float* y, float* att, float* gates, float* entropy_mean, float* scratch, const float* q,
                       const float* k, const float* v, const float* cope_e, const AttnDims& d, const float* head_on) {
    const int B = d.B, T = d.T, H = d.H, G = d.G, D = d.D, P = d.npos, HD = H * D, GD = G * D;
    const int group = H / G;
    const float scale = attn_scale(d);
    const bool cope = P > 0;
    const size_t per_thread = per_thread_floats(d);
    double ent_part[k_max_threads] = {};  // per-thread sums, added in thread order
    long rows_part[k_max_threads] = {};
    parallel_for(B * G, true, [&](int bg) {
        const int b = bg / G, g = bg % G, tid = thread_index();
        double& ent_total = ent_part[tid];
        long& ent_rows = rows_part[tid];
        float* base = scratch + per_thread * tid;
        float* zbuf = base + (size_t)T * T;                                     // (T,P)
        float* kt = base + (size_t)T * T + 2 * (size_t)T * P + T + (size_t)(d.cope_shared ? 1 : H) * P * D;  // (D,T)
        float* et = kt + (size_t)D * T;                                         // (D,P)
        const float* K = k + (size_t)b * T * GD + g * D;                        // (T,D) row stride GD
        const float* V = v + (size_t)b * T * GD + g * D;                        // (T,D) row stride GD
        transpose_to(kt, K, T, D, GD);
        for (int h = g * group; h < (g + 1) * group; h++) {
            const float* Q = q + (size_t)b * T * HD + h * D;                    // (T,D) row stride HD
            float* Y = y + (size_t)b * T * HD + h * D;                          // (T,D) row stride HD
            float* A = att + ((size_t)b * H + h) * T * T;                       // (T,T)
            float* grow = cope ? gates + ((size_t)b * H + h) * T * T : nullptr;
            if (cope) {
                transpose_to(et, attention_cope_table(cope_e, d, h), P, D, D);
                gemm(false, false, T, P, D, 1.f, Q, HD, et, P, 0.f, zbuf, P);  // Z = Q E^T (T,P)
            }
            for (int r0 = 0; r0 < T; r0 += k_row_block) {
                const int r1 = std::min(T, r0 + k_row_block), kb0 = first_key(r0, d.window), nk = r1 - kb0;
                gemm(false, false, r1 - r0, nk, D, 1.f, Q + (size_t)r0 * HD, HD, kt + kb0, T, 0.f,
                     A + (size_t)r0 * T + kb0, T);                             // S = Q K^T
                for (int i = r0; i < r1; i++) {
                    const float ent = row_softmax(A + (size_t)i * T, grow ? grow + (size_t)i * T : nullptr,
                                                  cope ? zbuf + (size_t)i * P : nullptr, first_key(i, d.window), i, T,
                                                  P, scale);
                    if (head_on && head_on[((size_t)b * T + i) * H + h] == 0.f) continue;
                    ent_total += ent;
                    ent_rows++;
                }
                gemm(false, false, r1 - r0, D, nk, 1.f, A + (size_t)r0 * T + kb0, T, V + (size_t)kb0 * GD, GD, 0.f,
                     Y + (size_t)r0 * HD, HD);                                 // Y = A V
            }
        }
    });
    double ent_total = 0.0;
    long ent_rows = 0;
    for (int t = 0; t < k_max_threads; t++) ent_total += ent_part[t], ent_rows += rows_part[t];
    if (entropy_mean) *entropy_mean = ent_rows ? (float)(ent_total / ent_rows) : 0.f;
}

void attention_backward(float* dq, float* dk, float* dv, float* dcope_e, float* scratch, const float* dy,
                        const float* q, const float* k, const float* v, const float* att, const float* gates,
                        const float* cope_e, const AttnDims& d) {
    const int B = d.B, T = d.T, H = d.H, G = d.G, D = d.D, P = d.npos, HD = H * D, GD = G * D;
    const int group = H / G;
    const float scale = attn_scale(d);
    const bool cope = P > 0;
    const size_t per_thread = per_thread_floats(d);
    const size_t pair = pair_de_floats(d);
    float* de_pairs = scratch + per_thread * thread_count();  // (B*G, pair) each pair's share of dE
    if (cope) std::fill_n(de_pairs, (size_t)B * G * pair, 0.f);
    parallel_for(B * G, true, [&](int bg) {
        const int b = bg / G, g = bg % G;
        float* base = scratch + per_thread * thread_index();
        float* ds_buf = base;                                  // (T,T)
        float* zbuf = base + (size_t)T * T;                    // (T,P)
        float* dzbuf = zbuf + (size_t)T * P;                   // (T,P)
        float* dp_row = dzbuf + (size_t)T * P;                 // (T)
        float* vt = dp_row + T + (size_t)(d.cope_shared ? 1 : H) * P * D;  // (D,T), after the forward's (he,P,D) slot
        float* de_pair = de_pairs + (size_t)bg * pair;         // (group|1, P, D) this pair's dE
        float* et = vt + (size_t)D * T;                        // (D,P)
        const float* K = k + (size_t)b * T * GD + g * D;       // (T,D) row stride GD
        const float* V = v + (size_t)b * T * GD + g * D;
        float* dK = dk + (size_t)b * T * GD + g * D;
        float* dV = dv + (size_t)b * T * GD + g * D;
        transpose_to(vt, V, T, D, GD);
        for (int h = g * group; h < (g + 1) * group; h++) {
            const float* Q = q + (size_t)b * T * HD + h * D;   // (T,D) row stride HD
            const float* dY = dy + (size_t)b * T * HD + h * D;
            float* dQ = dq + (size_t)b * T * HD + h * D;
            const float* A = att + ((size_t)b * H + h) * T * T;  // (T,T)
            const float* grow_all = cope ? gates + ((size_t)b * H + h) * T * T : nullptr;
            const float* E = attention_cope_table(cope_e, d, h);  // (P,D)
            if (cope) {
                transpose_to(et, E, P, D, D);
                gemm(false, false, T, P, D, 1.f, Q, HD, et, P, 0.f, zbuf, P);  // Z = Q E^T
                std::fill_n(dzbuf, (size_t)T * P, 0.f);
            }
            for (int r0 = 0; r0 < T; r0 += k_row_block) {
                const int r1 = std::min(T, r0 + k_row_block), rb = r1 - r0, kb0 = first_key(r0, d.window),
                          nk = r1 - kb0;
                float* dSb = ds_buf + (size_t)r0 * T + kb0;      // (rb, nk) block, row stride T
                const float* Ab = A + (size_t)r0 * T + kb0;
                gemm(false, false, rb, nk, D, 1.f, dY + (size_t)r0 * HD, HD, vt + kb0, T, 0.f, dSb, T);  // dP = dY V^T
                gemm(true, false, nk, D, rb, 1.f, Ab, T, dY + (size_t)r0 * HD, HD, 1.f, dV + (size_t)kb0 * GD,
                     GD);                                                                               // dV += A^T dY
                for (int i = r0; i < r1; i++)
                    row_softmax_backward(ds_buf + (size_t)i * T, A + (size_t)i * T,
                                         cope ? grow_all + (size_t)i * T : nullptr, zbuf + (size_t)i * P,
                                         dzbuf + (size_t)i * P, dp_row, first_key(i, d.window), i, kb0, r1, P, scale);
                gemm(false, false, rb, D, nk, 1.f, dSb, T, K + (size_t)kb0 * GD, GD, 1.f, dQ + (size_t)r0 * HD,
                     HD);                                                                               // dQ += dS K
                gemm(true, false, nk, D, rb, 1.f, dSb, T, Q + (size_t)r0 * HD, HD, 1.f, dK + (size_t)kb0 * GD,
                     GD);                                                                               // dK += dS^T Q
            }
            if (cope) {
                gemm(false, false, T, D, P, 1.f, dzbuf, P, E, D, 1.f, dQ, HD);  // dQ += dZ E
                float* dE = d.cope_shared ? de_pair : de_pair + (size_t)(h - g * group) * P * D;
                gemm(true, false, P, D, T, 1.f, dzbuf, P, Q, HD, 1.f, dE, D);   // dE += dZ^T Q
            }
        }
    });
    if (cope && dcope_e)  // pairs in (sequence, group) order: the same sums for any thread count (null: frozen)
        for (int bg = 0; bg < B * G; bg++) {
            const int g = bg % G;
            float* into = d.cope_shared ? dcope_e : dcope_e + (size_t)g * group * P * D;
            for (size_t n = 0; n < pair; n++) into[n] += de_pairs[(size_t)bg * pair + n];
        }
}

size_t attention_decode_scratch_floats(const AttnDims& d, int len) { return (size_t)2 * len + d.npos; }

void attention_decode_row(float* y_row, float* scratch, const float* q_row, const float* kc, const float* vc,
                          int len, const float* cope_e, const AttnDims& d, const float* head_on, float* entropy_mean) {
    const int H = d.H, G = d.G, D = d.D, P = d.npos;
    const int group = H / G;
    const float scale = attn_scale(d);
    const int i = len - 1, j0 = first_key(i, d.window);
    float* row = scratch;            // (len)
    float* grow = scratch + len;     // (len)
    float* z = grow + len;           // (P)
    double ent_total = 0.0;
    int ent_rows = 0;
    for (int h = 0; h < H; h++) {
        const int g = h / group;
        Eigen::Map<const Eigen::RowVectorXf> qh(q_row + h * D, D);
        CMapRS K(kc + g * D, len, D, Strided(G * D));
        CMapRS V(vc + g * D, len, D, Strided(G * D));
        Eigen::Map<Eigen::RowVectorXf> s(row, len);
        s.noalias() = qh * K.transpose();
        if (P > 0) Eigen::Map<Eigen::RowVectorXf>(z, P).noalias() = qh * CMapR(attention_cope_table(cope_e, d, h), P, D).transpose();
        const float ent = row_softmax(row, P > 0 ? grow : nullptr, P > 0 ? z : nullptr, j0, i, len, P, scale);
        if (!head_on || head_on[h] != 0.f) ent_total += ent, ent_rows++;
        Eigen::Map<Eigen::RowVectorXf>(y_row + h * D, D).noalias() = s * V;
    }
    if (entropy_mean) *entropy_mean = ent_rows ? (float)(ent_total / ent_rows) : 0.f;
}

size_t attention_rows_scratch_floats(int n, int len, int npos) {
    return (size_t)n * len * 2 + (size_t)n * std::max(npos, 1);
}

double attention_rows(float* y, int y_stride, float* scratch, const float* q, int q_stride, const int* pos, int n,
                      const float* k, const float* v, int kv_stride, int len, const float* cope_e, int npos, int D,
                      int window, const float* scale_out) {
    if (n == 0) return 0.0;
    const float scale = 1.f / std::sqrt((float)D);
    const int keys = pos[n - 1] + 1;  // no row looks past the last active query
    assert(keys <= len && "a query row cannot see keys that are not there yet");
    MapR S(scratch, n, keys);                                   // (n, keys)
    float* grow = scratch + (size_t)n * keys;                   // (keys) gates of one row
    float* zbuf = grow + (size_t)n * keys;                      // (n, P)
    CMapRS Q(q, n, D, Strided(q_stride));
    CMapRS K(k, keys, D, Strided(kv_stride));
    CMapRS V(v, keys, D, Strided(kv_stride));
    S.noalias() = Q * K.transpose();
    if (npos > 0) MapR(zbuf, n, npos).noalias() = Q * CMapR(cope_e, npos, D).transpose();
    double ent = 0.0;
    for (int r = 0; r < n; r++)
        ent += row_softmax(scratch + (size_t)r * keys, npos > 0 ? grow : nullptr,
                           npos > 0 ? zbuf + (size_t)r * npos : nullptr, first_key(pos[r], window), pos[r], keys, npos,
                           scale);
    MapRS Y(y, n, D, Strided(y_stride));
    Y.noalias() = S * V;
    for (int r = 0; r < n; r++) Y.row(r) *= scale_out[r];
    return ent;
}

void attention_forward_ref(float* y, float* att, const float* q, const float* k, const float* v,
                           const float* cope_e, const AttnDims& d) {
    const int B = d.B, T = d.T, H = d.H, G = d.G, D = d.D, P = d.npos;
    const double scale = d.scale > 0.f ? (double)d.scale : 1.0 / std::sqrt((double)D);
    std::vector<double> logit(T), z(P > 0 ? P : 1);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const int g = h / (H / G);
            const float* e = P > 0 ? (d.cope_shared ? cope_e : cope_e + (size_t)h * P * D) : nullptr;
            for (int i = 0; i < T; i++) {
                const float* qi = q + ((size_t)b * T + i) * H * D + h * D;
                auto dotk = [&](int j) {
                    const float* kj = k + ((size_t)b * T + j) * G * D + g * D;
                    double s = 0;
                    for (int c = 0; c < D; c++) s += (double)qi[c] * kj[c];
                    return s;
                };
                for (int n = 0; n < P; n++) {
                    z[n] = 0;
                    for (int c = 0; c < D; c++) z[n] += (double)qi[c] * e[(size_t)n * D + c];
                }
                const int j0 = std::max(0, i - d.window + 1);
                double mx = -1e300;
                for (int j = j0; j <= i; j++) {
                    double s = dotk(j), pl = 0;
                    if (P > 0) {
                        double p = 0;  // p_ij = sum_{t=j..i} sigmoid(s_it / sqrt(D))
                        for (int t = j; t <= i; t++) p += 1.0 / (1.0 + std::exp(-dotk(t) * scale));
                        p = std::min(p, (double)(P - 1));
                        double f = std::floor(p), w = p - f;
                        pl = (1 - w) * z[(int)f] + w * z[(int)std::ceil(p)];
                    }
                    logit[j] = (s + pl) * scale;
                    mx = std::max(mx, logit[j]);
                }
                double sum = 0;
                for (int j = j0; j <= i; j++) sum += std::exp(logit[j] - mx);
                float* arow = att + (((size_t)b * H + h) * T + i) * T;
                for (int j = 0; j < T; j++) arow[j] = (j >= j0 && j <= i) ? (float)(std::exp(logit[j] - mx) / sum) : 0.f;
                float* yi = y + ((size_t)b * T + i) * H * D + h * D;
                for (int c = 0; c < D; c++) {
                    double acc = 0;
                    for (int j = j0; j <= i; j++) acc += (double)arow[j] * v[((size_t)b * T + j) * G * D + g * D + c];
                    yi[c] = (float)acc;
                }
            }
        }
}


// ---- the skip path in training: rows with their probabilities saved, and their backward ----

size_t attention_rows_forward_scratch_floats(int n, int len, int npos, int D) {
    return (size_t)n * npos + (size_t)D * len + (size_t)D * npos;
}

namespace {

// The keys [kb0, kend) a block of given rows r0..r1-1 computes: from the first key its first row sees
// to the last row's position, widened to multiples of k_row_block within len, so the products come
// in few shapes (the GEMM library generates a kernel per shape; the widened keys are masked anyway).
struct RowBlock {
    int r1, kb0, kend;
};
RowBlock row_block(const int* pos, int n, int r0, int len, int window) {
    RowBlock b;
    b.r1 = std::min(n, r0 + k_row_block);
    b.kb0 = first_key(pos[r0], window) / k_row_block * k_row_block;
    b.kend = std::min(len, (pos[b.r1 - 1] + k_row_block) / k_row_block * k_row_block);
    return b;
}

}  // namespace

// Causal in blocks of k_row_block given rows, as attention_forward: rows r0..r1-1 (ascending
// positions) see keys first_key(pos[r0])..pos[r1-1] at most, so a block's score and A.V products
// skip the keys none of its rows can see. K^T and E^T are made once per call.
double attention_rows_forward(float* y, int y_stride, float* att, float* gates, float* scratch, const float* q,
                              int q_stride, const int* pos, int n, const float* k, const float* v, int kv_stride,
                              int len, const float* cope_e, int npos, int D, int window) {
    if (n == 0) return 0.0;
    assert(pos[n - 1] < len && "a query row cannot see keys that are not there yet");
    const float scale = 1.f / std::sqrt((float)D);
    const int P = npos;
    float* zbuf = scratch;                       // (n, P)
    float* kt = zbuf + (size_t)n * P;            // (D, len)
    float* et = kt + (size_t)D * len;            // (D, P)
    transpose_to(kt, k, len, D, kv_stride);
    if (P > 0) {
        transpose_to(et, cope_e, P, D, D);
        gemm(false, false, n, P, D, 1.f, q, q_stride, et, P, 0.f, zbuf, P);  // Z = Q E^T
    }
    double ent = 0.0;
    for (int r0 = 0, next = 0; r0 < n; r0 = next) {
        const RowBlock rb = row_block(pos, n, r0, len, window);
        next = rb.r1;
        const int nk = rb.kend - rb.kb0;
        float* Ab = att + (size_t)r0 * len + rb.kb0;  // (rows, nk), row stride len
        gemm(false, false, rb.r1 - r0, nk, D, 1.f, q + (size_t)r0 * q_stride, q_stride, kt + rb.kb0, len, 0.f, Ab,
             len);  // S = Q K^T
        for (int r = r0; r < rb.r1; r++)
            ent += row_softmax(att + (size_t)r * len, P > 0 ? gates + (size_t)r * len : nullptr,
                               P > 0 ? zbuf + (size_t)r * P : nullptr, first_key(pos[r], window), pos[r], len, P, scale);
        gemm(false, false, rb.r1 - r0, D, nk, 1.f, Ab, len, v + (size_t)rb.kb0 * kv_stride, kv_stride, 0.f,
             y + (size_t)r0 * y_stride, y_stride);  // Y = A V
    }
    return ent;
}

size_t attention_rows_backward_scratch_floats(int n, int len, int npos, int D) {
    return (size_t)n * len + 2 * (size_t)n * npos + len + (size_t)D * len + (size_t)D * npos;
}

void attention_rows_backward(float* dq, int dq_stride, float* dk, float* dv, int dkv_stride, float* dcope_e,
                             float* scratch, const float* dy, int dy_stride, const float* q, int q_stride,
                             const int* pos, int n, const float* k, const float* v, int kv_stride, int len,
                             const float* att, const float* gates, const float* cope_e, int npos, int D, int window) {
    if (n == 0) return;
    const float scale = 1.f / std::sqrt((float)D);
    const int P = npos;
    const bool cope = P > 0;
    float* ds_buf = scratch;                          // (n, len)
    float* zbuf = ds_buf + (size_t)n * len;           // (n, P)
    float* dzbuf = zbuf + (size_t)n * P;              // (n, P)
    float* dp_row = dzbuf + (size_t)n * P;            // (len)
    float* vt = dp_row + len;                         // (D, len)
    float* et = vt + (size_t)D * len;                 // (D, P)
    transpose_to(vt, v, len, D, kv_stride);
    if (cope) {
        transpose_to(et, cope_e, P, D, D);
        gemm(false, false, n, P, D, 1.f, q, q_stride, et, P, 0.f, zbuf, P);  // Z = Q E^T
        std::fill_n(dzbuf, (size_t)n * P, 0.f);
    }
    for (int r0 = 0, next = 0; r0 < n; r0 = next) {
        const RowBlock rb = row_block(pos, n, r0, len, window);
        next = rb.r1;
        const int rows = rb.r1 - r0, kb0 = rb.kb0, kend = rb.kend, nk = kend - kb0;
        float* dSb = ds_buf + (size_t)r0 * len + kb0;  // (rows, nk) block, row stride len
        const float* Ab = att + (size_t)r0 * len + kb0;
        const float* dYb = dy + (size_t)r0 * dy_stride;
        gemm(false, false, rows, nk, D, 1.f, dYb, dy_stride, vt + kb0, len, 0.f, dSb, len);  // dP = dY V^T
        gemm(true, false, nk, D, rows, 1.f, Ab, len, dYb, dy_stride, 1.f, dv + (size_t)kb0 * dkv_stride,
             dkv_stride);                                                                  // dV += A^T dY
        for (int r = r0; r < rb.r1; r++)
            row_softmax_backward(ds_buf + (size_t)r * len, att + (size_t)r * len,
                                 cope ? gates + (size_t)r * len : nullptr, zbuf + (size_t)r * P, dzbuf + (size_t)r * P,
                                 dp_row, first_key(pos[r], window), pos[r], kb0, kend, P, scale);
        gemm(false, false, rows, D, nk, 1.f, dSb, len, k + (size_t)kb0 * kv_stride, kv_stride, 1.f,
             dq + (size_t)r0 * dq_stride, dq_stride);                                     // dQ += dS K
        gemm(true, false, nk, D, rows, 1.f, dSb, len, q + (size_t)r0 * q_stride, q_stride, 1.f,
             dk + (size_t)kb0 * dkv_stride, dkv_stride);                                  // dK += dS^T Q
    }
    if (cope) {
        gemm(false, false, n, D, P, 1.f, dzbuf, P, cope_e, D, 1.f, dq, dq_stride);  // dQ += dZ E
        gemm(true, false, P, D, n, 1.f, dzbuf, P, q, q_stride, 1.f, dcope_e, D);    // dE += dZ^T Q
    }
}

void rope_backward_rows(float* dx, int n, int stride, const int* pos, int D, const float* inv_freq) {
    rope_rows(dx, n, stride, 1, D, inv_freq, -1.f, [&](int r) { return pos[r]; });
}

namespace {

// One row of the references: q (D) at position i against keys j0..i. Fills the logits' pieces.
struct RefRow {
    std::vector<double> s, g, p, pl, a;  // indexed by key j (0..i)
    std::vector<double> z;                // (P)
};
RefRow ref_row(const float* q, int i, const float* k, const float* cope_e, int P, int D, int window) {
    const double scale = 1.0 / std::sqrt((double)D);
    const int j0 = std::max(0, i - window + 1);
    RefRow R;
    R.s.assign(i + 1, 0), R.g.assign(i + 1, 0), R.p.assign(i + 1, 0), R.pl.assign(i + 1, 0), R.a.assign(i + 1, 0);
    R.z.assign(P, 0);
    for (int j = j0; j <= i; j++)
        for (int c = 0; c < D; c++) R.s[j] += (double)q[c] * k[(size_t)j * D + c];
    for (int n = 0; n < P; n++)
        for (int c = 0; c < D; c++) R.z[n] += (double)q[c] * cope_e[(size_t)n * D + c];
    double mx = -1e300;
    std::vector<double> logit(i + 1, 0);
    for (int j = j0; j <= i; j++) {
        if (P > 0) {
            R.g[j] = 1.0 / (1.0 + std::exp(-R.s[j] * scale));
            double p = 0;
            for (int t = j; t <= i; t++) p += 1.0 / (1.0 + std::exp(-R.s[t] * scale));
            R.p[j] = p;
            const double pc = std::min(p, (double)(P - 1));
            const double f = std::floor(pc), w = pc - f;
            R.pl[j] = (1 - w) * R.z[(int)f] + w * R.z[(int)std::ceil(pc)];
        }
        logit[j] = (R.s[j] + R.pl[j]) * scale;
        mx = std::max(mx, logit[j]);
    }
    double sum = 0;
    for (int j = j0; j <= i; j++) sum += std::exp(logit[j] - mx);
    for (int j = j0; j <= i; j++) R.a[j] = std::exp(logit[j] - mx) / sum;
    return R;
}

}  // namespace

void attention_rows_forward_ref(float* y, float* att, const float* q, const int* pos, int n, const float* k,
                                const float* v, const float* cope_e, int npos, int D, int window) {
    if (n == 0) return;
    const int keys = pos[n - 1] + 1;
    for (int r = 0; r < n; r++) {
        const int i = pos[r];
        const RefRow R = ref_row(q + (size_t)r * D, i, k, cope_e, npos, D, window);
        if (att)
            for (int j = 0; j < keys; j++) att[(size_t)r * keys + j] = j <= i ? (float)R.a[j] : 0.f;
        for (int c = 0; c < D; c++) {
            double acc = 0;
            for (int j = 0; j <= i; j++) acc += R.a[j] * v[(size_t)j * D + c];
            y[(size_t)r * D + c] = (float)acc;
        }
    }
}

void attention_rows_backward_ref(float* dq, float* dk, float* dv, float* dcope_e, const float* dy, const float* q,
                                 const int* pos, int n, const float* k, const float* v, const float* cope_e, int npos,
                                 int D, int window) {
    const int P = npos;
    const double scale = 1.0 / std::sqrt((double)D);
    for (int r = 0; r < n; r++) {
        const int i = pos[r], j0 = std::max(0, i - window + 1);
        const float* qr = q + (size_t)r * D;
        const float* dyr = dy + (size_t)r * D;
        const RefRow R = ref_row(qr, i, k, cope_e, P, D, window);
        // y = sum_j a_j v_j: da_j = dy . v_j, dv_j += a_j dy; softmax: dl_j = a_j (da_j - sum a da).
        std::vector<double> dl(i + 1, 0), ds(i + 1, 0), dz(P, 0);
        double ada = 0;
        for (int j = j0; j <= i; j++) {
            double da = 0;
            for (int c = 0; c < D; c++) {
                da += (double)dyr[c] * v[(size_t)j * D + c];
                dv[(size_t)j * D + c] += (float)(R.a[j] * dyr[c]);
            }
            dl[j] = da;
            ada += R.a[j] * da;
        }
        for (int j = j0; j <= i; j++) dl[j] = R.a[j] * (dl[j] - ada);
        // logit_j = (s_j + pl_j) * scale, pl_j = interp(z, p_j), p_j = sum_{t=j..i} sigmoid(s_t * scale).
        for (int j = j0; j <= i; j++) {
            ds[j] += dl[j] * scale;
            if (P == 0) continue;
            const double dpl = dl[j] * scale;
            const bool clamped = R.p[j] > (double)(P - 1);
            const double pc = std::min(R.p[j], (double)(P - 1));
            const int f = (int)std::floor(pc), cc = (int)std::ceil(pc);
            const double w = pc - f;
            dz[f] += (1 - w) * dpl;
            dz[cc] += w * dpl;
            if (clamped) continue;
            const double dp = dpl * (R.z[cc] - R.z[f]);
            for (int t = j; t <= i; t++) ds[t] += dp * R.g[t] * (1 - R.g[t]) * scale;
        }
        for (int c = 0; c < D; c++) {
            double acc = 0;
            for (int j = j0; j <= i; j++) acc += ds[j] * k[(size_t)j * D + c];
            for (int m = 0; m < P; m++) acc += dz[m] * cope_e[(size_t)m * D + c];
            dq[(size_t)r * D + c] += (float)acc;
        }
        for (int j = j0; j <= i; j++)
            for (int c = 0; c < D; c++) dk[(size_t)j * D + c] += (float)(ds[j] * qr[c]);
        for (int m = 0; m < P; m++)
            for (int c = 0; c < D; c++) dcope_e[(size_t)m * D + c] += (float)(dz[m] * qr[c]);
    }
}

}  // namespace rl
