#include "infer/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace rl {

int sample_token(const float* logits, int V, const SampleOptions& o, std::mt19937_64& rng) {
    if (o.temperature <= 0.f) return (int)(std::max_element(logits, logits + V) - logits);
    std::vector<int> idx(V);
    std::iota(idx.begin(), idx.end(), 0);
    // Stable sort keeps lower indices first on ties: deterministic for a seed.
    std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return logits[a] > logits[b]; });
    int keep = (o.top_k > 0 && o.top_k < V) ? o.top_k : V;
    std::vector<double> p(keep);
    const double mx = logits[idx[0]] / o.temperature;
    double sum = 0;
    for (int i = 0; i < keep; i++) sum += p[i] = std::exp(logits[idx[i]] / o.temperature - mx);
    if (o.top_p < 1.f) {
        double cum = 0;
        int n = 0;
        while (n < keep && cum < o.top_p * sum) cum += p[n++];
        keep = std::max(n, 1);
        sum = std::accumulate(p.begin(), p.begin() + keep, 0.0);
    }
    const double u = ((rng() >> 11) * (1.0 / 9007199254740992.0)) * sum;
    double acc = 0;
    for (int i = 0; i < keep; i++) {
        acc += p[i];
        if (u < acc) return idx[i];
    }
    return idx[keep - 1];
}

std::vector<int> generate(const Model& m, const std::vector<int>& prompt, int max_new, const SampleOptions& o,
                          int eos_id, int window, const std::function<void(int)>& on_token, bool skip) {
    const ModelConfig& c = m.cfg;
    Activations a;
    activations_create(a, c, 1, 1);
    KVCache kv;
    kvcache_create(kv, c, c.seq_len);
    std::mt19937_64 rng(o.seed);
    ForwardOptions o2;
    o2.window = window;
    o2.skip = skip;  // same result either way; skipping is faster
    std::vector<int> context = prompt;
    if (context.empty()) context.push_back(eos_id >= 0 ? eos_id : 0);
    if ((int)context.size() > c.seq_len) context.erase(context.begin(), context.end() - c.seq_len / 2);
    for (int t : context) model_decode_step(m, a, kv, t, o2);
    std::vector<int> out;
    std::vector<float> masked;  // (V) the logits with the end token ruled out, while min_new is not reached
    for (int i = 0; i < max_new; i++) {
        const float* logits = a.logits;
        if (i < o.min_new && eos_id >= 0 && eos_id < c.vocab_size) {  // as HF's MinNewTokensLogitsProcessor
            masked.assign(a.logits, a.logits + c.vocab_size);
            masked[eos_id] = -INFINITY;
            logits = masked.data();
        }
        const int next = sample_token(logits, c.vocab_size, o, rng);
        out.push_back(next);
        if (on_token) on_token(next);
        if (next == eos_id) break;
        context.push_back(next);
        if (kv.len == kv.capacity) {  // slide: rebuild the cache from the newest half
            context.erase(context.begin(), context.end() - c.seq_len / 2);
            kv.len = 0;
            for (size_t k = 0; k + 1 < context.size(); k++) model_decode_step(m, a, kv, context[k], o2);
        }
        model_decode_step(m, a, kv, next, o2);
    }
    return out;
}

std::string GenerationReport::note() const {
    if (!ended_at_eos) return {};
    if (new_ids.size() == 1)
        return "the end-of-text token came first: the model ended the text at once. Ask for a minimum length (min tokens) "
               "to make it go on, or train longer";
    return "stopped at the end-of-text token after " + std::to_string(new_ids.size() - 1) + " tokens";
}

GenerationReport generate_report(const Model& m, const Tokenizer& tok, const std::string& prompt, int max_new,
                                 const SampleOptions& o, float attn_entropy) {
    GenerationReport r;
    const ModelConfig& c = m.cfg;
    r.error = config_generation_blocker(c);
    if (!r.error.empty()) return r;
    r.prompt_ids = tok.encode(prompt);
    if (r.prompt_ids.empty()) r.prompt_ids.push_back(std::max(tok.eos_id(), 0));  // what generate() would start from anyway
    r.new_ids = generate(m, r.prompt_ids, max_new, o, tok.eos_id(), model_window(c, c.seq_len, attn_entropy));
    r.new_text = tok.decode(r.new_ids);
    r.ended_at_eos = !r.new_ids.empty() && r.new_ids.back() == tok.eos_id();
    std::vector<int> all = r.prompt_ids;  // (P+N)
    all.insert(all.end(), r.new_ids.begin(), r.new_ids.end());
    r.text = tok.decode(all);
    const int keep = std::min((int)all.size(), c.seq_len);
    r.window_ids.assign(all.end() - keep, all.end());
    r.window_prompt_tokens = std::max(0, (int)r.prompt_ids.size() - ((int)all.size() - keep));
    return r;
}

}  // namespace rl
