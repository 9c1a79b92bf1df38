// Next-token cross-entropy with a padding mask. Size key: N rows (B*T), V vocab.
#pragma once

namespace rl {

// probs (N,V) = softmax(logits) (probs may alias logits); losses (N) = -log p[target], 0 where masked.
// A row is masked when targets[n] < 0. Returns the mean loss over unmasked rows (double: finite-difference
// checks need the precision) and sets *n_valid.
double crossentropy_forward(float* losses, float* probs, const float* logits, const int* targets, int N, int V,
                            int* n_valid);
// dlogits (N,V) = scale * (probs - onehot(target)) for unmasked rows, 0 for masked. Overwrites.
// scale is dloss/n_valid for a mean loss.
void crossentropy_backward(float* dlogits, const float* probs, const int* targets, int N, int V, float scale);

float crossentropy_forward_ref(const float* logits, const int* targets, int N, int V);

}  // namespace rl
