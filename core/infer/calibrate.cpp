#include "infer/calibrate.h"
#include "infer/eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <string>

#include "layers/moe_router.h"
#include "layers/routing.h"
#include "train/step_stats.h"
#include "util/threads.h"

namespace rl {

void model_set_expert_bias(Model& m, bool on) {
    std::map<std::string, std::vector<float>> kept;  // the other buffers' values, by name
    for (const TensorSpec& s : m.buffer_layout.specs())
        kept[s.name].assign(m.buffers.data.begin() + s.offset, m.buffers.data.begin() + s.offset + s.numel);
    m.cfg.moe.expert_bias = on;
    for (LayerWeights& lw : m.w.layers) lw.moe.bias = nullptr, lw.head_bias = nullptr;
    m.buffers = Arena{};
    m.buffer_layout = model_buffer_layout(m.cfg);
    m.buffers.allocate(m.buffer_layout);
    std::fill(m.buffers.data.begin(), m.buffers.data.end(), 0.f);
    for (int l = 0; l < m.cfg.n_layers; l++) {
        LayerWeights& lw = m.w.layers[l];
        const std::string p = "layers." + std::to_string(l) + ".";
        lw.moe.bias = m.buffers.ptr(m.buffer_layout, p + "moe.expert_bias");
        lw.head_bias = m.buffers.ptr(m.buffer_layout, p + "attn.router.head_bias");
    }
    for (const TensorSpec& s : m.buffer_layout.specs())
        if (auto it = kept.find(s.name); it != kept.end() && it->second.size() == s.numel)
            std::copy(it->second.begin(), it->second.end(), m.buffers.data.begin() + s.offset);
}

namespace {

// What one pass over the text with the biases held still gives, per sparse layer.
struct PassCounts {
    std::vector<std::vector<float>> counts;  // (L)(E) choices per expert
    std::vector<double> cv;                  // (L)
    std::vector<std::vector<float>> keys;    // (L)(N_text, E) each token's selection key without the bias
    double perplexity = 0;
    double seconds = 0;
};

PassCounts measure_pass(const Model& m, Activations& a, const std::vector<int>& ids, int context,
                        const std::atomic<bool>* cancel, bool& cancelled) {
    const ModelConfig& c = m.cfg;
    const int E = c.moe.n_experts;
    PassCounts pc;
    pc.counts.assign(c.n_layers, std::vector<float>(E, 0.f));
    pc.cv.assign(c.n_layers, 0.0);
    pc.keys.assign(c.n_layers, {});
    for (int l = 0; l < c.n_layers; l++)
        if (m.w.layers[l].moe.router) pc.keys[l].reserve(ids.size() * E);
    const auto t0 = std::chrono::steady_clock::now();
    const EvalWindows w = eval_windows(m, a, ids, context, cancel, [&](int T) {
        for (int l = 0; l < c.n_layers; l++) {
            if (!m.w.layers[l].moe.router) continue;
            const MoeDims d = model_moe_dims(c, T, false, 0, l);  // no bias: the key the fit adds its own to
            for (int e = 0; e < E; e++) pc.counts[l][e] += a.layers[l].mst.counts[e];
            const MoeSaved& sv = a.layers[l].ms;
            std::vector<float>& k = pc.keys[l];
            k.resize(k.size() + (size_t)T * E);
            float* dst = k.data() + k.size() - (size_t)T * E;
            for (int t = 0; t < T; t++) moe_selection_key(dst + (size_t)t * E, sv.logits + (size_t)t * E, sv.probs + (size_t)t * E, d);
        }
    });
    if (w.cancelled) cancelled = true;
    for (int l = 0; l < c.n_layers; l++) pc.cv[l] = stats_cv(pc.counts[l].data(), E);
    pc.perplexity = w.predicted ? std::exp(w.nll_sum / (double)w.predicted) : 0;
    pc.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return pc;
}

// Choices per expert of the tokens [t0, t1) of keys (N, E) under biases b: each token's K best key + b.
void fit_counts(const std::vector<float>& keys, int t0, int t1, int E, int K, const std::vector<float>& b,
                std::vector<float>& counts, std::vector<std::pair<float, int>>& row) {
    std::fill(counts.begin(), counts.end(), 0.f);
    for (int t = t0; t < t1; t++) {
        const float* k = keys.data() + (size_t)t * E;
        for (int e = 0; e < E; e++) row[e] = {k[e] + b[e], -e};  // ties to the lower expert, as the forward
        std::nth_element(row.begin(), row.begin() + (K - 1), row.end(), std::greater<>());
        for (int j = 0; j < K; j++) counts[-row[j].second] += 1;
    }
}

// The aux-loss-free rule on one layer's stored keys: batch after batch of `batch` tokens, b_e += u
// sign(mean - load_e), as training would update it, epoch after epoch, without running the model;
// an epoch whose whole-text CV is no better than the best halves u. Returns the best biases.
std::vector<float> fit_layer_bias(const std::vector<float>& keys, int E, int K, int batch, std::vector<float> b, double u) {
    if (!(u > 0)) return b;  // every token's K-th and (K+1)-th keys tie: no step to take
    const int N = (int)(keys.size() / E);
    std::vector<float> counts(E), best_b = b;
    std::vector<std::pair<float, int>> row(E);
    fit_counts(keys, 0, N, E, K, b, counts, row);
    double best = stats_cv(counts.data(), E);
    const double u_min = u / 256;
    for (int epoch = 0; epoch < 60 && u >= u_min; epoch++) {
        for (int t = 0; t < N; t += batch) {
            fit_counts(keys, t, std::min(N, t + batch), E, K, b, counts, row);
            route_bias_update(b.data(), counts.data(), E, (float)u);
        }
        fit_counts(keys, 0, N, E, K, b, counts, row);
        const double cv = stats_cv(counts.data(), E);
        if (cv < best) {
            best = cv, best_b = b;
        } else {
            b = best_b;
            u *= 0.5;
        }
    }
    return best_b;
}

// Mean over tokens of key_K - key_{K+1} (the margin a bias must overcome), a layer's first step.
double key_margin(const std::vector<float>& keys, int E, int K) {
    if (K >= E || keys.empty()) return 0;
    std::vector<float> row(E);
    double sum = 0;
    const size_t N = keys.size() / E;
    for (size_t t = 0; t < N; t++) {
        std::copy(keys.begin() + t * E, keys.begin() + (t + 1) * E, row.begin());
        std::nth_element(row.begin(), row.begin() + K, row.end(), std::greater<>());
        const float kth = *std::min_element(row.begin(), row.begin() + K);
        if (std::isfinite(kth) && std::isfinite(row[K])) sum += kth - row[K];
    }
    return sum / (double)N;
}

CalibrationPass pass_summary(const Model& m, const PassCounts& pc, int pass) {
    CalibrationPass p;
    p.pass = pass;
    p.perplexity = pc.perplexity;
    p.seconds = pc.seconds;
    for (int l = 0; l < m.cfg.n_layers; l++) {
        if (!m.w.layers[l].moe.router) continue;
        p.layer_cv.push_back(pc.cv[l]);
        p.load_cv += pc.cv[l];
        if (const float* b = m.w.layers[l].moe.bias)
            for (int e = 0; e < m.cfg.moe.n_experts; e++) p.max_abs_bias = std::max(p.max_abs_bias, (double)std::fabs(b[e]));
    }
    if (!p.layer_cv.empty()) p.load_cv /= (double)p.layer_cv.size();
    return p;
}

}  // namespace

Result<CalibrationReport> calibrate_expert_bias(Model& m, const std::vector<int>& ids, const CalibrationOptions& o) {
    const MoeConfig& mc = m.cfg.moe;
    if (mc.kind != FfnRouting::moe || mc.routing != MoeRouting::topk)
        return Status::error("bias calibration needs a top-k MoE (token-choice routing); this model has none");
    if (mc.group_topk > 0) return Status::error("bias calibration of group-limited routing is not supported yet");
    if (mc.top_k >= mc.n_experts) return Status::error("every expert is chosen (top-k = experts): there is no load to balance");
    if (ids.size() < 2) return Status::error("bias calibration needs at least 2 tokens of text");
    if (o.context < 2 || o.context > m.cfg.seq_len)
        return Status::error("the calibration's context must be 2.." + std::to_string(m.cfg.seq_len) + " tokens");
    // A model that has biases (trained with expert_bias, or given a file) starts from them.
    if (!mc.expert_bias) model_set_expert_bias(m, true);
    const int L = m.cfg.n_layers, E = mc.n_experts, K = mc.top_k;
    Activations a;
    activations_create(a, m.cfg, 1, o.context);
    CalibrationReport r;
    PassCounts pc = measure_pass(m, a, ids, o.context, o.cancel, r.cancelled);
    const CalibrationPass before = pass_summary(m, pc, 0);
    r.load_cv_before = r.load_cv_after = before.load_cv;
    r.perplexity_before = r.perplexity_after = before.perplexity;
    r.bias.assign(L, {});
    for (int l = 0; l < L; l++)
        if (const float* b = m.w.layers[l].moe.bias) r.bias[l].assign(b, b + E);
    double best = before.load_cv;
    int since_gain = 0;
    for (int p = 1; p <= o.max_passes && !r.cancelled && since_gain < o.patience; p++) {
        // Each layer fitted on the keys its inputs gave this pass; the layers are independent here.
        const auto fit0 = std::chrono::steady_clock::now();
        parallel_for(L, true, [&](int l) {
            float* b = m.w.layers[l].moe.bias;
            if (!b) return;
            const double u = o.rate > 0 ? o.rate : 0.5 * key_margin(pc.keys[l], E, K);
            const std::vector<float> nb = fit_layer_bias(pc.keys[l], E, K, o.context, std::vector<float>(b, b + E), u);
            std::copy(nb.begin(), nb.end(), b);
        });
        const double fit_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - fit0).count();
        pc = PassCounts{};  // the last pass's keys go before the next one's are made
        pc = measure_pass(m, a, ids, o.context, o.cancel, r.cancelled);  // what the new biases give together
        if (r.cancelled) break;
        r.passes.push_back(pass_summary(m, pc, p));
        r.passes.back().fit_seconds = fit_s;
        const CalibrationPass& cp = r.passes.back();
        if (cp.load_cv < best * (1 - o.min_gain)) {
            best = cp.load_cv, r.best_pass = p, since_gain = 0;
            r.load_cv_after = cp.load_cv, r.perplexity_after = cp.perplexity;
            for (int l = 0; l < L; l++)
                if (const float* b = m.w.layers[l].moe.bias) r.bias[l].assign(b, b + E);
        } else {
            since_gain++;
        }
        if (o.progress) o.progress(cp);
    }
    for (int l = 0; l < L; l++)  // the best pass's biases back into the model
        if (float* b = m.w.layers[l].moe.bias) std::copy(r.bias[l].begin(), r.bias[l].end(), b);
    return r;
}

nlohmann::json calibration_to_json(const CalibrationReport& r) {
    nlohmann::json passes = nlohmann::json::array(), layers = nlohmann::json::array();
    for (const CalibrationPass& p : r.passes)
        passes.push_back({{"pass", p.pass}, {"load_cv", p.load_cv}, {"layer_cv", p.layer_cv}, {"perplexity", p.perplexity},
                          {"max_abs_bias", p.max_abs_bias}, {"seconds", p.seconds}, {"fit_seconds", p.fit_seconds}});
    for (size_t l = 0; l < r.bias.size(); l++)
        if (!r.bias[l].empty()) layers.push_back({{"layer", l}, {"expert_bias", r.bias[l]}});
    return {{"routelab_expert_bias", 1}, {"load_cv_before", r.load_cv_before}, {"load_cv_after", r.load_cv_after},
            {"perplexity_before", r.perplexity_before}, {"perplexity_after", r.perplexity_after},
            {"best_pass", r.best_pass}, {"passes", passes}, {"layers", layers}};
}

Status calibration_apply(Model& m, const nlohmann::json& j) {
    const auto bad = [](const std::string& why) {
        return Status::error("expert-bias file: " + why + "; write it with routelab-cli calibrate on this model");
    };
    if (!j.is_object() || !j.contains("routelab_expert_bias") || !j.contains("layers") || !j["layers"].is_array())
        return bad("not a RouteLab expert-bias file");
    const MoeConfig& mc = m.cfg.moe;
    if (mc.kind != FfnRouting::moe || mc.routing != MoeRouting::topk) return bad("this model has no top-k MoE");
    std::vector<std::vector<float>> b(m.cfg.n_layers);
    for (const auto& l : j["layers"]) {
        if (!l.contains("layer") || !l["layer"].is_number_integer() || !l.contains("expert_bias") || !l["expert_bias"].is_array())
            return bad("a layer entry lacks \"layer\" or \"expert_bias\"");
        const long long ll = l["layer"].get<long long>();
        if (ll < 0 || ll >= m.cfg.n_layers || !m.w.layers[ll].moe.router)
            return bad("layer " + std::to_string(ll) + " is not a sparse layer of this model");
        const int li = (int)ll;
        if (!b[li].empty()) return bad("layer " + std::to_string(li) + " is listed twice");
        if ((int)l["expert_bias"].size() != mc.n_experts)
            return bad("layer " + std::to_string(li) + " has " + std::to_string(l["expert_bias"].size()) + " biases for " +
                       std::to_string(mc.n_experts) + " experts");
        for (const auto& v : l["expert_bias"]) {
            if (!v.is_number()) return bad("a bias is not a number");
            b[li].push_back(v.get<float>());
        }
    }
    for (int l = 0; l < m.cfg.n_layers; l++)
        if (m.w.layers[l].moe.router && b[l].empty()) return bad("it has no biases for sparse layer " + std::to_string(l));
    if (!mc.expert_bias) model_set_expert_bias(m, true);
    for (int l = 0; l < m.cfg.n_layers; l++)
        if (float* p = m.w.layers[l].moe.bias) std::copy(b[l].begin(), b[l].end(), p);
    return Status::ok();
}

}  // namespace rl
