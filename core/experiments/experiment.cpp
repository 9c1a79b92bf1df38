#include "experiments/experiment.h"

#include <algorithm>
#include <fstream>
#include <set>

namespace rl {

const char* experiment_kind_name(ExperimentKind k) {
    switch (k) {
        case ExperimentKind::compare: return "compare";
        case ExperimentKind::sweep: return "sweep";
        case ExperimentKind::calibrate: return "calibrate";
        case ExperimentKind::analyse: return "analyse";
    }
    return "?";
}

Status RoutingOverride::check(const Model& m, const Config& cfg, const Interventions& iv, bool bias_off, Config* applied) {
    Config c = cfg;
    c.model = m.cfg;  // biases given after the run was built (a calibration) are m's, not cfg's
    if (Status s = interventions_apply(c, iv); !s) return s;
    if (bias_off && !m.cfg.moe.expert_bias)
        return Status::error("this model has no selection biases to switch off (train with model.moe.expert_bias, or "
                             "calibrate them first)");
    if (applied) *applied = std::move(c);
    return Status::ok();
}

Result<std::unique_ptr<RoutingOverride>> RoutingOverride::make(Model& m, const Config& cfg, const Interventions& iv,
                                                                bool bias_off) {
    Config c;
    if (Status s = check(m, cfg, iv, bias_off, &c); !s) return s;
    std::unique_ptr<RoutingOverride> o(new RoutingOverride(m));
    m.cfg = c.model;
    if (bias_off) {
        o->bias_.resize(m.w.layers.size());
        for (size_t l = 0; l < m.w.layers.size(); l++) {
            float* b = m.w.layers[l].moe.bias;
            if (!b) continue;
            o->bias_[l].assign(b, b + m.cfg.moe.n_experts);
            std::fill_n(b, m.cfg.moe.n_experts, 0.f);  // a key plus 0 is the key: the router without its bias
        }
    }
    return o;
}

RoutingOverride::~RoutingOverride() {
    for (size_t l = 0; l < bias_.size(); l++)
        if (!bias_[l].empty() && m_.w.layers[l].moe.bias) std::copy(bias_[l].begin(), bias_[l].end(), m_.w.layers[l].moe.bias);
    m_.cfg = kept_;
}

Result<std::vector<int>> experiment_text(const Tokenizer& tok, const std::vector<int>& val, const std::string& file,
                                         int tokens) {
    std::vector<int> ids;
    const size_t cap = (size_t)std::max(2, tokens);
    if (file.empty()) {
        ids.assign(val.begin(), val.begin() + (ptrdiff_t)std::min(val.size(), cap));
    } else {
        std::ifstream in(file, std::ios::binary);
        if (!in) return Status::error("cannot read the held-out text '" + file + "'; pick a readable text file");
        std::string text(cap * 64, '\0');  // more bytes than `cap` tokens take in any tokenizer
        in.read(text.data(), (std::streamsize)text.size());
        text.resize((size_t)in.gcount());
        ids = tok.encode(text);
        if (ids.size() > cap) ids.resize(cap);
    }
    if (ids.size() < 2) return Status::error("the held-out text has fewer than 2 tokens; pick a longer text");
    return ids;
}

namespace {

using Progress = std::function<void(const ExperimentResult&)>;

// What the unchanged model's report depends on besides the weights (the session clears the cache when
// they move): the text, the windows, the biases, the model's config.
std::string cache_key(const Model& m, const ExperimentRequest& r, int context) {
    double bias_sum = 0;
    for (float v : m.buffers.data) bias_sum += v;
    return r.text_file + "|" + std::to_string(r.tokens) + "|" + std::to_string(context) + "|" +
           std::to_string(m.buffers.data.size()) + "|" + std::to_string(bias_sum) + "|" + config_to_json(Config{.model = m.cfg});
}

// progress (done, total) over `parts` evals, the part-th of them running.
EvalOptions eval_options(int context, ExperimentResult& out, const Progress& progress, const std::atomic<bool>* cancel,
                         int part, int parts) {
    EvalOptions o;
    o.context = context;
    o.cancel = cancel;
    o.progress = [&out, &progress, part, parts](int done, int total) {
        out.progress = (part + (double)done / std::max(1, total)) / parts;
        if (progress) progress(out);
    };
    return o;
}

void run_compare(Model& m, const Config& cfg, const std::vector<int>& ids, const ExperimentRequest& r, int context,
                 ExperimentCache& cache, ExperimentResult& out, const Progress& progress, const std::atomic<bool>* cancel) {
    out.what = r.iv.describe() + (r.bias_off ? (r.iv.any() ? ", biases off" : "biases off") : "");
    if (Status s = RoutingOverride::check(m, cfg, r.iv, r.bias_off); !s) {  // refused before anything runs
        out.error = s.msg;
        return;
    }
    const std::string key = cache_key(m, r, context);
    const bool cached = cache.key == key;
    if (!cached) {
        auto base = model_eval(m, ids, eval_options(context, out, progress, cancel, 0, 2));
        if (!base || base->cancelled) {
            out.error = base ? "" : base.status.msg;
            out.cancelled = !base || base->cancelled;
            return;
        }
        cache = {key, *base};
    }
    out.base = cache.base;
    out.applied = eval_mask_least_used(r.iv, out.base);  // the least used on this text, by the unchanged model
    auto over = RoutingOverride::make(m, cfg, out.applied, r.bias_off);
    if (!over) {
        out.error = over.status.msg;
        return;
    }
    auto changed = model_eval(m, ids, eval_options(context, out, progress, cancel, cached ? 0 : 1, cached ? 1 : 2));
    if (!changed) out.error = changed.status.msg;
    else out.changed = *changed, out.cancelled = changed->cancelled;
}

// 1, 2, 4, ... up to E, E itself and the model's own top-k; of those, the ones the routing can take
// (group-limited routing needs a top-k its kept groups divide).
std::vector<int> sweep_ks(const ModelConfig& c, const Config& cfg, const Interventions& iv, const std::vector<int>& asked) {
    if (!asked.empty()) return asked;
    std::set<int> ks{c.moe.top_k, c.moe.n_experts};
    for (int k = 1; k < c.moe.n_experts; k *= 2) ks.insert(k);
    return interventions_top_k_accepted(cfg, c, iv, {ks.begin(), ks.end()});
}

void run_sweep(Model& m, const Config& cfg, const std::vector<int>& ids, const ExperimentRequest& r, int context,
               ExperimentResult& out, const Progress& progress, const std::atomic<bool>* cancel) {
    Interventions base = r.iv;
    base.mask_least_used = 0;  // which experts are least used depends on the top-k: compare only
    out.ks = sweep_ks(m.cfg, cfg, base, r.ks);
    out.what = "top-k " + std::to_string(out.ks.front()) + ".." + std::to_string(out.ks.back());
    const int n = (int)out.ks.size();
    for (int i = 0; i < n; i++) {
        Interventions iv = base;
        iv.top_k = out.ks[i];
        auto over = RoutingOverride::make(m, cfg, iv, r.bias_off);
        if (!over) {
            out.error = "top-k " + std::to_string(out.ks[i]) + ": " + over.status.msg;
            return;
        }
        auto rep = model_eval(m, ids, eval_options(context, out, progress, cancel, i, n));
        if (!rep || rep->cancelled) {
            out.error = rep ? "" : rep.status.msg;
            out.cancelled = !rep || rep->cancelled;
            break;
        }
        out.sweep.push_back(*rep);
        if (progress) progress(out);  // a point more on the plot
    }
    out.ks.resize(out.sweep.size());
}

void run_calibrate(Model& m, const std::vector<int>& ids, int context, ExperimentResult& out, const Progress& progress,
                   const std::atomic<bool>* cancel) {
    out.what = "balance the load with selection biases (no gradients)";
    CalibrationOptions o;
    o.context = context;
    o.cancel = cancel;
    o.progress = [&](const CalibrationPass& p) {
        out.calibration.passes.push_back(p);
        out.progress = std::min(0.95, (double)p.pass / o.max_passes * 4);  // passes end early: a rough share
        if (progress) progress(out);
    };
    auto rep = calibrate_expert_bias(m, ids, o);
    if (!rep) out.error = rep.status.msg;
    else out.calibration = *rep, out.cancelled = rep->cancelled;
}

void run_analyse(Model& m, const Config& cfg, const Tokenizer& tok, const ExperimentRequest& r, int context,
                 ExperimentResult& out, const Progress& progress, const std::atomic<bool>* cancel) {
    auto domains = analysis_domains_read(r.domains, tok, (size_t)std::max(2, r.tokens));
    if (!domains) {
        out.error = domains.status.msg;
        return;
    }
    auto over = RoutingOverride::make(m, cfg, r.iv, r.bias_off);
    if (!over) {
        out.error = over.status.msg;
        return;
    }
    out.what = std::to_string(domains->size()) + " domains" + (r.iv.any() ? ", " + r.iv.describe() : "");
    AnalysisOptions o;
    o.context = context;
    o.cancel = cancel;
    o.progress = [&](int64_t done, int64_t total) {
        out.progress = (double)done / std::max<int64_t>(1, total);
        if (progress) progress(out);
    };
    out.analysis = analysis_run(m, tok, *domains, o);
    out.cancelled = out.analysis.cancelled;
    out.text_tokens = out.analysis.tokens;
}

}  // namespace

ExperimentResult experiment_run(Model& m, const Config& cfg, const Tokenizer& tok, const std::vector<int>& val,
                                const ExperimentRequest& r, ExperimentCache& cache, const Progress& progress,
                                const std::atomic<bool>* cancel) {
    ExperimentResult out;
    out.kind = r.kind;
    out.id = r.id;
    out.model_top_k = m.cfg.moe.top_k;
    const int context = std::clamp(r.context, 2, m.cfg.seq_len);
    if (m.cfg.moe.kind == FfnRouting::dense) {
        out.error = "this model's FFN is dense: the experiments route experts (open an MoE model or train an MoE preset)";
    } else if (r.kind == ExperimentKind::analyse) {
        run_analyse(m, cfg, tok, r, context, out, progress, cancel);
    } else if (auto ids = experiment_text(tok, val, r.text_file, r.tokens); !ids) {
        out.error = ids.status.msg;
    } else {
        out.text_tokens = (int64_t)ids->size();
        if (r.kind == ExperimentKind::compare) run_compare(m, cfg, *ids, r, context, cache, out, progress, cancel);
        else if (r.kind == ExperimentKind::sweep) run_sweep(m, cfg, *ids, r, context, out, progress, cancel);
        else run_calibrate(m, *ids, context, out, progress, cancel);
    }
    out.done = true;
    out.progress = 1;
    return out;
}

}  // namespace rl
