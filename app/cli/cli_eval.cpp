// routelab-cli eval: perplexity and per-layer routing of a model on a text, unchanged or under
// routing interventions (issue 24; infer/eval.h, infer/interventions.h):
//   eval --model DIR | --checkpoint F  --text-file F | --ids 1,17,...  [--context N]
//        [--top-k K] [--renorm | --no-renorm] [--mask-experts 3,5] [--capacity-factor C] [--baseline]
//        --json G
// G: perplexity, tokens, and per layer load_cv and dropped (with rows per expert and experts per
// token), active and total parameters, forward seconds; with --baseline, "baseline": the same
// numbers of the unchanged model on the same text.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli.h"
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

// --ids, or the text file through the model's tokenizer (its special tokens added, as probe does).
int eval_ids(const Args& a, const OpenedModel& om, std::vector<int>& ids) {
    const int V = om.model().cfg.vocab_size;
    if (a.has("ids")) {
        const std::string& s = a.opt.at("ids");
        for (size_t i = 0; i <= s.size();) {
            const size_t j = std::min(s.find(',', i), s.size());
            long long v;
            if (!parse_int(s.substr(i, j - i), 0, (long long)V - 1, v))
                return usage("--ids must be comma-separated token ids in 0.." + std::to_string(V - 1));
            ids.push_back((int)v);
            i = j + 1;
        }
        return 0;
    }
    std::ifstream in(a.opt.at("text-file"), std::ios::binary);
    if (!in) return fail("eval: cannot read --text-file '" + a.opt.at("text-file") + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    ids = om.tok().encode(ss.str());
    return 0;
}

Result<OpenedModel> eval_open(const Args& a) {
    if (a.has("ids") && a.has("model")) {  // token ids need no tokenizer
        auto hf = hf_model_open(a.opt.at("model"), /*tokenizer=*/false);
        if (!hf) return hf.status;
        OpenedModel o;
        o.hf = std::move(*hf);
        return o;
    }
    return open_model(a, "eval");
}

Result<EvalReport> eval_run(const OpenedModel& om, const std::vector<int>& ids, int context, const char* what) {
    EvalOptions o;
    o.context = context;
    auto last = std::chrono::steady_clock::now();
    o.progress = [&](int done, int total) {  // a line every 5 s on a long text
        if (seconds_since(last) < 5 && done < total) return;
        last = std::chrono::steady_clock::now();
        std::fprintf(stderr, "eval%s: window %d of %d\n", what, done, total);
    };
    return model_eval(om.model(), ids, o);
}

}  // namespace

int cmd_eval(const Args& a) {
    if (a.has("text-file") == a.has("ids")) return usage("eval needs --text-file F or --ids 1,17,... (one of them)");
    if (!a.has("json")) return usage("eval needs --json G (the file to write)");
    Interventions iv;
    if (int rc = interventions_from_args(a, iv)) return rc;
    auto om = eval_open(a);
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
    nlohmann::json baseline;
    if (a.flag("baseline")) {
        auto b = eval_run(*om, ids, context, " (unchanged)");
        if (!b) return fail("eval: " + b.status.msg);
        baseline = report_json(*b);
    }
    if (Status s = om->intervene(iv); !s) return fail("eval: " + s.msg);
    auto r = eval_run(*om, ids, context, "");
    if (!r) return fail("eval: " + r.status.msg);
    nlohmann::json j = report_json(*r);
    j["interventions"] = iv.describe();
    if (!baseline.is_null()) j["baseline"] = baseline;
    const std::string path = a.opt.at("json");
    Status s = atomic_file_write(path, [&](std::FILE* f) {
        const std::string out = j.dump(1) + "\n";
        std::fwrite(out.data(), 1, out.size(), f);
        return Status::ok();
    });
    if (!s) return fail("eval: " + s.msg);
    std::fprintf(stderr, "eval: %lld tokens in %d windows of %d, routing %s: perplexity %.4f, %.0f active parameters per token of %.0f, forward %.2f s -> %s\n",
                 (long long)r->tokens, r->windows, context, iv.describe().c_str(), r->perplexity, r->active_params,
                 r->total_params, r->forward_s, path.c_str());
    return 0;
}

}  // namespace cli
