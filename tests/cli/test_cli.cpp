// routelab-cli as a user meets it: every bad input gives a one-line message and exit code 1 (2 for
// bad usage), never a crash. Runs the real binary.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "backend/device.h"
#include "subprocess.h"

namespace fs = std::filesystem;

namespace {

using CliRun = rl::test::Captured;

CliRun run_cli(const std::string& args) {
    return rl::test::run_captured(std::string(ROUTELAB_CLI) + " " + args);
}

class Cli : public ::testing::Test {
protected:
    void SetUp() override {
        dir = fs::temp_directory_path() / ("routelab_cli_" + std::to_string(::getpid()));
        fs::create_directories(dir);
    }
    void TearDown() override { fs::remove_all(dir); }
    std::string path(const std::string& name) { return (dir / name).string(); }
    void write(const std::string& name, const std::string& text) { std::ofstream(dir / name, std::ios::binary) << text; }
    fs::path dir;
};

void expect_one_line_error(const CliRun& r, const std::string& needle, int code = 1) {
    EXPECT_EQ(r.code, code) << r.out;
    ASSERT_FALSE(r.out.empty());
    EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << "one line: " << r.out;
    EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
    EXPECT_NE(r.out.find(needle), std::string::npos) << r.out;
}

}  // namespace

TEST_F(Cli, ParamsOfSeedBaselineMatchThePlan) {
    CliRun r = run_cli("params --preset seed-baseline --vocab-size 605");
    EXPECT_EQ(r.code, 0);
    EXPECT_NE(r.out.find("\ntotal: 573440\n"), std::string::npos) << r.out;
}

TEST_F(Cli, MalformedConfig) {
    write("bad.json", "{\"model\": {\"d_model\": 128,,}}");
    expect_one_line_error(run_cli("train --config " + path("bad.json") + " --out " + path("o")), "not valid JSON");
}

TEST_F(Cli, UnknownKey) {
    write("unk.json", R"({"model": {"attention": {"positonal": "rope"}}})");
    expect_one_line_error(run_cli("train --config " + path("unk.json") + " --out " + path("o")),
                          "unknown key 'model.attention.positonal'");
}

TEST_F(Cli, InvalidValueNamesTheKey) {
    expect_one_line_error(run_cli("train --preset tiny --set model.n_kv_heads=3 --out " + path("o")),
                          "'model.n_kv_heads' must divide n_heads");
}

TEST_F(Cli, MissingConfigAndCorpus) {
    expect_one_line_error(run_cli("train --config " + path("nope.json")), "cannot open");
    expect_one_line_error(run_cli("train --preset tiny --corpus " + path("missing.txt") + " --out " + path("o")),
                          "corpus '" + path("missing.txt") + "': cannot open");
}

TEST_F(Cli, CorruptCheckpoint) {
    write("junk.safetensors", std::string("\x10\x00\x00\x00\x00\x00\x00\x00{garbage", 17));
    expect_one_line_error(run_cli("generate --checkpoint " + path("junk.safetensors") + " --prompt hi"), "checkpoint '");
    write("empty.safetensors", "");
    expect_one_line_error(run_cli("generate --checkpoint " + path("empty.safetensors") + " --prompt hi"), "checkpoint '");
    expect_one_line_error(run_cli("generate --checkpoint " + path("none.safetensors") + " --prompt hi"), "checkpoint '");
}

TEST_F(Cli, TrainGenerateAndMismatchedCheckpoint) {
    CliRun t = run_cli("train --preset tiny --steps 10 --out " + path("run"));
    ASSERT_EQ(t.code, 0) << t.out;
    for (const char* f : {"config.json", "metrics.csv", "checkpoint.safetensors", "summary.json"})
        EXPECT_TRUE(fs::exists(dir / "run" / f)) << f;
    CliRun g = run_cli("generate --checkpoint " + path("run/checkpoint.safetensors") +
                    " --prompt 'User: hello' --max-tokens 5 --seed 3");
    EXPECT_EQ(g.code, 0) << g.out;
    CliRun g2 = run_cli("generate --checkpoint " + path("run/checkpoint.safetensors") +
                     " --prompt 'User: hello' --max-tokens 5 --seed 3");
    EXPECT_EQ(g.out, g2.out) << "same seed, same text";

    // Truncate the checkpoint: a clear message, not a crash.
    const auto size = fs::file_size(dir / "run" / "checkpoint.safetensors");
    fs::copy_file(dir / "run" / "checkpoint.safetensors", dir / "cut.safetensors");
    fs::resize_file(dir / "cut.safetensors", size / 2);
    expect_one_line_error(run_cli("generate --checkpoint " + path("cut.safetensors") + " --prompt hi"), "truncated");

    // A checkpoint whose tensors do not match its config: rewrite the metadata's d_model.
    std::ifstream in(dir / "run" / "checkpoint.safetensors", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    const std::string from = "\\\"d_model\\\": 32", to = "\\\"d_model\\\": 48";
    auto pos = bytes.find(from);
    ASSERT_NE(pos, std::string::npos);
    bytes.replace(pos, from.size(), to);
    write("mismatch.safetensors", bytes);
    expect_one_line_error(run_cli("generate --checkpoint " + path("mismatch.safetensors") + " --prompt hi"),
                          "but the config needs");
}

TEST_F(Cli, BadUsageExitsWithTwo) {
    CliRun r = run_cli("train --steps");
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(run_cli("frobnicate").code, 2);
    EXPECT_EQ(run_cli("generate --prompt hi").code, 2);
    EXPECT_EQ(run_cli("train --preset tiny --steps -3").code, 2);
}

TEST_F(Cli, RoutedPresetsParamsProbeAndBenchJson) {
    CliRun p = run_cli("params --preset seed-moh --vocab-size 605");
    EXPECT_NE(p.out.find("\ntotal: 577280\n"), std::string::npos) << p.out;  // docs/architecture.md §4.3: 573,440 + 3 x 1,280
    const std::string sets =
        " --set model.attention.heads.kind=moh --set model.attention.heads.n_shared=1"
        " --set model.attention.heads.n_active_routed=2 --set model.moe.kind=moe --set model.moe.n_experts=4"
        " --set model.moe.d_ff_expert=16";
    CliRun t = run_cli("train --preset tiny --steps 5 --out " + path("r") + sets);
    ASSERT_EQ(t.code, 0) << t.out;
    EXPECT_NE(t.out.find("routing layer 0:"), std::string::npos) << t.out;
    EXPECT_NE(t.out.find("NMI(expert; domain)"), std::string::npos) << t.out;
    CliRun pr = run_cli("probe --checkpoint " + path("r/checkpoint.safetensors") + " --text 'User: hi there' --json");
    ASSERT_EQ(pr.code, 0) << pr.out;
    for (const char* key : {"\"head_gates\"", "\"experts\"", "\"expert_weights\"", "\"tokens\""})
        EXPECT_NE(pr.out.find(key), std::string::npos) << key;
    CliRun b = run_cli("bench --preset tiny --seconds 0.02 --json " + path("b.json") + sets);
    ASSERT_EQ(b.code, 0) << b.out;
    std::ifstream f(dir / "b.json");
    std::string j((std::istreambuf_iterator<char>(f)), {});
    for (const char* key : {"\"train_tok_s_b1\"", "\"train_tok_s_b16\"", "\"forward_tok_s_b16\"", "\"decode_ms_per_token\"",
                            "\"achieved_gflops\"", "\"flops_dense\"", "\"flops_routed\"", "\"speedup_naive\"",
                            "\"speedup_flops\"", "\"speedup_measured\"", "\"decode\"", "\"attention\"", "\"ffn\""})
        EXPECT_NE(j.find(key), std::string::npos) << key;
    const nlohmann::json bj = nlohmann::json::parse(j);
    EXPECT_GT(bj["peak_gflops"].get<double>(), bj["achieved_gflops"].get<double>())
        << "the FMA peak bounds what a training step achieves";
    // The training side (same weights, dense-masked vs skip) and the plain all-heads model next to it.
    for (const char* key : {"train_speedup_flops", "train_speedup_measured", "forward_speedup_vs_all_heads",
                            "decode_speedup_vs_all_heads", "train_speedup_vs_all_heads",
                            "forward_speedup_vs_all_heads_flops", "train_speedup_vs_all_heads_flops"})
        ASSERT_TRUE(bj.contains(key) && bj[key].get<double>() > 0) << key;
    ASSERT_TRUE(bj.contains("train") && bj["train"].contains("components"));
    for (const char* key : {"flops_dense", "flops_routed", "flops_all_heads", "speedup_measured", "speedup_vs_all_heads"})
        EXPECT_TRUE(bj["train"].contains(key)) << "train." << key;
    // With heads on and off the FLOP model saves in training (1 of 2 routed heads active + 1 shared).
    EXPECT_GT(bj["train_speedup_flops"].get<double>(), 1.0);
    EXPECT_NEAR(bj["train"]["flops_routed"].get<double>(), 3 * bj["flops_routed"].get<double>(),
                1e-9 * bj["flops_routed"].get<double>())
        << "the step costs the forward and a backward of twice its FLOPs";
    EXPECT_NE(b.out.find("vs the plain model"), std::string::npos) << b.out;
    // It reports where it ran; --device cuda without a CUDA backend that can run is refused, timing nothing.
    EXPECT_EQ(bj["device"], rl::ops_cuda() ? "cuda" : "cpu");
    if (!rl::ops_cuda()) {
        CliRun c = run_cli("bench --preset tiny --seconds 0.02 --device cuda");
        EXPECT_EQ(c.code, 1) << c.out;
        EXPECT_NE(c.out.find("'train.device' is \"cuda\""), std::string::npos) << c.out;
        EXPECT_EQ(c.out.find("train  B=1"), std::string::npos) << "nothing was timed: " << c.out;
    }
}

// `bench --peer torch` without torch: told how to install it, before any timing runs.
TEST_F(Cli, BenchPeerTorchWithoutTorchSaysHowToInstall) {
    const char* was = std::getenv("ROUTELAB_PYTHON");
    const std::string saved = was ? was : "";
    ::setenv("ROUTELAB_PYTHON", path("no-such-python3").c_str(), 1);
    CliRun r = run_cli("bench --preset tiny --seconds 0.01 --peer torch");
    if (was) ::setenv("ROUTELAB_PYTHON", saved.c_str(), 1);
    else ::unsetenv("ROUTELAB_PYTHON");
    expect_one_line_error(r, "scripts/setup.sh --with-torch");
    EXPECT_EQ(run_cli("bench --preset tiny --peer jax").code, 2);
}

// The PyTorch peer in the bench: its first-step loss matches RouteLab's and its figures and the
// ratios land in the JSON (tests/core/test_torch_peer.cpp checks the peer on random weights).
TEST_F(Cli, BenchPeerTorchLossCheckPassesAndReports) {
    const char* py = std::getenv("ROUTELAB_PYTHON");
    const std::string python = py && *py ? py : "/usr/bin/python3";
    if (std::system(("'" + python + "' -c 'import torch' >/dev/null 2>&1").c_str()) != 0)
        GTEST_SKIP() << python << " cannot import torch (scripts/setup.sh --with-torch installs it)";
    for (const char* preset : {"seed-baseline", "moe-top2-8"}) {
        CliRun b = run_cli(std::string("bench --preset ") + preset + " --vocab-size 605 --seconds 0.02 --peer torch --json " +
                           path("p.json"));
        ASSERT_EQ(b.code, 0) << preset << ": " << b.out;
        EXPECT_NE(b.out.find("loss routelab "), std::string::npos) << b.out;
        std::ifstream f(dir / "p.json");
        const nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
        ASSERT_FALSE(j.is_discarded()) << preset;
        const nlohmann::json& chk = j["torch_loss_check"];
        EXPECT_TRUE(chk.value("passed", false)) << preset << ": " << chk.dump();
        EXPECT_LE(chk.value("diff", 1.0), 1e-4) << preset;
        EXPECT_GT(chk.value("routelab", 0.0), 1.0) << preset;
        for (const char* key : {"torch_train_tok_s_b1", "torch_train_tok_s_b16", "torch_forward_tok_s_b16",
                                "torch_decode_ms_per_token", "vs_torch_train_b1", "vs_torch_train_b16",
                                "vs_torch_forward_b16", "vs_torch_decode"})
            EXPECT_GT(j.value(key, 0.0), 0.0) << preset << " " << key;
        EXPECT_FALSE(j.value("torch_blas", std::string()).empty()) << preset;
        EXPECT_TRUE(j.contains("torch_blas_kernel")) << preset;
        if (j.contains("torch_blas_kernel_no_coretype")) {  // a second set of figures, labelled
            EXPECT_NE(j["torch_blas_kernel_no_coretype"], j["torch_blas_kernel"]) << preset;
            EXPECT_GT(j.value("torch_train_tok_s_b16_no_coretype", 0.0), 0.0) << preset;
            EXPECT_GT(j.value("vs_torch_decode_no_coretype", 0.0), 0.0) << preset;
        }
    }
}

TEST_F(Cli, EveryCommandPrintsItsUsageOnHelp) {
    for (const char* cmd : {"presets", "params", "train", "generate", "probe", "bench"})
        for (const char* help : {"--help", "-h"}) {
            CliRun r = run_cli(std::string(cmd) + " " + help);
            EXPECT_EQ(r.code, 0) << cmd << " " << help << ": " << r.out;
            EXPECT_EQ(r.out.find("error"), std::string::npos) << cmd << " " << help << ": " << r.out;
            EXPECT_EQ(r.out.rfind("  routelab-cli " + std::string(cmd), 0), 0u) << cmd << " " << help << ": " << r.out;
        }
    // After other options too, and before anything runs: no training happens here.
    CliRun t = run_cli("train --preset tiny --out " + path("never") + " --help");
    EXPECT_EQ(t.code, 0) << t.out;
    EXPECT_FALSE(fs::exists(dir / "never"));
    EXPECT_NE(t.out.find("--set takes any config key"), std::string::npos) << t.out;
}

// A config far too large for the machine is refused before a byte of it is allocated (train/memory.h),
// in well under the 2 s a newcomer waits, with the estimate and the keys to lower; params prints the
// same estimate.
TEST_F(Cli, ConfigTooLargeForTheMachineIsRefusedUpFront) {
    const std::string big = "--preset tiny --set model.d_model=8192 --set model.head_dim=1024 --set model.ffn.d_ff=65536";
    const auto t0 = std::chrono::steady_clock::now();
    CliRun r = run_cli("train " + big + " --out " + path("o") + " --workspace " + path("ws"));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    expect_one_line_error(r, "this config needs ");
    EXPECT_NE(r.out.find(" GiB (parameters "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(" is available ("), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("lower model.d_model, model.ffn.d_ff"), std::string::npos) << r.out;
    EXPECT_LT(secs, 2.0) << r.out;
    CliRun p = run_cli("params " + big);
    EXPECT_EQ(p.code, 0) << p.out;
    EXPECT_NE(p.out.find("memory to train: "), std::string::npos) << p.out;
    CliRun ok = run_cli("params --preset seed-baseline");  // a config that fits: the estimate, no refusal
    EXPECT_NE(ok.out.find("memory to train: "), std::string::npos) << ok.out;
}

// --inject-nan-at 25: the CLI exits 1 naming step 25; the weights of step 24 are the run's
// checkpoint, which loads and generates; the run reads failed in the store.
TEST_F(Cli, InjectedNanFailsTheRunAndKeepsTheLastGoodWeights) {
    const std::string out = path("nan"), ws = path("ws");
    CliRun r = run_cli("train --preset tiny --steps 60 --inject-nan-at 25 --out " + out + " --workspace " + ws);
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("error: step 25: the loss is NaN; the weights of step 24 are saved in " + out + "/checkpoint.safetensors"),
              std::string::npos)
        << r.out;
    CliRun g = run_cli("generate --checkpoint " + out + "/checkpoint.safetensors --prompt \"The\" --max-tokens 5 --temperature 0");
    EXPECT_EQ(g.code, 0) << g.out;
    CliRun list = run_cli("runs list --json --workspace " + ws);
    ASSERT_EQ(list.code, 0) << list.out;
    const auto j = nlohmann::json::parse(list.out.substr(list.out.find('[')), nullptr, false);
    ASSERT_TRUE(j.is_array() && j.size() == 1) << list.out;
    EXPECT_EQ(j[0].value("status", ""), "failed") << list.out;
    EXPECT_EQ(j[0].value("steps", 0), 24) << list.out;
    EXPECT_NE(j[0].value("status_message", "").find("step 25: the loss is NaN"), std::string::npos) << list.out;
}

// --no-expert-bias: a model trained with selection biases evaluates without them ("biases off" in the
// report, beside the --baseline with them); a model without biases, and the flag with --expert-bias F,
// are refused in one line.
TEST_F(Cli, NoExpertBiasEvaluatesTheRouterWithoutItsBiases) {
    CliRun t = run_cli("train --preset deepseek-v3-style --steps 20 --set train.batch_size=4 --set model.moe.bias_update_rate=0.05 --out " +
                       path("ds"));
    ASSERT_EQ(t.code, 0) << t.out;
    const std::string ck = " --checkpoint " + path("ds/checkpoint.safetensors") + " --ids 1,2,3,4,5,6,7,8,9,10,11,12";
    CliRun e = run_cli("eval" + ck + " --no-expert-bias --baseline --json " + path("e.json"));
    ASSERT_EQ(e.code, 0) << e.out;
    std::ifstream in(path("e.json"));
    const nlohmann::json j = nlohmann::json::parse(in);
    EXPECT_EQ(j["interventions"], "biases off");
    EXPECT_TRUE(j["perplexity"].is_number() && j["baseline"]["perplexity"].is_number());
    ASSERT_EQ(run_cli("train --preset moe-top2-8 --steps 2 --out " + path("plain")).code, 0);
    expect_one_line_error(run_cli("eval --checkpoint " + path("plain/checkpoint.safetensors") + " --ids 1,2,3 --no-expert-bias --json " +
                                  path("p.json")),
                          "has no selection biases");
    CliRun both = run_cli("eval" + ck + " --no-expert-bias --expert-bias " + path("x.json") + " --json " + path("p.json"));
    EXPECT_EQ(both.code, 2) << both.out;
}
