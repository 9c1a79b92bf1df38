// routelab-cli tune-router: router-only fine-tuning of a model on the user's text (issue 24;
// train/router_tune.h):
//   tune-router --model DIR | --checkpoint F --text-file F | --ids 1,17,... --json G [--steps N] [--lr L]
//               [--batch B] [--context N] [--held-out S] [--save F]
// The text's last share S (0.1) is held out: its perplexity and load CV before and after. The memory it
// takes is said before the first step and refused when it is more than the machine has.
#include <cstdio>

#include "cli.h"
#include "infer/eval.h"
#include "io/hf_model.h"
#include "io/router_weights.h"
#include "train/memory.h"
#include "train/router_tune.h"

using namespace rl;

namespace cli {

namespace {

nlohmann::json eval_json(const EvalReport& r) {
    double cv = 0;
    for (const EvalLayer& l : r.layers) cv += l.load_cv;
    return {{"perplexity", r.perplexity}, {"tokens", r.tokens}, {"load_cv", r.layers.empty() ? 0 : cv / r.layers.size()}};
}

// The options of the flags: 0, or the exit code after the message.
int tune_options(const Args& a, int seq_len, RouterTuneOptions& o, double& held_out) {
    long long v;
    double x;
    o.context = std::min(256, seq_len);
    if (a.has("steps") && !parse_int(a.opt.at("steps"), 1, 1000000, v)) return usage("--steps must be an integer in 1..1000000");
    if (a.has("steps")) o.steps = (int)v;
    if (a.has("batch") && !parse_int(a.opt.at("batch"), 1, 1024, v)) return usage("--batch must be an integer in 1..1024");
    if (a.has("batch")) o.batch = (int)v;
    if (a.has("context") && !parse_int(a.opt.at("context"), 2, seq_len, v))
        return usage("--context must be an integer in 2.." + std::to_string(seq_len) + " (the model's)");
    if (a.has("context")) o.context = (int)v;
    if (a.has("lr") && !(parse_float(a.opt.at("lr"), x) && x > 0 && x < 1)) return usage("--lr must be a number in (0, 1), such as 0.001");
    if (a.has("lr")) o.lr = (float)x;
    held_out = 0.1;
    if (a.has("held-out") && !(parse_float(a.opt.at("held-out"), x) && x > 0 && x < 0.9))
        return usage("--held-out must be a share in (0, 0.9), such as 0.1");
    if (a.has("held-out")) held_out = x;
    return 0;
}

}  // namespace

int cmd_tune_router(const Args& a) {
    if (a.has("text-file") == a.has("ids")) return usage("tune-router needs --text-file F or --ids 1,17,... (one of them)");
    if (!a.has("json")) return usage("tune-router needs --json G (the file to write the report to)");
    auto om = eval_open(a, "tune-router");
    if (!om) return fail(om.status.msg);
    Model& m = om->model_mut();
    RouterTuneOptions o;
    double share = 0;
    if (int rc = tune_options(a, m.cfg.seq_len, o, share)) return rc;
    std::vector<int> ids;
    if (int rc = eval_ids(a, *om, ids)) return rc;
    if (std::string why = router_tune_blocker(m); !why.empty()) return fail("tune-router: " + why);
    const size_t cut = ids.size() - (size_t)(ids.size() * share);
    const std::vector<int> train(ids.begin(), ids.begin() + (ptrdiff_t)cut), held(ids.begin() + (ptrdiff_t)cut, ids.end());
    if (train.size() < (size_t)o.context + 1 || held.size() < 2)
        return fail("tune-router: " + std::to_string(ids.size()) + " tokens are too few for --context " + std::to_string(o.context) +
                    " and a held-out share; give it a longer text");
    const RouterTuneMemory mem = router_tune_memory(m, o.batch, o.context);
    const MemoryAvailable avail = memory_available();
    std::fprintf(stderr, "tune-router: memory: weights %.2f GB, router gradients %.1f MB, AdamW moments %.1f MB, "
                         "activations %.2f GB: %.2f GB (%.1f GB available)\n",
                 mem.weights / 1e9, mem.grads / 1e6, mem.moments / 1e6, mem.activations / 1e9, mem.total() / 1e9, avail.bytes / 1e9);
    // The weights of a model folder are already mapped (and counted in what is available): the rest must fit.
    if (avail.bytes > 0 && mem.total() - (om->hf ? mem.weights : 0) > avail.bytes)
        return fail("tune-router: it needs more memory than the machine has; use a smaller --context or --batch");
    if (om->hf)
        if (Status s = hf_probe_fits(*om->hf, o.context); !s) return fail(s.msg + " (or pass a smaller --context)");
    const int context = std::min(512, m.cfg.seq_len);
    auto before = model_eval(m, held, {.context = context});
    if (!before) return fail("tune-router: " + before.status.msg);
    o.progress = [&](int step, double loss) {
        if (step == 1 || step % 10 == 0 || step == o.steps) std::fprintf(stderr, "tune-router: step %d: loss %.4f\n", step, loss);
    };
    auto r = router_tune(m, train, o);
    if (!r) return fail("tune-router: " + r.status.msg);
    auto after = model_eval(m, held, {.context = context});
    if (!after) return fail("tune-router: " + after.status.msg);
    nlohmann::json steps = nlohmann::json::array();
    for (const RouterTuneStep& s : r->steps)
        steps.push_back({{"step", s.step}, {"loss", s.loss}, {"grad_norm", s.grad_norm}, {"load_cv", s.load_cv}, {"seconds", s.seconds}});
    const nlohmann::json j = {
        {"trainable_params", r->trainable}, {"frozen_params", r->frozen}, {"tensors", r->tensors},
        {"memory", {{"weights", mem.weights}, {"grads", mem.grads}, {"moments", mem.moments}, {"activations", mem.activations},
                    {"total", mem.total()}}},
        {"batch", o.batch}, {"context", o.context}, {"lr", o.lr}, {"train_tokens", train.size()},
        {"seconds_per_step", r->seconds_per_step}, {"steps", steps},
        {"held_out", {{"before", eval_json(*before)}, {"after", eval_json(*after)}}}};
    if (!write_json(a.opt.at("json"), j, "tune-router")) return 1;
    if (a.has("save"))
        if (Status s = router_weights_save(m, a.opt.at("save")); !s) return fail("tune-router: " + s.msg);
    std::printf("%lld router parameters tuned (%lld frozen) in %d steps, %.3f s a step; held-out perplexity %.4f -> %.4f, "
                "load CV %.4f -> %.4f\n",
                (long long)r->trainable, (long long)r->frozen, (int)r->steps.size(), r->seconds_per_step, before->perplexity,
                after->perplexity, eval_json(*before)["load_cv"].get<double>(), eval_json(*after)["load_cv"].get<double>());
    return 0;
}

}  // namespace cli
