// Sampling and KV-cache generation for batch 1.
#pragma once
#include <functional>
#include <random>
#include <vector>

#include "model/model.h"

namespace rl {

struct SampleOptions {
    float temperature = 1.f;  // 0 = greedy (argmax, lowest index on ties)
    int top_k = 0;            // 0 = off
    float top_p = 1.f;        // nucleus; 1 = off
    unsigned long long seed = 1;
};

// Picks a token from logits (V) after temperature, top-k and top-p (in that order, as HF does).
int sample_token(const float* logits, int V, const SampleOptions& o, std::mt19937_64& rng);

// Feeds the prompt through the KV cache, then samples up to max_new tokens, stopping after eos_id
// (pass -1 to never stop). When the context reaches seq_len the cache is rebuilt from the last
// seq_len/2 tokens (a sliding context, as nanoGPT crops). Returns the new tokens only.
// on_token (may be empty) sees each new token as it is produced. skip: compute only active heads
// (identical output, less work; see model_decode_step).
std::vector<int> generate(const Model& m, const std::vector<int>& prompt, int max_new, const SampleOptions& o,
                          int eos_id, int window, const std::function<void(int)>& on_token = {}, bool skip = true);

}  // namespace rl
