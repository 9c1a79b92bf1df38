// Token and learned positional embeddings. Size key: B batch, T seq, C width, V vocab.
#pragma once

namespace rl {

// out (B*T, C) = tok_emb[tokens] (+ pos_emb[t + pos_offset] when pos_emb is non-null). Overwrites out.
void embedding_forward(float* out, const int* tokens, const float* tok_emb, const float* pos_emb, int B, int T,
                       int C, int pos_offset = 0);
// Accumulates dtok_emb (V,C) and dpos_emb (T,C) (null when absent).
void embedding_backward(float* dtok_emb, float* dpos_emb, const float* dout, const int* tokens, int B, int T, int C);

}  // namespace rl
