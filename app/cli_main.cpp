// routelab-cli: presets, params, train, generate, bench. Command and flag names are fixed
// (scripts and other tools call them). Exit codes: 0 ok, 1 a user error (message on stderr),
// 2 bad usage.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/device.h"
#include "config/config.h"
#include "config/presets.h"
#include "config/sweep.h"
#include "infer/cost.h"
#include "infer/generate.h"
#include "infer/speed.h"
#include "io/checkpoint.h"
#include "io/export.h"
#include "lessons/lessons.h"
#include "io/resume.h"
#include "io/run_store.h"
#include "metrics/metrics_csv.h"
#include "metrics/routing_report.h"
#include "metrics/routing_summary.h"
#include "model/model.h"
#include "train/memory.h"
#include "train/trainer.h"
#include "util/atomic_file.h"

using namespace rl;
namespace fs = std::filesystem;

namespace {

const char* k_usage_head = "routelab-cli — train and inspect RouteLab transformers from the terminal\n\n";
const char* k_usage_set = "--set takes any config key, e.g. --set model.attention.use_wo=true --set train.lr=0.001\n";
std::string usage_text();  // every command's usage, from the command table below

struct Args {
    std::string cmd;
    std::map<std::string, std::string> opt;
    std::vector<std::string> sets;
    std::vector<std::string> flags;
    std::vector<std::string> pos;  // positional words (runs: the subcommand and its id)
    bool has(const std::string& k) const { return opt.count(k) > 0; }
    bool flag(const std::string& k) const { return std::find(flags.begin(), flags.end(), k) != flags.end(); }
};

int fail(const std::string& msg) {
    std::cerr << "error: " << msg << "\n";
    return 1;
}
int usage(const std::string& msg) {
    std::cerr << "error: " << msg << "\n\n" << usage_text();
    return 2;
}

bool parse_int(const std::string& s, long long lo, long long hi, long long& out) {
    try {
        size_t pos = 0;
        out = std::stoll(s, &pos);
        return pos == s.size() && out >= lo && out <= hi;
    } catch (...) {
        return false;
    }
}
bool parse_float(const std::string& s, double& out) {
    try {
        size_t pos = 0;
        out = std::stod(s, &pos);
        return pos == s.size() && std::isfinite(out);
    } catch (...) {
        return false;
    }
}

// --preset / --config plus --set overrides; validated once, here.
Result<Config> load_config(const Args& a) {
    Result<Config> cfg = Status::error("");
    if (a.has("preset") && a.has("config")) return Status::error("give --preset or --config, not both");
    if (a.has("config")) cfg = config_load(a.opt.at("config"));
    else cfg = preset_load(a.has("preset") ? a.opt.at("preset") : "default");
    if (!cfg) return cfg.status;
    for (const auto& s : a.sets)
        if (Status st = config_apply_override(*cfg, s); !st) return st;
    if (a.has("device"))  // --device D is --set train.device=D
        if (Status st = config_apply_override(*cfg, "train.device=" + a.opt.at("device")); !st) return st;
    if (Status st = config_validate(*cfg); !st) return st;
    return cfg;
}

// Resolves vocab_size the way training will: from the tokenizer built on the configured corpus.
Result<int> resolve_vocab(const Config& cfg) {
    if (cfg.model.vocab_size > 0) return cfg.model.vocab_size;
    auto ds = dataset_build(cfg.data);
    if (!ds) return ds.status;
    return ds->tok.vocab_size();
}

int cmd_presets() {
    for (const auto& name : preset_names()) {
        auto cfg = preset_load(name);
        std::cout << name << "\n    " << (cfg ? cfg->description : cfg.status.msg) << "\n";
    }
    return 0;
}

int cmd_params(const Args& a) {
    auto cfg = load_config(a);
    if (!cfg) return fail(cfg.status.msg);
    if (a.has("vocab-size")) {
        long long v;
        if (!parse_int(a.opt.at("vocab-size"), 1, 1000000, v)) return usage("--vocab-size must be an integer in 1..1000000");
        cfg->model.vocab_size = (int)v;
    }
    auto v = resolve_vocab(*cfg);
    if (!v) return fail(v.status.msg);
    cfg->model.vocab_size = *v;
    Layout L = model_param_layout(cfg->model);
    size_t total = 0;
    nlohmann::json j = nlohmann::json::array();
    for (const auto& s : L.specs()) {
        total += s.numel;
        j.push_back({{"name", s.name}, {"shape", s.shape}, {"count", s.numel}});
    }
    // What training this config would hold (train/memory.h); the tokens are not known without the corpus.
    const MemoryEstimate mem = memory_estimate(*cfg);
    const MemoryAvailable avail = memory_available();
    if (a.flag("json")) {
        const nlohmann::json m = {{"total_bytes", mem.total()},   {"parameters_bytes", mem.params},
                                  {"gradients_bytes", mem.grads}, {"optimizer_bytes", mem.optimizer},
                                  {"activations_bytes", mem.activations}, {"measure_bytes", mem.measure}, {"runtime_bytes", mem.runtime},
                                  {"available_bytes", avail.bytes}, {"available_source", avail.source}};
        std::cout << nlohmann::json{{"tensors", j}, {"vocab_size", *v}, {"memory", m}, {"total", total}}.dump(2) << "\n";
        return 0;
    }
    for (const auto& s : L.specs()) {
        std::string shape;
        for (size_t i = 0; i < s.shape.size(); i++) shape += (i ? "x" : "") + std::to_string(s.shape[i]);
        std::printf("%-34s %-12s %10zu\n", s.name.c_str(), shape.c_str(), s.numel);
    }
    std::printf("vocab_size: %d\n", *v);
    std::printf("memory to train: %s; %s available (%s)\n", memory_estimate_text(mem).c_str(), memory_bytes_text(avail.bytes).c_str(),
                avail.source.c_str());
    std::printf("total: %zu\n", total);
    return 0;
}

std::string fmt_eta(double s) {
    char b[32];
    std::snprintf(b, sizeof b, "%d:%02d", (int)s / 60, (int)s % 60);
    return b;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// --steps, --batch, --seed and --corpus onto the loaded config, then the config check again.
// 0, or the exit code of the bad value.
int apply_train_flags(const Args& a, Config& cfg) {
    long long v;
    if (a.has("steps")) {
        if (!parse_int(a.opt.at("steps"), 0, 100000000, v)) return usage("--steps must be a non-negative integer");
        cfg.train.steps = (int)v;
    }
    if (a.has("batch")) {
        if (!parse_int(a.opt.at("batch"), 1, 4096, v)) return usage("--batch must be an integer in 1..4096");
        cfg.train.batch_size = (int)v;
    }
    if (a.has("seed")) {
        if (!parse_int(a.opt.at("seed"), 0, 4294967295LL, v)) return usage("--seed must be a non-negative integer");
        cfg.train.seed = (unsigned)v;
    }
    if (a.has("corpus")) cfg.data.corpus = a.opt.at("corpus");
    if (Status s = config_validate(cfg); !s) return fail(s.msg);
    return 0;
}

// Writes `text` to dir/name whole or not at all (the old file stays); false after the message.
bool write_file(const std::string& dir, const std::string& name, const std::string& text, const char* hint) {
    if (Status s = atomic_file_write(dir + "/" + name, text); !s) {
        fail(s.msg + " (" + hint + ")");
        return false;
    }
    return true;
}

// What the training loop leaves for the summary.
struct TrainOutcome {
    StepStats last;
    std::vector<StepStats> tail;  // the final k_routing_summary_steps steps, oldest first
    float val = NAN;              // validation loss at the last eval
    double train_tokens = 0, seconds = 0;
};

// The run's row in the workspace's run store (docs/architecture.md §12): begun with the run, its curve
// stored every few steps, each checkpoint recorded, its status set at the end. A store that cannot
// be opened or written is a warning: the run itself and its files in --out go on.
struct StoreLink {
    std::optional<RunStore> store;
    std::string path;
    int64_t id = 0;
    std::vector<CurvePoint> pending;
    void warn(const Status& s) {
        std::fprintf(stderr, "warning: %s\n", s.msg.c_str());
        store.reset();  // one warning, then the run goes on without the store
    }
    void add(const StepStats& st) {
        if (store) pending.push_back(curve_point(st));
    }
    void flush() {
        if (!store || pending.empty()) return;
        if (Status s = run_store_append(*store, id, pending); !s) return warn(s);
        pending.clear();
    }
    void checkpoint(const std::string& file, int step) {
        flush();
        if (store)
            if (Status s = run_store_set_checkpoint(*store, id, fs::absolute(file).string(), step); !s) warn(s);
    }
    void end(RunStatus status, const std::string& message, float val) {
        flush();
        if (!store) return;
        Status s = status == RunStatus::finished ? run_store_finish(*store, id, val) : run_store_end(*store, id, status, message, val);
        if (!s) warn(s);
    }
};

// --workspace DIR (default: the per-user workspace the window uses) -> DIR/runs.sqlite, opened.
StoreLink store_open(const Args& a) {
    StoreLink l;
    const std::string ws = a.has("workspace") ? a.opt.at("workspace") : default_workspace();
    std::error_code ec;
    fs::create_directories(ws, ec);
    l.path = (fs::path(ws) / "runs.sqlite").string();
    auto st = run_store_open(l.path);
    if (!st) {
        std::fprintf(stderr, "warning: %s; this run is not stored (its files in --out are written)\n", st.status.msg.c_str());
        return l;
    }
    l.store = std::move(*st);
    return l;
}

// A new row for the run, and out/run_store naming it, so --resume continues the same row.
void store_begin(StoreLink& l, const TrainState& s, const std::string& out, const RunStart& start) {
    if (!l.store) return;
    auto id = run_store_begin(*l.store, s.cfg.name, config_to_json(s.cfg), start);
    if (!id) return l.warn(id.status);
    l.id = *id;
    if (Status w = atomic_file_write(out + "/run_store", l.path + "\n" + std::to_string(l.id) + "\n"); !w)
        std::fprintf(stderr, "warning: %s (--resume will start a new row)\n", w.msg.c_str());
}

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

// Runs the steps left (from s.step to train.steps), one metrics.csv row each, with a progress line
// (always on a terminal, at evals otherwise; none when quiet). Every eval also saves the run
// (checkpoint + training state, so --resume continues it exactly). 0, or 1 when a step was not finite.
int train_steps(TrainState& s, std::ostringstream& csv, TrainOutcome& out, StoreLink& link, const std::string& dir, bool quiet) {
    const bool tty = !quiet && isatty(STDERR_FILENO);
    const int steps = s.cfg.train.steps, first = s.step;
    const auto t0 = std::chrono::steady_clock::now();
    float ema_tok = 0;
    while (s.step < steps) {
        StepStats& last = out.last = trainer_step(s);
        if (last.non_finite) return stop_non_finite(s, last, csv, link, dir);
        if (last.step > steps - k_routing_summary_steps) out.tail.push_back(last);
        out.train_tokens += (double)s.cfg.train.batch_size * s.cfg.model.seq_len;
        ema_tok = ema_tok == 0 ? last.tok_per_s : 0.9f * ema_tok + 0.1f * last.tok_per_s;
        const bool eval_now = last.step % s.cfg.train.eval_every == 0 || last.step == steps;
        if (eval_now) out.val = trainer_eval(s);
        link.add(last);
        csv << metrics_csv_row(last, eval_now ? std::optional<float>(out.val) : std::nullopt);
        if (last.step % k_store_every == 0) link.flush();
        if (eval_now && last.step < steps) {  // the final save is finish_run's
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
    if (!write_file(out, "summary.json", summary.dump(2) + "\n", "disk full? choose another --out")) return 1;
    if (quiet) return 0;
    std::printf("done: %d steps in %.1f s (%.0f tok/s), train loss %.4f, val loss %.4f (0.5*ln V = %.4f)\n", s.step,
                o.seconds, tok_s, o.last.loss, o.val, half_ln_v);
    std::printf("wrote %s/{config.json,metrics.csv,checkpoint.safetensors,checkpoint.train-STEP.safetensors,summary.json}\n",
                out.c_str());
    if (link.store) std::printf("stored as run %lld in %s\n", (long long)link.id, link.path.c_str());
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

// One run into `out`: config.json, metrics.csv (resumed: its rows up to the resumed step kept),
// the steps, the final files; the store row follows it.
int run_training(TrainState& s, const std::string& out, StoreLink& link, double setup_s, bool quiet, TrainOutcome& o) {
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
    if (int rc = train_steps(s, csv, o, link, out, quiet); rc) return rc;
    if (Status w = atomic_file_write(out + "/metrics.csv", csv.str()); !w) {
        link.end(RunStatus::failed, w.msg, o.val);
        return fail(w.msg);
    }
    return finish_run(s, o, out, setup_s, link, quiet);
}

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
    if (std::getline(rs, db) && rs >> id && !a.has("workspace")) {
        link.path = db;
        if (auto st = run_store_open(db); st && run_store_reopen(*st, id)) link.store = std::move(*st), link.id = id;
    }
    if (!link.store) {  // no row to continue (or another workspace asked for): a new row
        link = store_open(a);
        store_begin(link, s, dir, {});
    }
    TrainOutcome o;
    return run_training(s, dir, link, seconds_since(t_start), false, o);
}

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
    if (int rc = run_training(s, out, link, seconds_since(t_start), false, o); rc) return rc;
    if (a.flag("sample")) print_sample(s);
    return 0;
}

// ---- sweep: the points of a grid or random search, one run each ----

int cmd_sweep(const Args& a) {
    if (!a.has("grid")) return usage("sweep needs --grid F (a JSON sweep: {\"preset\": P, \"set\": {...}, \"grid\": {...}})");
    std::ifstream in(a.opt.at("grid"));
    if (!in) return fail("cannot read sweep file '" + a.opt.at("grid") + "'");
    std::stringstream text;
    text << in.rdbuf();
    auto sw = sweep_parse(text.str(), fs::path(a.opt.at("grid")).stem().string());
    if (!sw) return fail(sw.status.msg + " (in " + a.opt.at("grid") + ")");
    const std::string base = a.has("out") ? a.opt.at("out") : "runs/sweep-" + sw->name;
    StoreLink link = store_open(a);
    const int n = (int)sw->points.size();
    int failed = 0;
    std::fprintf(stderr, "sweep %s: %d points%s\n", sw->name.c_str(), n,
                 link.store ? (", stored in " + link.path).c_str() : "");
    for (int i = 0; i < n; i++) {
        const SweepPoint& p = sw->points[i];
        const auto t0 = std::chrono::steady_clock::now();
        auto cfg = sw->config_path.empty() ? preset_load(sw->preset) : config_load(sw->config_path);
        Status err = cfg ? Status::ok() : cfg.status;
        for (size_t k = 0; err && k < p.sets.size(); k++) err = config_apply_override(*cfg, p.sets[k]);
        if (err) err = config_validate(*cfg);
        std::unique_ptr<TrainState> state;
        if (err) {
            auto st = trainer_create(*cfg);
            if (st) state = std::move(*st);
            else err = st.status;
        }
        const std::string out = base + "/" + std::to_string(i + 1);
        std::error_code ec;
        fs::create_directories(out, ec);
        StoreLink point = link;  // each point its own row in the one store
        point.pending.clear();
        const RunStart start{sw->name, {}};
        if (!err) {  // a point that cannot run is a failed run in the store, and the sweep goes on
            failed++;
            if (point.store) {
                auto id = run_store_begin(*point.store, (cfg ? cfg->name : sw->preset), cfg ? config_to_json(*cfg) : "{}", start);
                if (id) point.id = *id, point.end(RunStatus::failed, err.msg, -1);
            }
            std::fprintf(stderr, "[%d/%d] %s: failed: %s\n", i + 1, n, p.label.c_str(), err.msg.c_str());
            continue;
        }
        TrainState& s = *state;
        store_begin(point, s, out, start);
        TrainOutcome o;
        if (run_training(s, out, point, seconds_since(t0), true, o) != 0) {
            failed++;
            std::fprintf(stderr, "[%d/%d] %s: failed (see above)\n", i + 1, n, p.label.c_str());
            continue;
        }
        std::fprintf(stderr, "[%d/%d] %s: finished, %d steps, loss %.4f, val %.4f, %.2f s%s\n", i + 1, n, p.label.c_str(),
                     s.step, o.last.loss, o.val, seconds_since(t0),
                     point.store ? (", run " + std::to_string(point.id)).c_str() : "");
    }
    std::fprintf(stderr, "sweep %s: %d of %d points finished%s\n", sw->name.c_str(), n - failed, n,
                 failed ? "; the failed ones are stored with their reason (routelab-cli runs list)" : "");
    return failed ? 1 : 0;
}

// ---- lesson: a guided experiment, concluded from the user's own run ----

int cmd_lesson(const Args& a) {
    if (a.pos.empty() || a.pos[0] == "list") {
        for (const Lesson& l : lessons()) std::printf("%-15s %s\n", l.name.c_str(), l.title.c_str());
        return 0;
    }
    const Lesson* l = lesson_find(a.pos[0]);
    if (!l) {
        std::string names;
        for (const Lesson& x : lessons()) names += (names.empty() ? "" : ", ") + x.name;
        return fail("no lesson '" + a.pos[0] + "' (there are: " + names + ")");
    }
    std::printf("# %s\n\n%s\n\n", l->title.c_str(), l->text.c_str());
    const bool tty = isatty(STDERR_FILENO);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = lesson_run(*l, [&](int run, int step, int steps) {
        if (tty && (step % 10 == 0 || step == steps))
            std::fprintf(stderr, "\r  run %d/%zu (%s): step %d/%d   ", run + 1, l->runs.size(), l->runs[run].label.c_str(), step, steps);
    });
    if (tty) std::fprintf(stderr, "\n");
    if (!r) return fail(r.status.msg);
    for (const LessonResult& x : *r)
        std::printf("run %-24s %d steps, val loss %.3f, %.0f tok/s, %.1f s\n", x.spec.label.c_str(), x.steps, x.val_loss,
                    x.tok_per_s, x.seconds);
    std::printf("\nIn the window: the %s view; look at %s.\n\nConclusion: %s\n", l->view.c_str(), l->look_at.c_str(),
                l->conclude(*r).c_str());
    std::fprintf(stderr, "lesson %s: %.1f s\n", l->name.c_str(), seconds_since(t0));
    return 0;
}

// ---- runs: the workspace's stored runs ----

std::string fmt_loss(float v) {
    char b[24];
    if (v < 0 || !std::isfinite(v)) return "-";
    std::snprintf(b, sizeof b, "%.4f", v);
    return b;
}

nlohmann::json run_json(const RunRecord& r) {
    return {{"id", r.id}, {"name", r.name}, {"status", run_status_name(r.status)}, {"status_message", r.status_message},
            {"steps", r.steps}, {"final_loss", r.final_loss}, {"val_loss", r.val_loss}, {"started", r.created},
            {"ended", r.ended}, {"corpus", r.corpus}, {"seed", r.seed}, {"sweep", r.sweep}, {"tags", r.tags},
            {"colour", r.colour}, {"checkpoint", r.checkpoint}, {"load_cv", r.load_cv}, {"head_cv", r.head_cv},
            {"dropped", r.dropped}, {"tok_per_s", r.tok_per_s}, {"wall_s", r.wall_s}};
}

int cmd_runs(const Args& a) {
    if (a.pos.empty()) return usage("runs needs list, show ID, export ID --csv F or delete ID");
    const std::string sub = a.pos[0];
    const std::string ws = a.has("workspace") ? a.opt.at("workspace") : default_workspace();
    const std::string db = (fs::path(ws) / "runs.sqlite").string();
    if (!fs::exists(db)) return fail("no run store in '" + ws + "' (runs.sqlite); train a run first or pass --workspace DIR");
    auto st = run_store_open(db);
    if (!st) return fail(st.status.msg);
    if (sub == "list") {
        if (a.pos.size() > 1) return usage("runs list takes no id");
        auto runs = run_store_list(*st);
        if (!runs) return fail(runs.status.msg);
        if (a.flag("json")) {
            nlohmann::json j = nlohmann::json::array();
            for (const auto& r : *runs) j.push_back(run_json(r));
            std::cout << j.dump(2) << "\n";
            return 0;
        }
        std::printf("%5s  %-24s %-12s %7s %10s %10s  %-20s %s\n", "id", "name", "status", "steps", "final", "val", "started", "sweep");
        for (const auto& r : *runs)
            std::printf("%5lld  %-24s %-12s %7d %10s %10s  %-20s %s\n", (long long)r.id, r.name.substr(0, 24).c_str(),
                        run_status_name(r.status), r.steps, fmt_loss(r.final_loss).c_str(), fmt_loss(r.val_loss).c_str(),
                        r.created.c_str(), r.sweep.c_str());
        return 0;
    }
    if (a.pos.size() != 2) return usage("runs " + sub + " needs a run id (routelab-cli runs list shows them)");
    long long id;
    if (!parse_int(a.pos[1], 1, (1LL << 62), id)) return usage("'" + a.pos[1] + "' is not a run id");
    auto r = run_store_get(*st, id);
    if (!r) return fail(r.status.msg);
    if (sub == "show") {
        nlohmann::json j = run_json(*r);
        j["config"] = nlohmann::json::parse(r->config_json, nullptr, false);
        auto cks = run_store_checkpoints(*st, id);
        if (cks)
            for (const auto& [step, path] : *cks) j["checkpoints"].push_back({{"step", step}, {"path", path}});
        std::cout << j.dump(2) << "\n";
        return 0;
    }
    if (sub == "export") {
        if (!a.has("csv")) return usage("runs export ID needs --csv F");
        auto c = run_store_curve(*st, id);
        if (!c) return fail(c.status.msg);
        const std::string f = a.opt.at("csv");
        if (Status w = atomic_file_write(f, curve_to_csv(*c)); !w) return fail(w.msg);
        std::fprintf(stderr, "wrote %s: %zu steps of run %lld\n", f.c_str(), c->size(), id);
        return 0;
    }
    if (sub == "delete") {
        if (r->status == RunStatus::running)
            return fail("run " + std::to_string(id) + " is running; stop it first (or it reads interrupted once its process is gone)");
        if (Status s = run_store_delete(*st, id); !s) return fail(s.msg);
        std::fprintf(stderr, "deleted run %lld (%s); its files on disk are kept\n", id, r->name.c_str());
        return 0;
    }
    return usage("runs has list, show, export and delete, not '" + sub + "'");
}

int cmd_generate(const Args& a) {
    if (!a.has("checkpoint")) return usage("generate needs --checkpoint F");
    if (!a.has("prompt")) return usage("generate needs --prompt TEXT");
    SampleOptions o;
    long long n = 50, v;
    double f;
    if (a.has("max-tokens") && !parse_int(a.opt.at("max-tokens"), 1, 100000, n)) return usage("--max-tokens must be in 1..100000");
    if (a.has("min-tokens")) {
        if (!parse_int(a.opt.at("min-tokens"), 0, 100000, v)) return usage("--min-tokens must be in 0..100000");
        o.min_new = (int)v;
    }
    if (a.has("temperature")) {
        if (!parse_float(a.opt.at("temperature"), f) || f < 0) return usage("--temperature must be >= 0 (0 = greedy)");
        o.temperature = (float)f;
    }
    if (a.has("top-k")) {
        if (!parse_int(a.opt.at("top-k"), 0, 100000000, v)) return usage("--top-k must be >= 0 (0 = off)");
        o.top_k = (int)v;
    }
    if (a.has("top-p")) {
        if (!parse_float(a.opt.at("top-p"), f) || f <= 0 || f > 1) return usage("--top-p must be in (0, 1]");
        o.top_p = (float)f;
    }
    if (a.has("seed")) {
        if (!parse_int(a.opt.at("seed"), 0, 4294967295LL, v)) return usage("--seed must be a non-negative integer");
        o.seed = (unsigned long long)v;
    }
    auto ck = checkpoint_load(a.opt.at("checkpoint"));
    if (!ck) return fail(ck.status.msg);
    LoadedCheckpoint& c = **ck;
    const std::string prompt = a.opt.at("prompt");
    const GenerationReport g = generate_report(c.model, c.tok, prompt, (int)n, o, c.info.attn_entropy);
    if (!g.error.empty()) return fail(g.error);
    std::printf("%s %s\n", prompt.c_str(), g.new_text.c_str());
    if (const std::string note = g.note(); !note.empty())
        std::fprintf(stderr, "note: %s%s\n", note.c_str(), g.new_ids.size() == 1 ? " (--min-tokens N)" : "");
    return 0;
}

int cmd_probe(const Args& a) {
    if (!a.has("checkpoint")) return usage("probe needs --checkpoint F");
    if (!a.has("text")) return usage("probe needs --text TEXT");
    auto ck = checkpoint_load(a.opt.at("checkpoint"));
    if (!ck) return fail(ck.status.msg);
    ProbeSnapshot p = probe_run((*ck)->model, (*ck)->tok, a.opt.at("text"), (*ck)->info.step);
    if (a.flag("json")) {
        std::printf("%s\n", probe_to_json(p).c_str());
        return 0;
    }
    for (size_t l = 0; l < p.layers.size(); l++) {
        std::printf("layer %zu\n", l);
        for (size_t t = 0; t < p.tokens.size(); t++) {
            std::printf("  %-14s", p.tokens[t].text.c_str());
            const auto& L = p.layers[l];
            if (!L.head_gates.empty()) {
                std::printf(" heads");
                for (float g : L.head_gates[t]) std::printf(g == 0.f ? "    . " : " %5.2f", g);
            }
            for (int s2 = 0; s2 < p.mh_heads && !L.experts.empty(); s2++) {
                std::printf("  experts");
                const size_t r = t * p.mh_heads + s2;
                for (size_t k = 0; k < L.experts[r].size(); k++) std::printf(" %d(%.2f)", L.experts[r][k], L.expert_weights[r][k]);
            }
            std::printf("\n");
        }
    }
    return 0;
}

// ---- --peer torch: the same model in PyTorch, timed in the same run (docs/benchmarks.md) ----

const char* k_torch_hint = "install it with scripts/setup.sh --with-torch (python3-torch, libopenblas0-openmp)";

// The interpreter that runs the peer: $ROUTELAB_PYTHON, else Debian's python3 (where python3-torch lives).
std::string peer_python() {
    const char* p = std::getenv("ROUTELAB_PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

std::string shell_quote(const std::string& s) {
    std::string r = "'";
    for (char ch : s) r += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
    return r + "'";
}

// 0 when the peer can run: its script is there and the interpreter finds torch (looked up, not
// imported, so this takes no time before RouteLab's own timings). Else the message and 1.
int torch_peer_available() {
    const std::string py = peer_python();
    const std::string probe =
        shell_quote(py) + " -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec(\"torch\") is None)'" +
        " >/dev/null 2>&1";
    if (std::system(probe.c_str()) != 0)
        return fail("--peer torch needs PyTorch for " + py + " (python3-torch, not found); " + k_torch_hint);
    if (!fs::exists(ROUTELAB_TORCH_PEER))
        return fail(std::string("--peer torch: the peer script ") + ROUTELAB_TORCH_PEER +
                    " is missing (run routelab-cli from its build tree)");
    return 0;
}

// Runs tests/bench/torch_peer.py on the weights speed_measure timed (same seed, same initialisation),
// saved to a temporary checkpoint with RouteLab's first-step loss on 16 random rows for its check,
// and adds its figures and RouteLab / torch ratios to j. 0, or 1 after the message.
int bench_torch_peer(const Config& cfg, const SpeedReport& r, double secs, nlohmann::json& j) {
    const ModelConfig& c = cfg.model;
    const int B = 16, T = c.seq_len, V = c.vocab_size;
    Model m;
    model_create(m, c, cfg.train.seed, cfg.train.init_std);
    std::mt19937_64 rng(7);
    std::vector<int> ids((size_t)2 * B * T);  // tokens, then targets
    for (int& x : ids) x = (int)(rng() % V);
    Activations act;
    activations_create(act, c, B, T);
    const double loss = model_forward(m, act, ids.data(), ids.data() + (size_t)B * T, B, T);  // as speed_measure's step

    std::error_code ec;
    const fs::path dir = fs::temp_directory_path(ec) / ("routelab-peer-" + std::to_string(::getpid()));
    fs::create_directories(dir, ec);
    if (ec) return fail("--peer torch: cannot create '" + dir.string() + "': " + ec.message());
    struct Cleanup { fs::path d; ~Cleanup() { std::error_code e; fs::remove_all(d, e); } } cleanup{dir};
    std::string words;  // a placeholder vocabulary of V ids: checkpoint_save stores a tokenizer, the peer reads none
    for (int i = 3; i < V; i++) words += "t" + std::to_string(i) + " ";
    auto tok = Tokenizer::train(TokenizerKind::word, {words}, 0);
    if (!tok) return fail("--peer torch: " + tok.status.msg);
    const fs::path ckpt = dir / "model.safetensors", tokens = dir / "tokens.i32", out = dir / "peer.json";
    if (Status st = checkpoint_save(ckpt.string(), m, cfg, *tok, {}); !st) return fail(st.msg);
    std::vector<int32_t> ids32(ids.begin(), ids.end());
    std::ofstream(tokens, std::ios::binary).write((const char*)ids32.data(), (std::streamsize)(ids32.size() * 4));
    char nums[128];
    std::snprintf(nums, sizeof nums, " --batch %d --loss-routelab %.17g --threads %d --seconds %.17g --repeats 3", B, loss,
                  r.threads, secs);
    const std::string cmd = shell_quote(peer_python()) + " " + shell_quote(ROUTELAB_TORCH_PEER) + " --checkpoint " +
                            shell_quote(ckpt.string()) + " --tokens " + shell_quote(tokens.string()) + nums +
                            " --json-out " + shell_quote(out.string());
    std::fflush(stdout);
    const int st = std::system(cmd.c_str());
    const int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (code == 1) return fail("--peer torch: the loss check failed (printed above): the peer computes another model");
    if (code == 2) return fail("--peer torch: the peer does not implement this config (printed above)");
    if (code == 3) return fail("--peer torch: " + peer_python() + " cannot import torch; " + k_torch_hint);
    if (code != 0) return fail("--peer torch: tests/bench/torch_peer.py failed (exit " + std::to_string(code) + ")");
    std::ifstream in(out);
    const nlohmann::json p = nlohmann::json::parse(in, nullptr, false);
    if (p.is_discarded() || !p.contains("train_tok_s_b16")) return fail("--peer torch: the peer wrote no report");

    const nlohmann::json& chk = p["loss_check"];
    const nlohmann::json& blas = p["blas"];
    j["torch_version"] = p["torch_version"];
    j["torch_threads"] = p["threads"];
    j["torch_loss_check"] = {{"routelab", chk["routelab"]}, {"torch", chk["torch"]}, {"diff", chk["diff"]},
                             {"tolerance", chk["tolerance"]}, {"passed", chk["passed"]}};
    j["torch_blas"] = blas["name"];
    j["torch_blas_kernel"] = blas.value("kernel", "");
    j["torch_openblas_coretype"] = blas["openblas_coretype"];
    // Figures of one torch run, and RouteLab / torch (above 1: RouteLab is faster; decode: torch ms / RouteLab ms).
    auto add = [&](const nlohmann::json& f, const std::string& sfx) {
        const double t1 = f["train_tok_s_b1"], t16 = f["train_tok_s_b16"], fw = f["forward_tok_s_b16"],
                     dec = f["decode_ms_per_token"];
        j["torch_train_tok_s_b1" + sfx] = t1;
        j["torch_train_tok_s_b16" + sfx] = t16;
        j["torch_forward_tok_s_b16" + sfx] = fw;
        j["torch_decode_ms_per_token" + sfx] = dec;
        j["vs_torch_train_b1" + sfx] = r.train_tok_s_b1 / t1;
        j["vs_torch_train_b16" + sfx] = r.train_tok_s_b16 / t16;
        j["vs_torch_forward_b16" + sfx] = r.forward_tok_s_b16 / fw;
        j["vs_torch_decode" + sfx] = dec / r.decode_ms_per_token;
        std::printf("  train  B=1   %10.0f tok/s   RouteLab %.2fx\n", t1, r.train_tok_s_b1 / t1);
        std::printf("  train  B=16  %10.0f tok/s   RouteLab %.2fx\n", t16, r.train_tok_s_b16 / t16);
        std::printf("  forward B=16 %10.0f tok/s   RouteLab %.2fx\n", fw, r.forward_tok_s_b16 / fw);
        std::printf("  decode       %10.3f ms/token RouteLab %.2fx\n", dec, dec / r.decode_ms_per_token);
    };
    const std::string coretype = blas["openblas_coretype"].is_string() ? blas["openblas_coretype"].get<std::string>() : "";
    std::printf("torch peer (PyTorch %s, %d threads, %s, kernel %s%s; loss routelab %.6f torch %.6f |diff| %.1e %s)\n",
                p["torch_version"].get<std::string>().c_str(), p["threads"].get<int>(),
                blas["name"].get<std::string>().c_str(), j["torch_blas_kernel"].get<std::string>().c_str(),
                coretype.empty() ? "" : (" with OPENBLAS_CORETYPE=" + coretype).c_str(), chk["routelab"].get<double>(),
                chk["torch"].get<double>(), chk["diff"].get<double>(), chk["passed"].get<bool>() ? "ok" : "FAILED");
    add(p, "");
    if (p.contains("no_coretype")) {
        const nlohmann::json& n = p["no_coretype"];
        j["torch_blas_kernel_no_coretype"] = n["blas_kernel"];
        std::printf("torch peer without OPENBLAS_CORETYPE (OpenBLAS picks kernel %s):\n",
                    n["blas_kernel"].get<std::string>().c_str());
        add(n, "_no_coretype");
    }
    return 0;
}

int cmd_bench(const Args& a) {
    auto cfg = load_config(a);
    if (!cfg) return fail(cfg.status.msg);
    double secs = 1.0;
    if (a.has("seconds") && (!parse_float(a.opt.at("seconds"), secs) || secs <= 0)) return usage("--seconds must be > 0");
    if (a.has("peer") && a.opt.at("peer") != "torch") return usage("--peer takes 'torch', the one peer there is");
    if (a.has("peer") && torch_peer_available() != 0) return 1;
    if (a.has("vocab-size")) {
        long long vs;
        if (!parse_int(a.opt.at("vocab-size"), 1, 1000000, vs)) return usage("--vocab-size must be an integer in 1..1000000");
        cfg->model.vocab_size = (int)vs;
    }
    auto device = device_select(cfg->train.device);  // the bench runs where training would
    if (!device) return fail(device.status.msg);
    if (!device->note.empty()) std::fprintf(stderr, "%s\n", device->note.c_str());
    auto v = resolve_vocab(*cfg);
    if (!v) return fail(v.status.msg);
    cfg->model.vocab_size = *v;
    SpeedReport r = speed_measure(*cfg, secs, 3);
    nlohmann::json j = {{"preset", cfg->name},
                        {"device", device->ops->device},
                        {"vocab_size", *v},
                        {"threads", r.threads},
                        {"use_wo", cfg->model.attention.use_wo},
                        {"train_tok_s_b1", r.train_tok_s_b1},
                        {"train_tok_s_b16", r.train_tok_s_b16},
                        {"forward_tok_s_b16", r.forward_tok_s_b16},
                        {"decode_ms_per_token", r.decode_ms_per_token},
                        {"achieved_gflops", r.achieved_gflops},
                        {"peak_gflops", r.peak_gflops},
                        {"lm_head_gflops", r.lm_head_gflops},
                        {"lm_head_fraction_of_peak", r.lm_head_gflops / r.peak_gflops},
                        {"flops_per_token_forward", r.flops_per_token_fwd}};
    std::printf("bench %s on %s (V %d, W_O %s, %d threads; medians of 3)\n", cfg->name.c_str(), device->ops->device, *v,
                cfg->model.attention.use_wo ? "on" : "off", r.threads);
    std::printf("  train  B=1   %10.0f tok/s\n", r.train_tok_s_b1);
    std::printf("  train  B=16  %10.0f tok/s   (%.1f GFLOP/s achieved, %.0f%% of the FMA peak %.0f GFLOP/s)\n",
                r.train_tok_s_b16, r.achieved_gflops, 100.0 * r.achieved_gflops / r.peak_gflops, r.peak_gflops);
    std::printf("  forward B=16 %10.0f tok/s\n", r.forward_tok_s_b16);
    std::printf("  decode       %10.3f ms/token (KV cache)\n", r.decode_ms_per_token);
    std::printf("  LM head + cross-entropy, B=16, forward and backward: %.1f GFLOP/s (%.0f%% of the peak)\n",
                r.lm_head_gflops, 100.0 * r.lm_head_gflops / r.peak_gflops);
    if (a.has("peer") && bench_torch_peer(*cfg, r, secs, j) != 0) return 1;
    const bool routed = cfg->model.attention.heads.kind != HeadSelection::all_heads ||
                        cfg->model.moe.kind != FfnRouting::dense;
    if (routed) {
        Model m;
        model_create(m, cfg->model, cfg->train.seed, cfg->train.init_std);
        if (a.has("checkpoint")) {  // real routing decisions come from trained routers
            auto ck = checkpoint_load(a.opt.at("checkpoint"));
            if (!ck) return fail(ck.status.msg);
            if (config_to_json(Config{"", "", (*ck)->model.cfg, {}, {}}) != config_to_json(Config{"", "", cfg->model, {}, {}}))
                return fail("--checkpoint was trained with another model config than --preset/--config");
            m = std::move((*ck)->model);
        }
        CostReport r = cost_measure(m, secs / 2, 5);
        auto side_json = [&r](const CostSide& s) {
            nlohmann::json out, comps;
            for (const auto& c : s.components) {
                nlohmann::json x = {{"flops_baseline", c.flops_baseline}, {"flops_dense", c.flops_dense},
                                    {"flops_routed", c.flops_routed}, {"speedup_naive", c.speedup_naive()},
                                    {"speedup_flops", c.speedup_flops()}, {"speedup_measured", c.speedup_measured()},
                                    {"speedup_vs_baseline_flops", c.speedup_vs_baseline_flops()},
                                    {"us_per_token_dense", c.sec_dense * 1e6}, {"us_per_token_routed", c.sec_routed * 1e6},
                                    {"measured_q1", c.ratio_q1}, {"measured_q3", c.ratio_q3}, {"measured_spread", c.spread()},
                                    {"measured_rounds", c.rounds}, {"measured_doubt", cost_doubt(c)}};
                if (r.heads_gated)
                    x.update({{"flops_all_heads", c.flops_all_heads},
                              {"speedup_vs_all_heads_flops", c.speedup_vs_all_heads_flops()},
                              {"speedup_vs_all_heads", c.speedup_vs_all_heads()},
                              {"us_per_token_all_heads", c.sec_all_heads * 1e6}});
                if (c.name == "total") out.update(x);
                else comps[c.name] = x;
            }
            out["components"] = comps;
            return out;
        };
        j.update(side_json(r.forward));
        j["decode"] = side_json(r.decode);
        j["train"] = side_json(r.train);
        // The training side (same weights, dense-masked vs skip) and, with head selection, the plain
        // model of the same shape (every head, no router) against the routed one.
        j["train_speedup_flops"] = r.train.total().speedup_flops();
        j["train_speedup_measured"] = r.train.total().speedup_measured();
        if (r.heads_gated) {
            j["forward_speedup_vs_all_heads"] = r.forward.total().speedup_vs_all_heads();
            j["decode_speedup_vs_all_heads"] = r.decode.total().speedup_vs_all_heads();
            j["train_speedup_vs_all_heads"] = r.train.total().speedup_vs_all_heads();
            j["forward_speedup_vs_all_heads_flops"] = r.forward.total().speedup_vs_all_heads_flops();
            j["train_speedup_vs_all_heads_flops"] = r.train.total().speedup_vs_all_heads_flops();
        }
        j["active_head_fraction"] = r.active_head_fraction;
        j["active_expert_fraction"] = r.active_expert_fraction;
        j["explanation"] = r.explanation;
        j["measurement_threads"] = r.threads;
        j["measurement_others_busy"] = r.others_busy;
        const std::string doubts = cost_doubts(r);
        j["measurement_doubts"] = doubts;
        std::printf("routing (same weights, dense path vs routed path; medians of interleaved rounds on %d threads):\n", r.threads);
        std::printf("  %-10s %12s %12s %8s %8s %9s  | decode %8s %8s %9s  | train %8s %9s\n", "component",
                    "GFLOP dense", "GFLOP routed", "naive", "flops", "measured", "naive", "flops", "measured", "flops",
                    "measured");
        for (size_t i = 0; i < r.forward.components.size(); i++) {
            const auto& f = r.forward.components[i];
            const auto& d = r.decode.components[i];
            const auto& t = r.train.components[i];
            std::printf("  %-10s %12.6f %12.6f %7.3fx %7.3fx %8.3fx  | %15.3fx %7.3fx %8.3fx  | %14.3fx %8.3fx\n",
                        f.name.c_str(), f.flops_dense * 1e-9, f.flops_routed * 1e-9, f.speedup_naive(), f.speedup_flops(),
                        f.speedup_measured(), d.speedup_naive(), d.speedup_flops(), d.speedup_measured(),
                        t.speedup_flops(), t.speedup_measured());
        }
        if (!doubts.empty())
            std::printf("measured under load: re-measure (other processes kept %.1f cores busy):\n%s\n", r.others_busy,
                        doubts.c_str());
        if (r.heads_gated) {
            std::printf("vs the plain model (same shape, every head, no router):\n");
            std::printf("  %-10s %8s %9s  | decode %9s  | train %8s %9s\n", "component", "flops", "measured",
                        "measured", "flops", "measured");
            for (size_t i = 0; i < r.forward.components.size(); i++) {
                const auto& f = r.forward.components[i];
                const auto& t = r.train.components[i];
                std::printf("  %-10s %7.3fx %8.3fx  | %15.3fx  | %14.3fx %8.3fx\n", f.name.c_str(),
                            f.speedup_vs_all_heads_flops(), f.speedup_vs_all_heads(),
                            r.decode.components[i].speedup_vs_all_heads(), t.speedup_vs_all_heads_flops(),
                            t.speedup_vs_all_heads());
            }
        }
        std::printf("  %s\n", r.explanation.c_str());
    }
    if (a.has("json")) {
        if (Status w = atomic_file_write(a.opt.at("json"), j.dump(2) + "\n"); !w) return fail(w.msg);
    }
    return 0;
}

// export: the routing of a preset, config or checkpoint as Megatron-Core arguments or a Hugging Face
// config.json (+ model.safetensors with --weights); docs/export.md.
int cmd_export(const Args& a) {
    if (!a.has("format") || (a.opt.at("format") != "hf" && a.opt.at("format") != "megatron"))
        return usage("export needs --format hf or --format megatron");
    const bool hf = a.opt.at("format") == "hf", weights = a.flag("weights");
    if (weights && !hf) return usage("--weights goes with --format hf (Megatron-Core takes its own checkpoints)");
    if (weights && !a.has("out")) return usage("--weights needs --out DIR (config.json and model.safetensors go there)");
    if (a.has("checkpoint") && (a.has("preset") || a.has("config")))
        return usage("give --checkpoint, --preset or --config, not two");
    Config cfg;
    std::unique_ptr<LoadedCheckpoint> ck;
    if (a.has("checkpoint")) {
        auto loaded = checkpoint_load(a.opt.at("checkpoint"));
        if (!loaded) return fail(loaded.status.msg);
        ck = std::move(*loaded);
        cfg = ck->cfg;
    } else {
        auto c = load_config(a);
        if (!c) return fail(c.status.msg);
        cfg = *c;
        auto v = resolve_vocab(cfg);
        if (!v) return fail(v.status.msg);
        cfg.model.vocab_size = *v;
    }
    std::string text;
    if (hf) text = export_hf_config(cfg).dump(2) + "\n";
    else text = export_megatron(cfg);
    if (!a.has("out")) {
        std::cout << text;
        return 0;
    }
    std::string path = a.opt.at("out");
    if (hf) {  // a directory, as Hugging Face loads it
        std::error_code ec;
        std::filesystem::create_directories(path, ec);
        if (ec) return fail("cannot create '" + path + "': " + ec.message());
        path = (std::filesystem::path(path) / "config.json").string();
    }
    if (Status w = atomic_file_write(path, text); !w) return fail(w.msg);
    std::cerr << "wrote " << path << "\n";
    if (!weights) return 0;
    Model fresh;
    if (!ck) {
        model_create(fresh, cfg.model, cfg.train.seed, cfg.train.init_std);
        std::cerr << "note: no --checkpoint, so the weights are the initial ones of train.seed " << cfg.train.seed << "\n";
    }
    const Model& m = ck ? ck->model : fresh;
    if (Status s = export_hf_weights(a.opt.at("out"), m); !s) return fail(s.msg);
    std::cerr << "wrote " << (std::filesystem::path(a.opt.at("out")) / "model.safetensors").string();
    if (!cfg.model.attention.use_wo) std::cerr << " (o_proj added as the identity: this model has no W_O)";
    std::cerr << "\n";
    return 0;
}

// One row per command: its usage lines, the options that take a value, and what runs it.
struct Command {
    const char* name;
    const char* usage;
    std::vector<std::string> options;
    int (*run)(const Args&);
    int positionals = 0;  // words that are not --options (runs: list | show ID ...)
};

const std::vector<Command>& commands() {
    static const std::vector<Command> c = {
        {"presets", "  routelab-cli presets\n", {}, [](const Args&) { return cmd_presets(); }},
        {"params", "  routelab-cli params   --preset P | --config F [--vocab-size N] [--json]\n",
         {"preset", "config", "vocab-size", "set"}, cmd_params},
        {"train",
         "  routelab-cli train    --preset P | --config F [--steps N] [--batch B] [--seed S]\n"
         "                        [--corpus PATH] [--out DIR] [--workspace DIR] [--set key=value ...]\n"
         "                        [--device cpu|cuda|auto]\n"
         "                        [--inject-nan-at STEP]   (tests: that step's loss is NaN; the run fails there)\n"
         "  routelab-cli train    --resume DIR [--steps N]   (go on from DIR's last save; N more steps)\n",
         {"preset", "config", "steps", "batch", "seed", "corpus", "out", "set", "workspace", "resume", "inject-nan-at",
          "device"},
         cmd_train},
        {"sweep", "  routelab-cli sweep    --grid F [--out DIR] [--workspace DIR]\n",
         {"grid", "out", "workspace"}, cmd_sweep},
        {"lesson", "  routelab-cli lesson   list | NAME   (a guided experiment, concluded from your own run)\n", {}, cmd_lesson, 1},
        {"runs",
         "  routelab-cli runs     list [--json] | show ID | export ID --csv F | delete ID   [--workspace DIR]\n",
         {"workspace", "csv"}, cmd_runs, 2},
        {"generate",
         "  routelab-cli generate --checkpoint F --prompt TEXT [--max-tokens N] [--temperature T]\n"
         "                        [--top-k K] [--top-p P] [--seed S]\n",
         {"checkpoint", "prompt", "max-tokens", "min-tokens", "temperature", "top-k", "top-p", "seed"}, cmd_generate},
        {"probe", "  routelab-cli probe    --checkpoint F --text TEXT [--json]\n", {"checkpoint", "text"}, cmd_probe},
        {"bench",
         "  routelab-cli bench    [--preset P | --config F] [--json F] [--seconds S] [--vocab-size N]\n"
         "                        [--checkpoint F] [--peer torch] [--set key=value ...] [--device cpu|cuda|auto]\n",
         {"preset", "config", "json", "seconds", "set", "vocab-size", "checkpoint", "peer", "device"}, cmd_bench},
        {"export",
         "  routelab-cli export   --preset P | --config F | --checkpoint F --format hf|megatron\n"
         "                        [--out F] [--weights] [--set key=value ...]\n"
         "                        (hf: --out is a folder for config.json, and model.safetensors with --weights)\n",
         {"preset", "config", "checkpoint", "format", "out", "set"}, cmd_export},
    };
    return c;
}

bool takes(const Command& c, const std::string& option) {
    return std::find(c.options.begin(), c.options.end(), option) != c.options.end();
}

std::string usage_text() {
    std::string u = k_usage_head;
    for (const Command& c : commands()) u += c.usage;
    return u + "\n" + k_usage_set;
}

// `<command> --help`: that command's lines (and the --set note where it takes --set), exit 0.
int command_help(const Command& c) {
    std::cout << c.usage;
    if (takes(c, "set")) std::cout << "\n" << k_usage_set;
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) return usage("no command given");
    Args a;
    a.cmd = argv[1];
    if (a.cmd == "--help" || a.cmd == "-h" || a.cmd == "help") {
        std::cout << usage_text();
        return 0;
    }
    const auto& table = commands();
    auto it = std::find_if(table.begin(), table.end(), [&](const Command& c) { return a.cmd == c.name; });
    if (it == table.end()) return usage("unknown command '" + a.cmd + "'");
    const std::vector<std::string> bool_flags = {"json", "sample", "weights"};
    for (int i = 2; i < argc; i++) {
        std::string k = argv[i];
        if (k == "--help" || k == "-h") return command_help(*it);
        if (k.rfind("--", 0) != 0) {
            if ((int)a.pos.size() >= it->positionals) return usage("unexpected argument '" + k + "'");
            a.pos.push_back(k);
            continue;
        }
        k = k.substr(2);
        if (std::find(bool_flags.begin(), bool_flags.end(), k) != bool_flags.end() && !takes(*it, k)) {
            a.flags.push_back(k);
            continue;
        }
        if (i + 1 >= argc) return usage("--" + k + " needs a value");
        if (k == "set") a.sets.push_back(argv[++i]);
        else a.opt[k] = argv[++i];
    }
    for (const auto& [k, _] : a.opt)
        if (!takes(*it, k)) return usage("'" + a.cmd + "' has no option --" + k);
    if (!a.sets.empty() && !takes(*it, "set")) return usage("'" + a.cmd + "' has no option --set");
    return it->run(a);
}
