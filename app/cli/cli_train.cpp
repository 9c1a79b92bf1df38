// routelab-cli train and train --resume: the training loop, its files in --out and its row in the run store.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "backend/ops.h"
#include "cli_train.h"
#include "config/presets.h"
#include "infer/generate.h"
#include "io/resume.h"
#include "io/run_recorder.h"
#include "metrics/metrics_csv.h"
#include "metrics/routing_report.h"
#include "metrics/routing_summary.h"
#include "model/model.h"
#include "train/memory.h"
#include "train/trainer.h"
#include "util/atomic_file.h"

using namespace rl;
namespace fs = std::filesystem;

namespace cli {

// --workspace DIR (default: the per-user workspace the window uses) -> its run store, opened.
StoreLink store_open(const Args& a) {
    StoreLink l;
    const std::string ws = workspace_of(a);
    l.path = workspace_store_path(ws);
    auto st = workspace_open_store(ws);
    if (!st) std::fprintf(stderr, "warning: %s; this run is not stored (its files in --out are written)\n", st.status.msg.c_str());
    else l.rec.store = std::move(*st);
    return l;
}

// A new row for the run, and out/run_store naming it, so --resume continues the same row.
void store_begin(StoreLink& l, const TrainState& s, const std::string& out, const RunStart& start) {
    if (!recorder_begin(l.rec, s.cfg.name, config_to_json(s.cfg), start)) return l.said();
    if (Status w = atomic_file_write(out + "/run_store", l.path + "\n" + std::to_string(l.rec.id) + "\n"); !w)
        std::fprintf(stderr, "warning: %s (--resume will start a new row)\n", w.msg.c_str());
}

namespace {

void print_progress(const TrainState& s, const StepStats& st, float val, float tok_s, double elapsed, int first, bool tty) {
    const int steps = s.cfg.train.steps, width = 24, filled = width * st.step / std::max(1, steps);
    const double eta = elapsed / std::max(1, st.step - first) * (steps - st.step);
    std::fprintf(stderr, "%s[%s%s] step %d/%d  loss %.4f  val %.4f  %.0f tok/s  ETA %s%s", tty ? "\r" : "",
                 std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(), st.step, steps, st.loss, val,
                 tok_s, fmt_eta(eta).c_str(), tty ? "  " : "\n");
}

constexpr int k_store_every = 10;  // steps between curve writes to the store (a killed run keeps all but these)

// A step whose loss or gradient went NaN or infinite was not applied (trainer_step): the rows so far
// go to metrics.csv, the weights of the step before are saved as the run's checkpoint, and the run is
// stored failed, naming the step.
int stop_non_finite(TrainState& s, const StepStats& bad, const std::ostringstream& csv, StoreLink& link, const std::string& dir) {
    if (Status w = atomic_file_write(dir + "/metrics.csv", csv.str()); !w) std::fprintf(stderr, "warning: %s\n", w.msg.c_str());
    const std::string ck = dir + "/checkpoint.safetensors";
    const Status sv = run_save(s, ck);
    if (sv) link.checkpoint(ck, s.step);
    const std::string why = non_finite_message(bad) + "; " +
                            (sv ? "the weights of step " + std::to_string(s.step) + " are saved in " + ck
                                : "saving the last good weights failed: " + sv.msg) +
                            " (lower train.lr, raise train.warmup_steps or set train.grad_clip)";
    if (isatty(STDERR_FILENO)) std::fprintf(stderr, "\n");  // below the progress bar
    link.end(RunStatus::failed, why, -1);
    return fail(why);
}

// Runs the steps left (from s.step to train.steps, or to stop_at when > 0), one metrics.csv row each, with a progress line
// (always on a terminal, at evals otherwise; none when quiet). Every eval also saves the run
// (checkpoint + training state, so --resume continues it exactly). 0, or 1 when a step was not finite.
int train_steps(TrainState& s, std::ostringstream& csv, TrainOutcome& out, StoreLink& link, const std::string& dir, bool quiet,
                int stop_at) {
    const bool tty = !quiet && isatty(STDERR_FILENO);
    const int steps = s.cfg.train.steps, first = s.step, stop = stop_at > 0 ? std::min(stop_at, steps) : steps;
    const auto t0 = std::chrono::steady_clock::now();
    float ema_tok = 0;
    while (s.step < stop) {
        StepStats& last = out.last = trainer_step(s);
        if (last.non_finite) return stop_non_finite(s, last, csv, link, dir);
        if (last.step > steps - k_routing_summary_steps) out.tail.push_back(last);
        out.train_tokens += (double)s.cfg.train.batch_size * s.cfg.model.seq_len;
        ema_tok = ema_tok == 0 ? last.tok_per_s : 0.9f * ema_tok + 0.1f * last.tok_per_s;
        const bool eval_now = last.step % s.cfg.train.eval_every == 0 || last.step == stop;
        if (eval_now) out.val = trainer_eval(s);
        link.add(last);
        csv << metrics_csv_row(last, eval_now ? std::optional<float>(out.val) : std::nullopt);
        if (last.step % k_store_every == 0) link.flush();
        if (eval_now && last.step < stop) {  // the final save is finish_run's, a pause's run_training's
            // A killed run's metrics.csv holds every row up to its last save (rewritten whole each time).
            if (Status w = atomic_file_write(dir + "/metrics.csv", csv.str()); !w) std::fprintf(stderr, "warning: %s\n", w.msg.c_str());
            const std::string ck = dir + "/checkpoint.safetensors";
            if (Status sv = run_save(s, ck); !sv) std::fprintf(stderr, "warning: %s\n", sv.msg.c_str());
            else link.checkpoint(ck, last.step);
        }
        if (tty || (eval_now && !quiet)) print_progress(s, last, out.val, ema_tok, seconds_since(t0), first, tty);
    }
    if (tty) std::fprintf(stderr, "\n");
    out.seconds = seconds_since(t0);
    if (s.step == first) out.val = trainer_eval(s);
    return 0;
}

// The routing summary (MoH / MoE) and, for MoE, the specialization next to a random router:
// printed, merged into summary, and the full tables written to specialization.json.
void summarize_routing(const TrainState& s, const TrainOutcome& o, const std::string& out, nlohmann::json& summary) {
    const RoutingSummary r = routing_summary_build(s.cfg.model, o.tail);
    std::fputs(routing_summary_text(r).c_str(), stdout);
    summary.update(routing_summary_to_json(r));
    if (s.cfg.model.moe.kind == FfnRouting::dense) return;
    constexpr int k_spec_tokens = 16 * 80 * 8;
    const SpecializationBaseline b =
        specialization_baseline_measure(s.model, s.data->tok, s.data->val, k_spec_tokens, s.cfg.train.seed + 99);
    std::fputs(specialization_baseline_text(b).c_str(), stdout);
    summary["specialization"] = specialization_baseline_to_json(b);
    if (Status w = atomic_file_write(out + "/specialization.json", specialization_to_json(b.trained) + "\n"); !w)
        std::fprintf(stderr, "warning: %s\n", w.msg.c_str());
}

// After training: the checkpoint and training state, summary.json (with the routing summary unless
// quiet) and the closing lines; the store row finished.
int finish_run(const TrainState& s, const TrainOutcome& o, const std::string& out, double setup_s, StoreLink& link, bool quiet) {
    const std::string ckpt = out + "/checkpoint.safetensors";
    if (Status sv = run_save(s, ckpt); !sv) {
        link.end(RunStatus::failed, sv.msg, o.val);
        return fail(sv.msg);
    }
    link.checkpoint(ckpt, s.step);
    const double tok_s = o.seconds > 0 ? o.train_tokens / o.seconds : 0.0;
    const double half_ln_v = 0.5 * std::log((double)s.cfg.model.vocab_size);
    nlohmann::json summary = {
        {"preset", s.cfg.name}, {"steps", s.step}, {"final_train_loss", o.last.loss}, {"final_val_loss", o.val},
        {"vocab_size", s.cfg.model.vocab_size}, {"half_ln_vocab", half_ln_v},
        {"parameters", model_param_count(s.model)}, {"tokens_per_s", tok_s},
        {"seconds", o.seconds}, {"setup_seconds", setup_s}, {"checkpoint", ckpt},
        {"tokenizer", s.data->tokenizer_note}, {"device", s.model.ops->device}};
    if (!quiet) summarize_routing(s, o, out, summary);
    // The estimate against what the run really took: the resident set before the model was made (the
    // tokens are in it already) plus the rest of the estimate is the predicted peak.
    const double predicted = s.rss_before + s.memory.total() - s.memory.data, peak = memory_peak_rss_bytes();
    summary["memory"] = {{"estimate_bytes", s.memory.total()}, {"rss_before_bytes", s.rss_before},
                         {"predicted_peak_bytes", predicted}, {"peak_rss_bytes", peak},
                         {"prepare_predicted_bytes", s.prepare_predicted}, {"prepare_peak_rss_bytes", s.prepare_peak},
                         {"prepare_seconds", s.prepare_seconds}};
    link.end(RunStatus::finished, "", o.val);
    link.token_sets(s);  // after the end: a failed write loses the sets, never the run's finish
    if (!write_file(out, "summary.json", summary.dump(2) + "\n", "disk full? choose another --out")) return 1;
    if (quiet) return 0;
    std::printf("done: %d steps in %.1f s (%.0f tok/s), train loss %.4f, val loss %.4f (0.5*ln V = %.4f)\n", s.step,
                o.seconds, tok_s, o.last.loss, o.val, half_ln_v);
    std::printf("wrote %s/{config.json,metrics.csv,checkpoint.safetensors,checkpoint.train-STEP.safetensors,summary.json}\n",
                out.c_str());
    if (link.rec.store) std::printf("stored as run %lld in %s\n", (long long)link.rec.id, link.path.c_str());
    std::printf("memory: estimate %s, with the %s resident before the model %s predicted; peak resident %s (%+.1f%%)\n",
                memory_bytes_text(s.memory.total()).c_str(), memory_bytes_text(s.rss_before).c_str(),
                memory_bytes_text(predicted).c_str(), memory_bytes_text(peak).c_str(), 100 * (predicted - peak) / std::max(1.0, peak));
    if (s.prepare_predicted > 0)
        std::printf("memory: preparing the corpus predicted %s, peak resident %s (%+.1f%%) in %.1f s\n",
                    memory_bytes_text(s.prepare_predicted).c_str(), memory_bytes_text(s.prepare_peak).c_str(),
                    100 * (s.prepare_predicted - s.prepare_peak) / std::max(1.0, s.prepare_peak), s.prepare_seconds);
    return 0;
}

// --sample: the trained model answers a fixed prompt (skipped where generation is not available).
void print_sample(const TrainState& s) {
    SampleOptions o;
    o.temperature = 0.8f;
    o.top_k = 40;
    o.seed = s.cfg.train.seed;
    const std::string prompt = "User: What is the capital of France? Assistant:";
    const GenerationReport g = generate_report(s.model, s.data->tok, prompt, 40, o, s.prev_entropy);
    if (g.error.empty()) std::printf("sample: %s %s\n", prompt.c_str(), g.new_text.c_str());
}

}  // namespace

int run_training(TrainState& s, const std::string& out, StoreLink& link, double setup_s, bool quiet, TrainOutcome& o,
                 int stop_at) {
    const char* hint = "disk full or read-only? choose another --out";
    if (!write_file(out, "config.json", config_to_json(s.cfg) + "\n", hint)) return 1;
    std::vector<std::string> kept;  // a resumed run's rows up to its step (a killed run may have written more)
    if (s.step > 0) {
        std::ifstream old(out + "/metrics.csv");
        std::string line;
        std::getline(old, line);
        while (std::getline(old, line))
            if (std::atoi(line.c_str()) <= s.step) kept.push_back(line);
    }
    // Kept in memory and written whole at every save and at the end: a full disk never truncates it.
    std::ostringstream csv;
    csv << metrics_csv_header(s.cfg.model.n_layers);
    for (const auto& l : kept) csv << l << "\n";
    if (!write_file(out, "metrics.csv", csv.str(), hint)) return 1;
    if (!quiet)
        std::fprintf(stderr, "training %s: %zu parameters, vocab %d, %zu train / %zu val tokens, steps %d..%d of %dx%d\n",
                     s.cfg.name.c_str(), model_param_count(s.model), s.cfg.model.vocab_size, s.data->train.ids.size(),
                     s.data->val.ids.size(), s.step + 1, s.cfg.train.steps, s.cfg.train.batch_size, s.cfg.model.seq_len);
    if (!quiet && !s.data->tokenizer_note.empty()) std::fprintf(stderr, "%s\n", s.data->tokenizer_note.c_str());
    if (!quiet && !s.device_note.empty()) std::fprintf(stderr, "%s\n", s.device_note.c_str());
    if (!quiet) std::fprintf(stderr, "memory: %s\n", memory_estimate_text(s.memory).c_str());
    if (int rc = train_steps(s, csv, o, link, out, quiet, stop_at); rc) return rc;
    if (Status w = atomic_file_write(out + "/metrics.csv", csv.str()); !w) {
        link.end(RunStatus::failed, w.msg, o.val);
        return fail(w.msg);
    }
    if (s.step < s.cfg.train.steps) {  // paused at stop_at: saved with its training state, continued by resume
        const std::string ck = out + "/checkpoint.safetensors";
        if (Status sv = run_save(s, ck); !sv) {  // a pause that cannot be resumed is a failed run
            link.end(RunStatus::failed, "could not be saved at step " + std::to_string(s.step) + ": " + sv.msg, o.val);
            return fail(sv.msg);
        }
        link.checkpoint(ck, s.step);
        link.end(RunStatus::interrupted, "paused at step " + std::to_string(s.step) + " of " + std::to_string(s.cfg.train.steps) +
                                             " (routelab-cli train --resume " + out + " goes on)", o.val);
        return 0;
    }
    return finish_run(s, o, out, setup_s, link, quiet);
}

namespace {

// --resume DIR: the run in DIR picks up at its last saved step (exactly, with its training state),
// to train.steps, or for --steps N more steps; its store row (DIR/run_store) continues.
int cmd_resume(const Args& a) {
    if (a.has("preset") || a.has("config") || !a.sets.empty() || a.has("corpus") || a.has("batch") || a.has("seed"))
        return usage("--resume takes the run's own config; only --steps N (N more steps) and --workspace go with it");
    const std::string dir = a.opt.at("resume"), ck = dir + "/checkpoint.safetensors";
    if (!fs::exists(ck)) return fail("nothing to resume in '" + dir + "': no checkpoint.safetensors there (a run saves one at every eval)");
    const auto t_start = std::chrono::steady_clock::now();
    auto r = run_resume(ck);
    if (!r) return fail(r.status.msg);
    TrainState& s = *r->state;
    if (a.has("steps")) {
        long long v;
        if (!parse_int(a.opt.at("steps"), 1, 100000000, v)) return usage("--steps must be a positive integer (more steps)");
        s.cfg.train.steps = s.step + (int)v;
    }
    if (s.step >= s.cfg.train.steps)
        return fail("the run in '" + dir + "' already reached step " + std::to_string(s.step) + " of " +
                    std::to_string(s.cfg.train.steps) + "; --steps N trains N more");
    std::fprintf(stderr, "resuming %s at step %d of %d: %s\n", s.cfg.name.c_str(), s.step, s.cfg.train.steps,
                 r->exact ? "weights, AdamW moments, sampler RNG and window state restored (exact)" : r->note.c_str());
    StoreLink link;
    std::ifstream rs(dir + "/run_store");
    std::string db;
    long long id = 0;
    // The run's row continues unless --workspace names another store (the same one by another path is the same).
    auto same_store = [&](const std::string& path) {
        std::error_code e;
        return !a.has("workspace") || fs::equivalent(path, workspace_store_path(workspace_of(a)), e);
    };
    if (std::getline(rs, db) && rs >> id && same_store(db)) {
        link.path = db;
        if (auto st = run_store_open(db); st) link.rec.store = std::move(*st);
        if (!recorder_reopen(link.rec, id)) link.rec = {};
    }
    if (!link.rec.store) {  // no row to continue (or another workspace's store asked for): a new row
        link = store_open(a);
        store_begin(link, s, dir, {});
    }
    TrainOutcome o;
    return run_training(s, dir, link, seconds_since(t_start), false, o, 0);
}

}  // namespace

int cmd_train(const Args& a) {
    if (a.has("resume")) return cmd_resume(a);
    auto cfg = load_config(a);
    if (!cfg) return fail(cfg.status.msg);
    if (int rc = apply_train_flags(a, *cfg); rc) return rc;
    const std::string out = a.has("out") ? a.opt.at("out") : "runs/" + (cfg->name.empty() ? "run" : cfg->name);
    std::error_code ec;
    fs::create_directories(out, ec);
    if (ec) return fail("cannot create output directory '" + out + "': " + ec.message() + " (choose another --out)");

    for (const auto& w : config_warnings(*cfg)) std::fprintf(stderr, "warning: %s\n", w.c_str());
    const auto t_start = std::chrono::steady_clock::now();
    // A user's text takes seconds to minutes to read, train a tokenizer on and encode: each stage is
    // said as it starts, and reading and encoding every tenth of the way.
    DataProgress say;
    if (cfg->data.corpus != "embedded")
        say = [last = std::string(), tenth = -1](const std::string& stage, double f) mutable {
            if (f < 0 && stage.rfind("reading ", 0) == 0) return;  // said with its first fraction: a file that cannot be read says only why
            const int t = f < 0 ? -1 : (int)(f * 10);
            if (stage == last && t == tenth) return;
            if (stage != last) std::fprintf(stderr, "%s...\n", stage.c_str());
            else if (t > 0 && t < 10) std::fprintf(stderr, "  %d%%\n", 10 * t);
            last = stage, tenth = t;
        };
    auto st = trainer_create(*cfg, say);
    if (!st) return fail(st.status.msg);
    TrainState& s = **st;
    if (a.has("inject-nan-at")) {
        long long v;
        if (!parse_int(a.opt.at("inject-nan-at"), 1, 100000000, v)) return usage("--inject-nan-at must be a step number (1 or more)");
        s.inject_nan_at = (int)v;
    }
    StoreLink link = store_open(a);
    store_begin(link, s, out, {});
    TrainOutcome o;
    if (int rc = run_training(s, out, link, seconds_since(t_start), false, o, 0); rc) return rc;
    if (a.flag("sample")) print_sample(s);
    return 0;
}

}  // namespace cli
