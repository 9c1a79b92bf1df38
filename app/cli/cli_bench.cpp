// routelab-cli bench: training, forward and decode speed, the routed-vs-dense cost, and the PyTorch peer.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "backend/device.h"
#include "cli.h"
#include "infer/cost.h"
#include "infer/speed.h"
#include "io/checkpoint.h"
#include "model/model.h"
#include "train/tokenizer.h"
#include "util/atomic_file.h"

using namespace rl;
namespace fs = std::filesystem;

namespace cli {

namespace {

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

// Runs the peer (app/peer/torch_peer.py) on the weights speed_measure timed (same seed, same initialisation),
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
    if (code != 0) return fail(std::string("--peer torch: ") + ROUTELAB_TORCH_PEER + " failed (exit " + std::to_string(code) + ")");
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

// The routed model's cost, dense path vs routed path on the same weights (infer/cost.h): printed
// and added to j. 0, or 1 after the message.
int bench_cost(const Config& cfg, const Args& a, double secs, nlohmann::json& j) {
    Model m;
    model_create(m, cfg.model, cfg.train.seed, cfg.train.init_std);
    if (a.has("checkpoint")) {  // real routing decisions come from trained routers
        auto ck = checkpoint_load(a.opt.at("checkpoint"));
        if (!ck) return fail(ck.status.msg);
        if (config_to_json(Config{"", "", (*ck)->model.cfg, {}, {}}) != config_to_json(Config{"", "", cfg.model, {}, {}}))
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
    return 0;
}

}  // namespace

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
    // The bench times training steps: a forward-only setting (an imported model's) cannot take one.
    if (std::string why = config_training_blocker(cfg->model); !why.empty()) return fail("bench: " + why);
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
    if (routed && bench_cost(*cfg, a, secs, j) != 0) return 1;
    if (a.has("json")) {
        if (Status w = atomic_file_write(a.opt.at("json"), j.dump(2) + "\n"); !w) return fail(w.msg);
    }
    return 0;
}

}  // namespace cli
