// routelab-cli eval: perplexity and per-layer routing of a model on a text, unchanged or under
// routing interventions (issue 24; infer/eval.h, infer/interventions.h):
//   eval --model DIR | --checkpoint F  --text-file F | --ids 1,17,...  [--context N]
//        [--top-k K] [--renorm | --no-renorm] [--mask-experts 3,5] [--capacity-factor C] [--baseline]
//        [--mask-least-used K]
//        --json G
// G: perplexity, tokens, and per layer load_cv and dropped (with rows per expert and experts per
// token), active and total parameters, forward seconds; with --baseline, "baseline": the same
// numbers of the unchanged model on the same text.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli.h"
#include "infer/calibrate.h"
#include "infer/eval.h"
#include "util/atomic_file.h"

using namespace rl;

namespace cli {

namespace {

nlohmann::json report_json(const EvalReport& r) {
    nlohmann::json layers = nlohmann::json::array();
    for (const EvalLayer& l : r.layers)
        layers.push_back({{"layer", l.layer}, {"load_cv", l.load_cv}, {"dropped", l.dropped},
                          {"experts_per_token", l.experts_per_token}, {"rows", l.rows}});
    return {{"perplexity", r.perplexity}, {"nll", r.nll}, {"tokens", r.tokens}, {"windows", r.windows},
            {"context", r.context}, {"forward_s", r.forward_s},
            {"tokens_per_s", r.forward_s > 0 ? (double)(r.tokens + r.windows) / r.forward_s : 0.0},
            {"active_params", r.active_params}, {"total_params", r.total_params}, {"layers", layers}};
}

}  // namespace

// --ids, or the text file through the model's tokenizer (its special tokens added, as probe does).
int eval_ids(const Args& a, const OpenedModel& om, std::vector<int>& ids) {
    if (a.has("ids")) {
        std::string err;
        return parse_ids(a.opt.at("ids"), om.model().cfg.vocab_size, ids, err) ? 0 : usage(err);
    }
    std::ifstream in(a.opt.at("text-file"), std::ios::binary);
    if (!in) return fail("eval: cannot read --text-file '" + a.opt.at("text-file") + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    ids = om.tok().encode(ss.str());
    return 0;
}

Result<OpenedModel> eval_open(const Args& a, const std::string& cmd) {
    if (a.has("checkpoint") == a.has("model")) return Status::error(cmd + " needs --checkpoint F or --model DIR (one of them)");
    if (a.has("ids") && a.has("model")) {  // token ids need no tokenizer
        auto hf = hf_model_open(a.opt.at("model"), /*tokenizer=*/false);
        if (!hf) return hf.status;
        OpenedModel o;
        o.hf = std::move(*hf);
        return o;
    }
    return open_model(a, cmd);
}

namespace {

Result<EvalReport> eval_run(const OpenedModel& om, const std::vector<int>& ids, int context, const char* what) {
    EvalOptions o;
    o.context = context;
    const auto start = std::chrono::steady_clock::now();
    auto last = start;
    o.progress = [&](int done, int total) {  // a line every 5 s on a long text
        if (seconds_since(last) < 5 && (done < total || seconds_since(start) < 5)) return;
        last = std::chrono::steady_clock::now();
        std::fprintf(stderr, "eval%s: window %d of %d\n", what, done, total);
    };
    return model_eval(om.model(), ids, o);
}

}  // namespace

bool write_json(const std::string& path, const nlohmann::json& j, const char* cmd) {
    Status s = atomic_file_write(path, [&](std::FILE* f) {
        const std::string out = j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
        std::fwrite(out.data(), 1, out.size(), f);
        return Status::ok();
    });
    if (!s) fail(std::string(cmd) + ": " + s.msg);
    return (bool)s;
}

namespace {

// --top-k-sweep 1,2,4,8: one eval per top-k (with the other interventions), "sweep": [{"top_k", the
// eval fields}], perplexity against active parameters in one line each.
int eval_sweep(const Args& a, OpenedModel& om, const Interventions& iv, const std::vector<int>& ids, int context) {
    std::vector<int> ks;
    const std::string& list = a.opt.at("top-k-sweep");
    for (size_t i = 0; i <= list.size();) {
        const size_t j = std::min(list.find(',', i), list.size());
        long long k;
        if (!parse_int(list.substr(i, j - i), 1, 1024, k)) return usage("--top-k-sweep takes top-k values such as 1,2,4,8");
        ks.push_back((int)k);
        i = j + 1;
    }
    if (a.has("top-k")) return usage("--top-k-sweep sets the top-k itself: leave --top-k out");
    if (int rc = routing_files_from_args(a, om.model_mut())) return rc;
    EvalOptions o;
    o.context = context;
    auto r = eval_top_k_sweep(om.model_mut(), om.ck ? om.ck->cfg : om.hf->cfg, iv, ks, ids, o);
    if (!r) return fail("eval: " + r.status.msg);
    nlohmann::json sweep = nlohmann::json::array();
    for (size_t i = 0; i < r->size(); i++) {
        nlohmann::json p = report_json((*r)[i]);
        p["top_k"] = ks[i];
        sweep.push_back(p);
        std::printf("top-k %3d: perplexity %.4f, %.0f active parameters per token, forward %.2f s\n", ks[i],
                    (*r)[i].perplexity, (*r)[i].active_params, (*r)[i].forward_s);
    }
    return write_json(a.opt.at("json"), {{"sweep", sweep}, {"interventions", iv.describe()}}) ? 0 : 1;
}

}  // namespace

int cmd_eval(const Args& a) {
    if (a.has("text-file") == a.has("ids")) return usage("eval needs --text-file F or --ids 1,17,... (one of them)");
    if (!a.has("json")) return usage("eval needs --json G (the file to write)");
    Interventions iv;
    if (int rc = interventions_from_args(a, iv)) return rc;
    auto om = eval_open(a, "eval");
    if (!om) return fail(om.status.msg);
    std::vector<int> ids;
    if (int rc = eval_ids(a, *om, ids)) return rc;
    int context = std::min(512, om->model().cfg.seq_len);
    if (a.has("context")) {
        long long c;
        if (!parse_int(a.opt.at("context"), 2, om->model().cfg.seq_len, c))
            return usage("--context must be an integer in 2.." + std::to_string(om->model().cfg.seq_len) + " (the model's)");
        context = (int)c;
    }
    if (om->hf)
        if (Status s = hf_probe_fits(*om->hf, context); !s) return fail(s.msg + " (or pass a smaller --context)");
    if (a.flag("baseline") && a.has("top-k-sweep")) return usage("--baseline and --top-k-sweep: pass one of them");
    Config check = om->ck ? om->ck->cfg : om->hf->cfg;  // a bad intervention said before any forward runs
    if (Status s = interventions_apply(check, iv); !s) return fail("eval: " + s.msg);
    // The unchanged model: for --baseline, and for the experts --mask-least-used finds least used on this text.
    std::optional<EvalReport> unchanged;
    if (a.flag("baseline") || (iv.mask_least_used && !a.has("top-k-sweep"))) {
        auto b = eval_run(*om, ids, context, " (unchanged)");
        if (!b) return fail("eval: " + b.status.msg);
        unchanged = *b;
    }
    if (a.has("top-k-sweep")) {
        if (iv.mask_least_used) return usage("--mask-least-used and --top-k-sweep: which experts are least used depends on the top-k; pass one of them");
        return eval_sweep(a, *om, iv, ids, context);
    }
    if (iv.mask_least_used) iv = eval_mask_least_used(iv, *unchanged);
    if (Status s = om->intervene(iv); !s) return fail("eval: " + s.msg);
    if (int rc = routing_files_from_args(a, om->model_mut())) return rc;
    auto r = eval_run(*om, ids, context, "");
    if (!r) return fail("eval: " + r.status.msg);
    nlohmann::json j = report_json(*r);
    j["interventions"] = !a.flag("no-expert-bias") ? iv.describe() : iv.any() ? iv.describe() + ", biases off" : "biases off";
    if (a.has("expert-bias")) j["expert_bias"] = a.opt.at("expert-bias");
    if (a.has("mask-least-used")) j["masked"] = iv.mask;
    if (a.flag("baseline")) j["baseline"] = report_json(*unchanged);
    const std::string path = a.opt.at("json");
    if (!write_json(path, j)) return 1;
    std::fprintf(stderr, "eval: %lld tokens in %d windows of %d, routing %s: perplexity %.4f, %.0f active parameters per token of %.0f, forward %.2f s -> %s\n",
                 (long long)r->tokens, r->windows, context,
                 (iv.describe() + (a.has("expert-bias") ? ", expert biases of " + a.opt.at("expert-bias") : "")).c_str(),
                 r->perplexity, r->active_params,
                 r->total_params, r->forward_s, path.c_str());
    return 0;
}

// calibrate --model DIR | --checkpoint F --text-file F | --ids ... --json G [--context N] [--rate U]
// [--passes N]: the aux-loss-free rule over forward passes of the text (infer/calibrate.h); G holds the
// passes and the biases, which probe, eval and analyse take back with --expert-bias G.
int cmd_calibrate(const Args& a) {
    if (a.has("text-file") == a.has("ids")) return usage("calibrate needs --text-file F or --ids 1,17,... (one of them)");
    if (!a.has("json")) return usage("calibrate needs --json G (the file to write the biases to)");
    auto om = eval_open(a, "calibrate");
    if (!om) return fail(om.status.msg);
    std::vector<int> ids;
    if (int rc = eval_ids(a, *om, ids)) return rc;
    CalibrationOptions o;
    o.context = std::min(512, om->model().cfg.seq_len);
    long long v;
    double u;
    if (a.has("context")) {
        if (!parse_int(a.opt.at("context"), 2, om->model().cfg.seq_len, v))
            return usage("--context must be an integer in 2.." + std::to_string(om->model().cfg.seq_len) + " (the model's)");
        o.context = (int)v;
    }
    if (a.has("passes")) {
        if (!parse_int(a.opt.at("passes"), 1, 1000, v)) return usage("--passes must be an integer in 1..1000");
        o.max_passes = (int)v;
    }
    if (a.has("rate")) {
        if (!parse_float(a.opt.at("rate"), u) || !(u > 0 && u < 100)) return usage("--rate must be a number > 0, such as 0.001");
        o.rate = (float)u;
    }
    if (om->hf)
        if (Status s = hf_probe_fits(*om->hf, o.context); !s) return fail(s.msg + " (or pass a smaller --context)");
    o.progress = [](const CalibrationPass& p) {
        std::fprintf(stderr, "calibrate: pass %d: load CV %.4f, perplexity %.4f, max |bias| %.4g; fit %.1f s, forwards %.1f s\n",
                     p.pass, p.load_cv, p.perplexity, p.max_abs_bias, p.fit_seconds, p.seconds);
    };
    std::fprintf(stderr, "calibrate: %zu tokens in windows of %d\n", ids.size(), o.context);
    auto r = calibrate_expert_bias(om->model_mut(), ids, o);
    if (!r) return fail("calibrate: " + r.status.msg);
    nlohmann::json j = calibration_to_json(*r);
    j["tokens"] = ids.size();
    j["context"] = o.context;
    if (!write_json(a.opt.at("json"), j, "calibrate")) return 1;
    std::printf("load CV %.4f -> %.4f after %d passes (best %d); perplexity %.4f -> %.4f\n", r->load_cv_before,
                r->load_cv_after, (int)r->passes.size(), r->best_pass, r->perplexity_before, r->perplexity_after);
    return 0;
}

}  // namespace cli
