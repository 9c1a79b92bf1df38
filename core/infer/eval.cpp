#include "infer/eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

namespace rl {

namespace {

// The parameters of one routed expert of layer l (0 for a dense layer): "layers.l.moe.experts.0.*".
std::vector<double> routed_expert_params(const ModelConfig& c) {
    std::vector<double> per(c.n_layers, 0.0);
    const Layout L = model_param_layout(c);
    for (const TensorSpec& s : L.specs())
        for (int l = 0; l < c.n_layers; l++)
            if (s.name.rfind("layers." + std::to_string(l) + ".moe.experts.0.", 0) == 0) per[l] += (double)s.numel;
    return per;
}

}  // namespace

double eval_total_params(const ModelConfig& c) {
    double total = 0;
    const Layout L = model_param_layout(c);  // named: a range-for over a temporary's specs() would dangle
    for (const TensorSpec& s : L.specs()) total += (double)s.numel;
    return total;
}

double eval_active_params(const ModelConfig& c, const std::vector<double>& experts_per_token) {
    const std::vector<double> per = routed_expert_params(c);
    double active = eval_total_params(c);
    for (int l = 0; l < c.n_layers; l++) {
        if (per[l] == 0) continue;
        active -= per[l] * c.moe.n_experts;
        active += per[l] * (l < (int)experts_per_token.size() ? experts_per_token[l] : c.moe.top_k);
    }
    return active;
}

EvalWindows eval_windows(const Model& m, Activations& a, const std::vector<int>& ids, int context,
                         const std::atomic<bool>* cancel, const std::function<void(int T)>& each) {
    EvalWindows w;
    std::vector<int> targets(context);
    for (size_t start = 0; start + 1 < ids.size(); start += context) {
        if (cancel && cancel->load()) {
            w.cancelled = true;
            break;
        }
        const int T = (int)std::min<size_t>(context, ids.size() - start);
        if (T < 2) break;
        for (int t = 0; t < T; t++) targets[t] = t + 1 < T ? ids[start + t + 1] : -1;
        const auto t0 = std::chrono::steady_clock::now();
        model_forward(m, a, ids.data() + start, targets.data(), 1, T);
        w.forward_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        w.nll_sum += a.ce * (T - 1);
        w.predicted += T - 1;
        w.windows++;
        each(T);
    }
    return w;
}

Result<EvalReport> model_eval(const Model& m, const std::vector<int>& ids, const EvalOptions& o) {
    const ModelConfig& c = m.cfg;
    if (ids.size() < 2) return Status::error("eval needs at least 2 tokens of text; give it a longer file");
    if (o.context < 2 || o.context > c.seq_len)
        return Status::error("eval's context must be 2.." + std::to_string(c.seq_len) + " tokens (the model's), got " +
                             std::to_string(o.context));
    EvalReport r;
    r.context = o.context;
    const int total_windows = (int)((ids.size() - 1 + o.context - 1) / o.context);  // windows of >= 2 tokens
    Activations a;
    activations_create(a, c, 1, o.context);
    const int E = c.moe.n_experts;
    std::vector<std::vector<double>> rows(c.n_layers);  // (L)(E) rows each expert computed
    std::vector<double> choices(c.n_layers, 0.0);        // (L) (token, expert) pairs chosen before capacity (top-k)
    std::vector<double> dropped_rows(c.n_layers, 0.0), routed_rows(c.n_layers, 0.0);  // (L) other routings
    int done = 0;
    const EvalWindows w = eval_windows(m, a, ids, o.context, o.cancel, [&](int T) {
        for (int l = 0; l < c.n_layers; l++) {
            if (!m.w.layers[l].moe.router) continue;
            const MoeSaved& sv = a.layers[l].ms;
            rows[l].resize(E, 0.0);
            for (int e = 0; e < E; e++) rows[l][e] += sv.offset[e + 1] - sv.offset[e];
            const MoeDims d = model_moe_dims(c, T, false, 0);  // MH-MoE: N counts sub-tokens
            if (c.moe.routing == MoeRouting::topk) choices[l] += (double)d.N * d.K;
            else dropped_rows[l] += a.layers[l].mst.dropped_frac * d.N, routed_rows[l] += d.N;
        }
        if (o.progress) o.progress(++done, total_windows);
    });
    r.tokens = w.predicted, r.windows = w.windows, r.forward_s = w.forward_s, r.cancelled = w.cancelled;
    const double nll_sum = w.nll_sum;
    if (r.tokens == 0) return Status::error("eval was cancelled before its first window");
    r.nll = nll_sum / (double)r.tokens;
    r.perplexity = std::exp(r.nll);
    std::vector<double> per_token(c.n_layers, 0.0);
    const double text_tokens = (double)r.tokens + r.windows;  // every token of the windows run went through each layer
    for (int l = 0; l < c.n_layers; l++) {
        if (rows[l].empty()) continue;
        EvalLayer el;
        el.layer = l;
        el.rows = rows[l];
        double sum = 0, mean = 0, var = 0;
        for (double v : rows[l]) sum += v;
        mean = sum / E;
        for (double v : rows[l]) var += (v - mean) * (v - mean);
        el.load_cv = mean > 0 ? std::sqrt(var / E) / mean : 0;
        el.dropped = choices[l] > 0 ? 1.0 - sum / choices[l] : routed_rows[l] > 0 ? dropped_rows[l] / routed_rows[l] : 0;
        const int h = c.moe.kind == FfnRouting::mh_moe ? c.moe.n_heads : 1;
        el.experts_per_token = sum / text_tokens / h;  // MH-MoE: per sub-token
        per_token[l] = sum / text_tokens;  // routed expert rows a token costs (MH-MoE: its h sub-tokens')
        r.layers.push_back(std::move(el));
    }
    r.total_params = eval_total_params(c);
    r.active_params = eval_active_params(c, per_token);
    return r;
}

Interventions eval_mask_least_used(const Interventions& iv, const EvalReport& unchanged) {
    Interventions out = iv;
    out.mask_least_used = 0;
    if (iv.mask_least_used <= 0) return out;
    for (const EvalLayer& l : unchanged.layers) {
        std::vector<char> masked(l.rows.size(), 0);  // by iv.mask already: not counted again
        config_masks_each(iv.mask, [&](int at, int e) {
            if ((at < 0 || at == l.layer) && e >= 0 && e < (int)masked.size()) masked[e] = 1;
        });
        std::vector<int> order;
        for (int e = 0; e < (int)l.rows.size(); e++)
            if (!masked[e]) order.push_back(e);
        std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return l.rows[a] < l.rows[b]; });
        for (int i = 0; i < std::min<int>(iv.mask_least_used, (int)order.size()); i++)
            out.mask += (out.mask.empty() ? "" : ",") + std::to_string(l.layer) + ":" + std::to_string(order[i]);
    }
    return out;
}

Result<std::vector<EvalReport>> eval_top_k_sweep(Model& m, const Config& cfg, const Interventions& iv,
                                                 const std::vector<int>& ks, const std::vector<int>& ids,
                                                 const EvalOptions& o) {
    const ModelConfig kept = m.cfg;
    std::vector<EvalReport> out;
    for (int k : ks) {
        Config c = cfg;
        Interventions at = iv;
        at.top_k = k;
        if (Status s = interventions_apply(c, at); !s) {
            m.cfg = kept;
            return s;
        }
        m.cfg = c.model;
        m.cfg.moe.expert_bias = kept.moe.expert_bias;  // biases given to m (calibration_apply) stay
        auto r = model_eval(m, ids, o);
        m.cfg = kept;
        if (!r) return r.status;
        out.push_back(std::move(*r));
        if (out.back().cancelled) break;
    }
    return out;
}

}  // namespace rl
