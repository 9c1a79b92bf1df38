#include "layers/embedding.h"

#include <cstddef>

namespace rl {

void embedding_forward(float* out, const int* tokens, const float* tok_emb, const float* pos_emb, int B, int T,
                       int C, int pos_offset) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float* o = out + ((size_t)b * T + t) * C;
            const float* e = tok_emb + (size_t)tokens[b * T + t] * C;
            const float* p = pos_emb ? pos_emb + (size_t)(t + pos_offset) * C : nullptr;
            for (int c = 0; c < C; c++) o[c] = e[c] + (p ? p[c] : 0.f);
        }
}

void embedding_backward(float* dtok_emb, float* dpos_emb, const float* dout, const int* tokens, int B, int T, int C) {
    if (!dtok_emb && !dpos_emb) return;  // both frozen (router-only tuning)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float* d = dout + ((size_t)b * T + t) * C;
            if (dtok_emb) {
                float* de = dtok_emb + (size_t)tokens[b * T + t] * C;
                for (int c = 0; c < C; c++) de[c] += d[c];
            }
            if (dpos_emb)
                for (int c = 0; c < C; c++) dpos_emb[(size_t)t * C + c] += d[c];
        }
}

}  // namespace rl
