#include "train/router_tune.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "optim/optim.h"
#include "util/threads.h"

namespace rl {

bool router_tensor(const std::string& name) {
    for (const char* leaf : {".moe.router", ".moe.noise", ".moe.shared_gate", ".attn.router.w_shared",
                             ".attn.router.w_routed", ".attn.router.w_type"}) {
        const std::string l = leaf;
        if (name.size() > l.size() && name.compare(name.size() - l.size(), l.size(), l) == 0) return true;
    }
    return false;
}

namespace {

bool any_packed(const Model& m) {
    auto packed = [](const Bf16Weight& b) { return b && b.packed; };
    if (packed(m.w.bf16_head)) return true;
    for (const LayerWeights& w : m.w.layers) {
        for (const Bf16Weight* b : {&w.bf16_wq, &w.bf16_wk, &w.bf16_wv, &w.bf16_wo, &w.bf16_gate, &w.bf16_up, &w.bf16_down})
            if (packed(*b)) return true;
        for (const auto* set : {&w.moe.experts, &w.moe.shared})
            for (const ExpertWeights& e : *set)
                if (packed(e.bf16_gate) || packed(e.bf16_up) || packed(e.bf16_down)) return true;
    }
    return false;
}

// Mean over sparse layers of the expert-load CV of the last forward.
double load_cv(const Model& m, const Activations& a) {
    const int E = m.cfg.moe.n_experts;
    double sum = 0;
    int layers = 0;
    for (int l = 0; l < m.cfg.n_layers; l++) {
        if (!m.w.layers[l].moe.router) continue;
        const MoeSaved& sv = a.layers[l].ms;
        double mean = 0, var = 0;
        for (int e = 0; e < E; e++) mean += sv.offset[e + 1] - sv.offset[e];
        mean /= E;
        for (int e = 0; e < E; e++) var += std::pow(sv.offset[e + 1] - sv.offset[e] - mean, 2);
        sum += mean > 0 ? std::sqrt(var / E) / mean : 0;
        layers++;
    }
    return layers ? sum / layers : 0;
}

// Back to no gradients (a frozen model is frozen again; model_frozen reads this).
void grads_release(Model& m) {
    m.grads = Arena{};
    m.g = Weights{};
    m.g.layers.assign(m.cfg.n_layers, LayerWeights{});
}

}  // namespace

std::string router_tune_blocker(const Model& m) {
    const ModelConfig& c = m.cfg;
    const Layout all = model_param_layout(c);
    const bool routers = std::any_of(all.specs().begin(), all.specs().end(), [](const TensorSpec& s) { return router_tensor(s.name); });
    if (!routers) return "this model has no learned router to tune (a dense FFN, and heads that are all on or chosen by a rule)";
    if (any_packed(m))
        return "the model was opened for --bf16-activations (its weights packed for the forward only); open it without that flag";
    return {};
}

RouterTuneMemory router_tune_memory(const Model& m, int B, int T) {
    RouterTuneMemory r;
    const Layout all = model_param_layout(m.cfg);
    double trainable = 0;
    for (const TensorSpec& s : all.specs()) {
        r.weights += (double)s.numel * (m.layout.find(s.name) ? 4 : 2);  // not in m's arena: BF16 in the mapped file
        if (router_tensor(s.name)) trainable += (double)s.numel;
    }
    r.grads = 4 * trainable;
    r.moments = 8 * trainable;
    r.activations = (double)activations_bytes(m.cfg, B, T).total();
    return r;
}

Result<RouterTuneReport> router_tune(Model& m, const std::vector<int>& ids, const RouterTuneOptions& o) {
    if (std::string why = router_tune_blocker(m); !why.empty()) return Status::error(why);
    const int B = std::max(1, o.batch), T = o.context;
    if (T < 2 || T > m.cfg.seq_len)
        return Status::error("router tuning's context must be 2.." + std::to_string(m.cfg.seq_len) + " tokens, got " + std::to_string(T));
    if (ids.size() < (size_t)T + 1)
        return Status::error("router tuning needs at least " + std::to_string(T + 1) + " tokens of text; give it a longer file");
    RouterTuneReport rep;
    rep.memory = router_tune_memory(m, B, T);
    const Layout gl = model_grads_for(m, router_tensor);  // m.grads: the routers' gradients only
    std::vector<float> mom(gl.total(), 0.f), vel(gl.total(), 0.f);
    std::vector<unsigned char> decay(gl.total(), 0);
    std::vector<float*> param(gl.specs().size());
    for (size_t i = 0; i < gl.specs().size(); i++) {
        const TensorSpec& s = gl.specs()[i];
        param[i] = m.params.ptr(m.layout, s.name);
        if (!param[i]) {
            grads_release(m);
            return Status::error("router tuning: '" + s.name + "' is not held as float32");
        }
        if (s.decay) std::fill_n(decay.begin() + (ptrdiff_t)s.offset, s.numel, 1);
        rep.tensors.push_back(s.name);
        rep.trainable += (int64_t)s.numel;
    }
    const Layout all = model_param_layout(m.cfg);  // named: a range-for over a temporary's specs() would dangle
    for (const TensorSpec& s : all.specs()) rep.frozen += (int64_t)s.numel;
    rep.frozen -= rep.trainable;
    Activations a;
    activations_create(a, m.cfg, B, T);
    std::vector<int> tokens((size_t)B * T), targets((size_t)B * T);
    std::mt19937_64 rng(o.seed);
    std::uniform_int_distribution<size_t> start(0, ids.size() - T - 1);
    for (int step = 1; step <= o.steps; step++) {
        if (o.cancel && o.cancel->load()) {
            rep.cancelled = true;
            break;
        }
        const double t0 = now_seconds();
        for (int b = 0; b < B; b++) {
            const size_t s0 = start(rng);
            std::copy_n(ids.begin() + (ptrdiff_t)s0, T, tokens.begin() + (ptrdiff_t)b * T);
            std::copy_n(ids.begin() + (ptrdiff_t)s0 + 1, T, targets.begin() + (ptrdiff_t)b * T);
        }
        model_zero_grad(m);
        RouterTuneStep st;
        st.step = step;
        st.loss = model_forward(m, a, tokens.data(), targets.data(), B, T, {.training = true, .seed = (uint64_t)step});
        st.load_cv = load_cv(m, a);
        model_backward(m, a, tokens.data(), targets.data());
        st.grad_norm = grad_clip(m.grads.data.data(), m.grads.data.size(), o.grad_clip);
        if (!std::isfinite(st.loss) || !std::isfinite(st.grad_norm)) {
            grads_release(m);
            return Status::error("router tuning: step " + std::to_string(step) + "'s loss or gradient is not finite; lower --lr");
        }
        const AdamWParams p{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, step};
        for (size_t i = 0; i < gl.specs().size(); i++) {
            const TensorSpec& s = gl.specs()[i];
            adamw_update(param[i], m.grads.data.data() + s.offset, mom.data() + s.offset, vel.data() + s.offset,
                         decay.data() + s.offset, s.numel, p);
        }
        st.seconds = now_seconds() - t0;
        rep.steps.push_back(st);
        if (o.progress) o.progress(step, st.loss);
    }
    grads_release(m);
    double s = 0;
    for (size_t i = 1; i < rep.steps.size(); i++) s += rep.steps[i].seconds;
    rep.seconds_per_step = rep.steps.size() > 1 ? s / (rep.steps.size() - 1) : rep.steps.empty() ? 0 : rep.steps[0].seconds;
    return rep;
}

}  // namespace rl
