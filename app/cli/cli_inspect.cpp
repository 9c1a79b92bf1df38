// routelab-cli presets, params, lesson, generate, probe and export: looking at configs, checkpoints and lessons.
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli.h"
#include "config/presets.h"
#include "infer/generate.h"
#include "io/checkpoint.h"
#include "io/export.h"
#include "io/hf_model.h"
#include "lessons/lessons.h"
#include "lessons/real_model.h"
#include "metrics/routing_report.h"
#include "model/model.h"
#include "train/memory.h"
#include "util/atomic_file.h"

using namespace rl;
namespace fs = std::filesystem;

namespace cli {

int cmd_presets(const Args&) {
    for (const auto& name : preset_names()) {
        auto cfg = preset_load(name);
        std::cout << name << "\n    " << (cfg ? cfg->description : cfg.status.msg) << "\n";
    }
    return 0;
}

int cmd_params(const Args& a) {
    if (a.has("model")) return cmd_params_model(a);
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
    const nlohmann::json j = layout_table(L, &total);
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

namespace {

// lesson real-model [--model DIR] [--tokens N]: the model's findings, or a stand-in's without one.
int lesson_real_model(const Args& a) {
    std::printf("# What a real model's experts do\n\n%s\n\n", real_model_lesson_text());
    long long tokens = 4000;
    if (a.has("tokens") && !parse_int(a.opt.at("tokens"), 16, 10000000, tokens)) return usage("--tokens must be an integer in 16..10000000");
    const bool tty = isatty(STDERR_FILENO);
    auto say = [&](const std::string& what) {
        if (tty) std::fprintf(stderr, "\r  %-60s", what.c_str());
    };
    std::unique_ptr<HfModel> hf;
    std::unique_ptr<TrainState> st;
    if (a.has("model")) {
        auto o = hf_model_open(a.opt.at("model"), true);
        if (!o) return fail(o.status.msg);
        hf = std::move(*o);
        if (!hf->tok) return fail("lesson real-model: the folder has no tokenizer (tokenizer.json or tokenizer.model); the lesson reads text");
    } else {
        std::printf("%s\n\n", real_model_lesson_without_model());
        auto s = real_model_lesson_stand_in([&](int step, int steps) {
            if (step % 25 == 0 || step == steps) say("training the stand-in: step " + std::to_string(step) + "/" + std::to_string(steps));
        });
        if (!s) return fail(s.status.msg);
        st = std::move(*s);
    }
    Model& m = hf ? hf->model : st->model;
    const Config& cfg = hf ? hf->cfg : st->cfg;
    const Tokenizer& tok = hf ? *hf->tok : st->data->tok;
    auto f = real_model_lesson_measure(m, cfg, tok, (int)tokens, std::min(512, m.cfg.seq_len), say);
    if (tty) std::fprintf(stderr, "\n");
    if (!f) return fail("lesson real-model: " + f.status.msg);
    std::printf("In the window: routelab --lesson real-model%s shows the top-k sweep in the experiments view and the "
                "expert x domain matrices in the experts view.\n\nConclusion: %s\n",
                a.has("model") ? (" --model " + a.opt.at("model")).c_str() : "", real_model_lesson_conclude(*f).c_str());
    return 0;
}

}  // namespace

// A guided experiment, concluded from the user's own run.
int cmd_lesson(const Args& a) {
    if (a.pos.empty() || a.pos[0] == "list") {
        for (const Lesson& l : lessons()) std::printf("%-15s %s\n", l.name.c_str(), l.title.c_str());
        std::printf("%-15s %s\n", k_real_model_lesson, "What a real model's experts do (--model DIR)");
        return 0;
    }
    if (a.pos[0] == k_real_model_lesson) return lesson_real_model(a);
    if (a.has("model") || a.has("tokens")) return usage("--model and --tokens are for lesson real-model");
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

int cmd_generate(const Args& a) {
    if (!a.has("checkpoint") && !a.has("model")) return usage("generate needs --checkpoint F or --model DIR");
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
    auto om = open_model(a, "generate");
    if (!om) return fail(om.status.msg);
    const std::string prompt = a.opt.at("prompt");
    const GenerationReport g = generate_report(om->model(), om->tok(), prompt, (int)n, o, om->attn_entropy());
    if (!g.error.empty()) return fail(g.error);
    std::printf("%s %s\n", prompt.c_str(), g.new_text.c_str());
    if (const std::string note = g.note(); !note.empty())
        std::fprintf(stderr, "note: %s%s\n", note.c_str(), g.new_ids.size() == 1 ? " (--min-tokens N)" : "");
    return 0;
}

int cmd_probe(const Args& a) {
    if (a.has("model") && a.has("ids")) return cmd_probe_model(a);
    if (!a.has("checkpoint") && !a.has("model")) return usage("probe needs --checkpoint F or --model DIR");
    if (!a.has("text")) return usage("probe needs --text TEXT (or, with --model, --ids 1,17,... --json F)");
    auto om = open_model(a, "probe");
    if (!om) return fail(om.status.msg);
    Interventions iv;
    if (int rc = interventions_from_args(a, iv)) return rc;
    if (Status s = om->intervene(iv); !s) return fail("probe: " + s.msg);
    if (int rc = routing_files_from_args(a, om->model_mut())) return rc;
    if (om->hf)
        if (Status s = hf_probe_fits(*om->hf, (int)std::min<size_t>(om->tok().encode(a.opt.at("text")).size(),
                                                                     om->model().cfg.seq_len));
            !s)
            return fail(s.msg);
    ProbeSnapshot p = probe_run(om->model(), om->tok(), a.opt.at("text"), om->step());
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
    // The cluster the routing is meant for (docs/cluster-cost.md): Megatron's parallelism and capacity flags.
    ExportCluster cluster;
    if (a.has("ep")) {
        long long ep, g = 8;
        double cf = 0;
        if (hf) return usage("--ep goes with --format megatron");
        if (!parse_int(a.opt.at("ep"), 1, 4096, ep)) return usage("--ep must be an integer in 1..4096");
        if (a.has("gpus-per-node") && !parse_int(a.opt.at("gpus-per-node"), 1, 64, g)) return usage("--gpus-per-node must be an integer in 1..64");
        if (a.has("capacity-factor") && (!parse_float(a.opt.at("capacity-factor"), cf) || !(cf > 0 && cf < 1e6)))
            return usage("--capacity-factor must be a number > 0");
        cluster = {(int)ep, (int)g, cf, a.flag("pad-to-capacity")};
        if (cluster.pad_to_capacity && cf <= 0) return usage("--pad-to-capacity pads to a capacity: give --capacity-factor C");
    } else if (a.has("gpus-per-node") || a.has("capacity-factor") || a.flag("pad-to-capacity")) {
        return usage("--gpus-per-node, --capacity-factor and --pad-to-capacity describe a cluster: give --ep N too");
    }
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
    if (const int E = cfg.model.moe.n_experts; cluster.ep > 0) {  // Megatron places E / EP experts a rank (or slices them)
        if (cfg.model.moe.kind == FfnRouting::dense) return usage("--ep sizes expert parallelism: this model's FFN is dense");
        if (E % cluster.ep != 0 && cluster.ep % E != 0)
            return usage("--ep " + std::to_string(cluster.ep) + " must divide the " + std::to_string(E) + " experts or be a multiple of them");
    }
    std::string text;
    if (hf) text = export_hf_config(cfg).dump(2) + "\n";
    else text = export_megatron(cfg, cluster);
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

}  // namespace cli
