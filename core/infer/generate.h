// Sampling and KV-cache generation for batch 1.
#pragma once
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "model/model.h"
#include "train/tokenizer.h"

namespace rl {

struct SampleOptions {
    float temperature = 1.f;  // 0 = greedy (argmax, lowest index on ties)
    int top_k = 0;            // 0 = off
    float top_p = 1.f;        // nucleus; 1 = off
    unsigned long long seed = 1;
    int min_new = 0;          // the end token cannot be picked before this many new tokens (HF's min_new_tokens)
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

// One generation from a text prompt, and the bookkeeping every caller reports (the CLI prints
// new_text, the window shows text and probes window_ids).
struct GenerationReport {
    std::string error;             // why nothing was generated (config_generation_blocker), else empty
    std::vector<int> prompt_ids;   // (P) the encoded prompt; eos alone when it encodes to nothing
    std::vector<int> new_ids;      // (N) generated tokens, with the eos that ended them
    std::string new_text;          // decode(new_ids)
    std::string text;              // decode(prompt_ids + new_ids)
    std::vector<int> window_ids;   // (min(P+N, seq_len)) the last seq_len tokens: what a probe of the text sees
    int window_prompt_tokens = 0;  // how many of window_ids are the prompt's
    bool ended_at_eos = false;     // the end token ended it (before max_new)
    // The end token, which ended it, was the very first pick: nothing was generated. Words for it.
    std::string note() const;
};
// Up to max_new tokens after prompt, stopping at eos, with the context window the model uses at
// attention entropy attn_entropy (the adaptive window's input).
GenerationReport generate_report(const Model& m, const Tokenizer& tok, const std::string& prompt, int max_new,
                                 const SampleOptions& o, float attn_entropy);

}  // namespace rl
