// The run store as a tuning record (docs/architecture.md §11): a CLI run killed with SIGKILL reads
// interrupted with its steps on the next open while earlier runs stay intact; a sweep lands one
// finished run per point, a failed point recorded as failed; a database made by the schema-1 code
// (a stored copy) opens upgraded with its runs and curves; sweep files expand as documented.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <fcntl.h>

#include <nlohmann/json.hpp>

#include "config/presets.h"
#include "config/sweep.h"
#include "lessons/lessons.h"
#include "subprocess.h"
#include "io/run_store.h"

using namespace rl;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
    const fs::path d = fs::temp_directory_path() / ("rl_tuning_" + std::to_string(getpid()) + "_" + name);
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

test::Captured cli(const std::string& args) { return test::run_captured(test::shell_quoted(ROUTELAB_CLI) + " " + args); }

}  // namespace

TEST(Tuning, SigkilledCliRunReadsInterruptedWithItsStepsAndEarlierRunsAreIntact) {
    const fs::path dir = fresh_dir("kill"), ws = dir / "ws";
    auto [code, out] = cli("train --preset tiny --steps 15 --workspace '" + ws.string() + "' --out '" + (dir / "a").string() + "'");
    ASSERT_EQ(code, 0) << out;
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        const int null = ::open("/dev/null", O_WRONLY);
        dup2(null, 1), dup2(null, 2);
        execl(ROUTELAB_CLI, ROUTELAB_CLI, "train", "--preset", "tiny", "--steps", "1000000", "--workspace", ws.c_str(),
              "--out", (dir / "b").c_str(), (char*)nullptr);
        _exit(127);
    }
    // Wait until the second run has stored some steps, then kill it where it stands.
    int stored = 0;
    for (int i = 0; i < 600 && stored < 30; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        auto st = run_store_open((ws / "runs.sqlite").string());
        if (!st) continue;
        auto runs = run_store_list(*st);
        if (runs && runs->size() == 2 && (*runs)[0].status == RunStatus::running) stored = (*runs)[0].steps;
    }
    ASSERT_GE(stored, 30) << "the CLI run never stored its steps";
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int wst = 0;
    waitpid(pid, &wst, 0);
    ASSERT_TRUE(WIFSIGNALED(wst));
    auto st = run_store_open((ws / "runs.sqlite").string());
    ASSERT_TRUE(st) << st.status.msg;
    auto runs = run_store_list(*st);
    ASSERT_TRUE(runs && runs->size() == 2u);
    const RunRecord& killed = (*runs)[0];
    const RunRecord& earlier = (*runs)[1];
    EXPECT_EQ(killed.status, RunStatus::interrupted) << killed.status_message;
    EXPECT_NE(killed.status_message.find("ended without finishing"), std::string::npos) << killed.status_message;
    EXPECT_GE(killed.steps, stored);
    EXPECT_EQ(run_store_curve(*st, killed.id)->size(), (size_t)killed.steps) << "every stored step kept";
    EXPECT_GE(killed.load_cv, -1.f);
    EXPECT_EQ(earlier.status, RunStatus::finished);
    EXPECT_EQ(earlier.steps, 15);
    EXPECT_EQ(run_store_curve(*st, earlier.id)->size(), 15u);
    EXPECT_GT(earlier.val_loss, 0.f);
    EXPECT_FALSE(earlier.checkpoint.empty());
    // The CLI reads the same store: it lists both with their status, and resumes the killed run.
    auto [lc, list] = cli("runs list --workspace '" + ws.string() + "'");
    EXPECT_EQ(lc, 0) << list;
    EXPECT_NE(list.find("interrupted"), std::string::npos) << list;
    EXPECT_NE(list.find("finished"), std::string::npos) << list;
    fs::remove_all(dir);
}

TEST(Tuning, SweepLandsOneFinishedRunPerPointAndRecordsAFailedOne) {
    const fs::path dir = fresh_dir("sweep"), ws = dir / "ws";
    std::ofstream(dir / "lr.json") << R"({"preset":"tiny","set":{"train.steps":20},"grid":{"train.lr":[0.001,0.003,0.01]}})";
    auto [code, out] = cli("sweep --grid '" + (dir / "lr.json").string() + "' --workspace '" + ws.string() + "' --out '" +
                           (dir / "out").string() + "'");
    ASSERT_EQ(code, 0) << out;
    EXPECT_NE(out.find("[3/3] train.lr=0.01: finished"), std::string::npos) << out;
    auto [lc, list] = cli("runs list --json --workspace '" + ws.string() + "'");
    ASSERT_EQ(lc, 0) << list;
    const auto j = nlohmann::json::parse(list);
    ASSERT_EQ(j.size(), 3u);
    std::set<double> lrs;
    for (const auto& r : j) {
        EXPECT_EQ(r["status"], "finished");
        EXPECT_EQ(r["steps"], 20);
        EXPECT_EQ(r["sweep"], "lr");
        EXPECT_GT(r["val_loss"].get<double>(), 0.0);
        auto [sc, show] = cli("runs show " + std::to_string(r["id"].get<int>()) + " --workspace '" + ws.string() + "'");
        lrs.insert(nlohmann::json::parse(show)["config"]["train"]["lr"].get<double>());
    }
    EXPECT_EQ(lrs.size(), 3u) << "one run per point";
    // A point whose config is invalid is a failed run with the reason, and the sweep goes on.
    std::ofstream(dir / "bad.json") << R"({"preset":"tiny","set":{"train.steps":5},"grid":{"train.lr":[20, 0.001]}})";
    auto [bc, bad] = cli("sweep --grid '" + (dir / "bad.json").string() + "' --workspace '" + ws.string() + "' --out '" +
                         (dir / "out2").string() + "'");
    EXPECT_EQ(bc, 1) << bad;
    EXPECT_NE(bad.find("[2/2] train.lr=0.001: finished"), std::string::npos) << bad;
    auto st = run_store_open((ws / "runs.sqlite").string());
    ASSERT_TRUE(st);
    auto runs = run_store_list(*st);
    ASSERT_EQ(runs->size(), 5u);
    EXPECT_EQ((*runs)[1].status, RunStatus::failed);
    EXPECT_NE((*runs)[1].status_message.find("train.lr"), std::string::npos) << (*runs)[1].status_message;
    EXPECT_EQ((*runs)[0].status, RunStatus::finished);
    // export and delete
    const std::string csv = (dir / "c.csv").string();
    auto [ec, eout] = cli("runs export " + std::to_string((*runs)[0].id) + " --csv '" + csv + "' --workspace '" + ws.string() + "'");
    EXPECT_EQ(ec, 0) << eout;
    std::ifstream f(csv);
    std::string header;
    std::getline(f, header);
    EXPECT_EQ(header.rfind("step,loss,", 0), 0u) << header;
    auto [dc, dout] = cli("runs delete " + std::to_string((*runs)[1].id) + " --workspace '" + ws.string() + "'");
    EXPECT_EQ(dc, 0) << dout;
    EXPECT_EQ(run_store_list(*st)->size(), 4u);
    auto [nc, nout] = cli("runs show 999 --workspace '" + ws.string() + "'");
    EXPECT_EQ(nc, 1);
    EXPECT_NE(nout.find("no run 999"), std::string::npos) << nout;
    fs::remove_all(dir);
}

// The CLI resolves a sweep's base as the window does (sweep_base_config): a relative "config" next to
// the sweep file, wherever the CLI runs from, and a "preset" among the user's presets of the
// workspace; its points are named by sweep_point_name, as the window names them.
// Successive halving by resume: the pruned runs are stored `pruned` where their rung stopped them and
// `train --resume` continues one; the survivor, paused at two rungs and continued from its checkpoint
// each time, ends with the losses of one unbroken run of its config (rungs off the eval steps).
TEST(Tuning, HalvingSweepPrunesAtRungsAndItsSurvivorIsTheUnbrokenRun) {
    const fs::path dir = fresh_dir("halving"), ws = dir / "ws";
    std::ofstream(dir / "h.json") << R"({"name":"h","preset":"tiny","method":"halving","min_steps":10,"max_steps":40,"eta":2,
        "seeds":2,"set":{"train.eval_every":25},"grid":{"train.lr":[0.001,0.003,0.01,0.002]}})";
    auto [code, out] = cli("sweep --grid '" + (dir / "h.json").string() + "' --workspace '" + ws.string() + "' --out '" +
                           (dir / "out").string() + "'");
    ASSERT_EQ(code, 0) << out;
    EXPECT_NE(out.find("rung 1 at 10 steps: 4 points, the best 2 go on"), std::string::npos) << out;
    EXPECT_NE(out.find("rung 2 at 20 steps: 2 points, the best 1 go on"), std::string::npos) << out;
    EXPECT_NE(out.find("front (min val_loss): 1 point"), std::string::npos) << out;
    // 8 runs to 10 steps, 4 on to 20, 2 on to 40.
    EXPECT_NE(out.find("sweep h: 160 training steps in 14 jobs; 6 runs pruned, 0 failed"), std::string::npos) << out;
    auto [lc, list] = cli("runs list --json --workspace '" + ws.string() + "'");
    ASSERT_EQ(lc, 0) << list;
    std::map<std::string, int> by_status;
    std::string survivor, pruned_name;
    float survivor_val = -1;
    for (const auto& r : nlohmann::json::parse(list)) {
        by_status[r["status"]]++;
        EXPECT_EQ(r["sweep"], "h");
        if (r["status"] == "pruned") {
            EXPECT_TRUE(r["steps"] == 10 || r["steps"] == 20) << r.dump();
            EXPECT_NE(r["status_message"].get<std::string>().find("pruned at rung"), std::string::npos) << r.dump();
            pruned_name = r["name"];
        } else if (r["name"] == "h lr=0.01 seed=1234") {
            survivor = r["name"], survivor_val = r["val_loss"];
            EXPECT_EQ(r["steps"], 40);
        }
    }
    EXPECT_EQ(by_status["pruned"], 6) << list;
    EXPECT_EQ(by_status["finished"], 2) << list;
    ASSERT_FALSE(survivor.empty()) << "lr 0.01 learns fastest in 40 steps of tiny: " << out;
    auto [sc, straight] = cli("train --preset tiny --steps 40 --set train.eval_every=25 --set train.lr=0.01 --workspace '" +
                              (dir / "ws2").string() + "' --out '" + (dir / "straight").string() + "'");
    ASSERT_EQ(sc, 0) << straight;
    const auto summary = nlohmann::json::parse(std::ifstream(dir / "straight" / "summary.json"));
    EXPECT_FLOAT_EQ(survivor_val, summary["final_val_loss"].get<float>()) << "continued exactly at each rung";
    // A pruned run goes on with train --resume (lr 0.001, seed 2, stopped at rung 1), in its own row; the
    // sweep's workspace named again (by another path) is the same store, so no new row.
    auto st = run_store_open((ws / "runs.sqlite").string());
    ASSERT_TRUE(st);
    auto before = run_store_list(*st);
    ASSERT_TRUE(before);
    int64_t pruned_id = 0;
    for (const RunRecord& r : *before)
        if (r.name == "h lr=0.001 seed=1235") {
            pruned_id = r.id;
            EXPECT_EQ(r.status, RunStatus::pruned);
        }
    ASSERT_NE(pruned_id, 0) << list;
    auto [rc, resumed] = cli("train --resume '" + (dir / "out" / "1" / "seed-2").string() + "' --workspace '" + (dir / "." / "ws").string() + "'");
    ASSERT_EQ(rc, 0) << resumed;
    const auto runs = run_store_list(*st);
    ASSERT_TRUE(runs);
    EXPECT_EQ(runs->size(), before->size()) << "no new row";
    auto row = run_store_get(*st, pruned_id);
    ASSERT_TRUE(row);
    EXPECT_EQ(row->status, RunStatus::finished) << "the pruned run, resumed, finished in its row";
    EXPECT_EQ(row->steps, 40);
    fs::remove_all(dir);
}

// TPE and two objectives through the CLI: the trials run, the front is printed.
TEST(Tuning, TpeSweepRunsItsTrialsAndPrintsTheFront) {
    const fs::path dir = fresh_dir("tpe"), ws = dir / "ws";
    std::ofstream(dir / "t.json") << R"({"name":"t","preset":"tiny","method":"tpe","trials":4,"startup":2,"set":{"train.steps":8},
        "objectives":{"val_loss":"min","tok_per_s":"max"},"constraints":["dropped <= 0.5"],
        "grid":{"train.lr":{"min":0.001,"max":0.01,"log":true}}})";
    auto [code, out] = cli("sweep --grid '" + (dir / "t.json").string() + "' --workspace '" + ws.string() + "' --out '" +
                           (dir / "out").string() + "'");
    ASSERT_EQ(code, 0) << out;
    EXPECT_NE(out.find("[4/4] train.lr="), std::string::npos) << out;
    EXPECT_NE(out.find("front (min val_loss, max tok_per_s; dropped <= 0.5):"), std::string::npos) << out;
    auto st = run_store_open((ws / "runs.sqlite").string());
    ASSERT_TRUE(st);
    EXPECT_EQ(run_store_list(*st)->size(), 4u);
    fs::remove_all(dir);
}

// tune-bench: the regret curves of both methods; TPE's first 10 trials are its random start-up, the
// very draws random search makes, so the two medians agree there and part after.
TEST(Tuning, TuneBenchWritesRegretCurvesThatAgreeUntilTheStartupEnds) {
    const fs::path dir = fresh_dir("bench");
    auto [code, out] = cli("tune-bench --trials 40 --repeats 7 --csv '" + (dir / "r.csv").string() + "' --svg '" +
                           (dir / "r.svg").string() + "'");
    ASSERT_EQ(code, 0) << out;
    EXPECT_NE(out.find("branin (optimum 0.397887)"), std::string::npos) << out;
    std::ifstream csv(dir / "r.csv");
    std::string line;
    std::getline(csv, line);
    EXPECT_EQ(line, "function,trial,tpe_q25,tpe_median,tpe_q75,random_q25,random_median,random_q75");
    int rows = 0, parted = 0;
    while (std::getline(csv, line)) {
        std::vector<std::string> f;
        std::stringstream ss(line);
        for (std::string c; std::getline(ss, c, ',');) f.push_back(c);
        ASSERT_EQ(f.size(), 8u) << line;
        const int trial = std::stoi(f[1]);
        if (trial <= 10) EXPECT_EQ(f[3], f[6]) << "start-up: " << line;
        else parted += f[3] != f[6];
        rows++;
    }
    EXPECT_EQ(rows, 2 * 40);
    EXPECT_GT(parted, 10) << "TPE's model changes the suggestions after the start-up";
    std::ifstream svg(dir / "r.svg");
    std::string text((std::istreambuf_iterator<char>(svg)), {});
    EXPECT_NE(text.find("<polyline"), std::string::npos);
    fs::remove_all(dir);
}

TEST(Tuning, SweepBaseAndPointNamesAreTheWindows) {
    const fs::path dir = fresh_dir("base"), ws = dir / "ws", sweeps = dir / "sweeps";
    fs::create_directories(sweeps);
    fs::create_directories(ws / "presets");
    auto tiny = preset_load("tiny");
    ASSERT_TRUE(tiny);
    tiny->name = "beside";
    std::ofstream(sweeps / "base.json") << config_to_json(*tiny);
    tiny->name = "mine";
    std::ofstream(ws / "presets" / "mine.json") << config_to_json(*tiny);
    std::ofstream(sweeps / "rel.json") << R"({"config":"base.json","set":{"train.steps":3},"grid":{"train.lr":[0.001]}})";
    std::ofstream(sweeps / "user.json") << R"({"preset":"mine","set":{"train.steps":3},"grid":{"model.norm":["layernorm"]}})";
    for (const char* f : {"rel.json", "user.json"}) {  // the working folder has no base.json: it is found beside the sweep
        auto [code, out] = cli("sweep --grid '" + (sweeps / f).string() + "' --workspace '" + ws.string() + "' --out '" +
                               (dir / "out").string() + "'");
        ASSERT_EQ(code, 0) << f << ": " << out;
    }
    auto st = run_store_open((ws / "runs.sqlite").string());
    ASSERT_TRUE(st);
    auto runs = run_store_list(*st);
    ASSERT_EQ(runs->size(), 2u);
    EXPECT_EQ((*runs)[1].name, sweep_point_name("rel", "train.lr=0.001"));
    EXPECT_EQ((*runs)[1].name, "rel lr=0.001");
    EXPECT_EQ((*runs)[0].name, "user norm=\"layernorm\"");
    auto base = sweep_base_config(*sweep_parse(R"({"preset":"mine","grid":{"train.lr":[1]}})", "x"), "", "");
    EXPECT_FALSE(base) << "without the workspace's presets folder there is no preset 'mine'";
    EXPECT_NE(base.status.msg.find("sweep x"), std::string::npos) << base.status.msg;
    fs::remove_all(dir);
}

// tests/data/runs-v1.sqlite was written by the window of the schema-1 code: two finished runs with
// checkpoints and a third killed mid-run (no validation loss).
TEST(Tuning, SchemaOneDatabaseOpensUpgradedWithItsRunsAndCurves) {
    const fs::path dir = fresh_dir("v1"), db = dir / "runs.sqlite";
    fs::copy_file(fs::path(ROUTELAB_SOURCE_DIR) / "tests/data/runs-v1.sqlite", db);
    auto st = run_store_open(db.string());
    ASSERT_TRUE(st) << st.status.msg;
    EXPECT_EQ(run_store_schema_version(*st), k_run_store_schema);
    auto runs = run_store_list(*st);
    ASSERT_TRUE(runs && runs->size() == 3u);
    const RunRecord &killed = (*runs)[0], &moh = (*runs)[1], &tiny = (*runs)[2];
    EXPECT_EQ(tiny.name, "tiny");
    EXPECT_EQ(tiny.status, RunStatus::finished);
    EXPECT_EQ(tiny.steps, 12);
    EXPECT_NEAR(tiny.val_loss, 6.7076, 1e-3);
    EXPECT_EQ(tiny.corpus, "embedded");
    EXPECT_EQ(tiny.seed, 1234);
    EXPECT_GE(tiny.tok_per_s, 0.f) << "final metrics computed from the stored curve";
    EXPECT_EQ(moh.name, "seed-moh");
    EXPECT_GE(moh.head_cv, 0.f);
    EXPECT_EQ(run_store_checkpoints(*st, moh.id)->size(), 1u);
    EXPECT_EQ(killed.status, RunStatus::interrupted);
    EXPECT_NE(killed.status_message.find("never reported an end"), std::string::npos);
    EXPECT_EQ(run_store_curve(*st, killed.id)->size(), 5650u);
    EXPECT_EQ(run_store_curve(*st, tiny.id)->size(), 12u);
    // The upgraded store takes new runs with the new fields, and reopening does not upgrade twice.
    auto id = run_store_begin(*st, "after", "{\"data\":{\"corpus\":\"x.txt\"},\"train\":{\"seed\":5}}", {"s1", {"a", "b"}});
    ASSERT_TRUE(id);
    ASSERT_TRUE(run_store_finish(*st, *id, 1.5f));
    auto again = run_store_open(db.string());
    ASSERT_TRUE(again);
    auto r = run_store_get(*again, *id);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, RunStatus::finished);
    EXPECT_EQ(r->corpus, "x.txt");
    EXPECT_EQ(r->seed, 5);
    EXPECT_EQ(r->sweep, "s1");
    EXPECT_EQ(r->tags, (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(run_store_list(*again)->size(), 4u);
    fs::remove_all(dir);
}

TEST(Tuning, SweepFilesExpandAsDocumented) {
    auto g = sweep_parse(R"({"preset":"moh-moe","set":{"train.steps":30},
                            "grid":{"model.attention.heads.beta":[0.001,0.01,0.1],"model.moe.aux_weight":[0.001,0.01]}})", "x");
    ASSERT_TRUE(g) << g.status.msg;
    EXPECT_EQ(g->name, "x");
    EXPECT_EQ(g->preset, "moh-moe");
    ASSERT_EQ(g->points.size(), 6u);
    EXPECT_EQ(g->points[0].sets, (std::vector<std::string>{"train.steps=30", "model.attention.heads.beta=0.001",
                                                             "model.moe.aux_weight=0.001"}));
    EXPECT_EQ(g->points[1].label, "model.attention.heads.beta=0.001 model.moe.aux_weight=0.01");
    EXPECT_EQ(g->points[5].label, "model.attention.heads.beta=0.1 model.moe.aux_weight=0.01");
    auto r = sweep_parse(R"({"name":"rnd","random":5,"seed":3,"grid":{"train.lr":{"min":1e-4,"max":1e-2,"log":true},
                            "model.moe.top_k":[1,2]}})", "x");
    ASSERT_TRUE(r) << r.status.msg;
    EXPECT_EQ(r->name, "rnd");
    EXPECT_EQ(r->preset, "default");
    ASSERT_EQ(r->points.size(), 5u);
    for (const auto& p : r->points) {
        const double lr = std::stod(p.sets[0].substr(p.sets[0].find('=') + 1));
        EXPECT_GE(lr, 1e-4);
        EXPECT_LE(lr, 1e-2);
        char four[32];
        std::snprintf(four, sizeof four, "%.4g", lr);
        EXPECT_EQ(std::stod(four), lr) << p.sets[0] << ": a drawn real keeps 4 significant digits";
        EXPECT_EQ(p.x[0], lr) << "the point is the value the run uses";
        EXPECT_LE(p.sets[0].size(), std::string("train.lr=0.0001234").size()) << p.sets[0] << ": written in the fewest digits";
    }
    // 0.005192 is one of the values nlohmann's dump writes with 17 digits (halving-1 of must-show 1 met it).
    EXPECT_EQ(sweep_point_at(*r, {0.005192, 1}).label, "train.lr=0.005192 model.moe.top_k=2");
    auto again = sweep_parse(R"({"name":"rnd","random":5,"seed":3,"grid":{"train.lr":{"min":1e-4,"max":1e-2,"log":true},
                                "model.moe.top_k":[1,2]}})", "x");
    EXPECT_EQ(again->points[4].sets, r->points[4].sets) << "the same seed draws the same points";
    for (const char* bad : {R"({"grid":{"train.lr":{"min":1,"max":2}}})", R"({"grid":{"train.lr":[]}})",
                            R"({"grid":{"train.lr":3}})", R"({"sweep":{}})", R"({"random":0})", "[1]"}) {
        auto b = sweep_parse(bad, "x");
        EXPECT_FALSE(b) << bad;
        if (!b) {
            EXPECT_NE(b.status.msg.find("sweep"), std::string::npos) << b.status.msg;
        }
    }
}

// A CLI run killed mid-way goes on with `train --resume DIR` in the same store row, and its losses
// are the uninterrupted run's, step for step.
TEST(Tuning, KilledCliRunResumesInItsRowWithTheUninterruptedLosses) {
    const fs::path dir = fresh_dir("resume"), ws = dir / "ws";
    const std::string common = "train --preset tiny --steps 60 --set train.eval_every=10 --workspace '" + ws.string() + "' --out ";
    auto [code, out] = cli(common + "'" + (dir / "straight").string() + "'");
    ASSERT_EQ(code, 0) << out;
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        const int null = ::open("/dev/null", O_WRONLY);
        dup2(null, 1), dup2(null, 2);
        // 60 steps but slowed by a larger batch, so it is still running when killed
        execl("/bin/sh", "sh", "-c", (std::string("'") + ROUTELAB_CLI + "' " + common + "'" + (dir / "cut").string() + "'").c_str(),
              (char*)nullptr);
        _exit(127);
    }
    bool saved = false;
    for (int i = 0; i < 2000 && !saved; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        saved = fs::exists(dir / "cut" / "checkpoint.train-10.safetensors") && fs::exists(dir / "cut" / "checkpoint.safetensors");
    }
    kill(pid, SIGKILL);  // the shell, and with it ...
    int wst = 0;
    waitpid(pid, &wst, 0);
    std::system(("pkill -9 -f '" + (dir / "cut").string() + "' 2>/dev/null").c_str());  // ... the CLI under it
    ASSERT_TRUE(saved) << "no save before the kill";
    auto [rc, rout] = cli("train --resume '" + (dir / "cut").string() + "'");
    ASSERT_EQ(rc, 0) << rout;
    EXPECT_NE(rout.find("(exact)"), std::string::npos) << rout;
    auto losses = [](const fs::path& csv) {
        std::ifstream f(csv);
        std::string line;
        std::getline(f, line);
        std::vector<std::string> v;  // step,loss as written
        while (std::getline(f, line)) v.push_back(line.substr(0, line.find(',', line.find(',') + 1)));
        return v;
    };
    EXPECT_EQ(losses(dir / "cut" / "metrics.csv"), losses(dir / "straight" / "metrics.csv"));
    auto st = run_store_open((ws / "runs.sqlite").string());
    ASSERT_TRUE(st);
    auto runs = run_store_list(*st);
    ASSERT_EQ(runs->size(), 2u) << "the resumed run kept its row";
    EXPECT_EQ((*runs)[0].status, RunStatus::finished);
    EXPECT_EQ((*runs)[0].steps, 60);
    EXPECT_EQ((*runs)[0].final_loss, (*runs)[1].final_loss);
    EXPECT_EQ(run_store_curve(*st, (*runs)[0].id)->size(), 60u);
    fs::remove_all(dir);
}

// The window and a CLI sweep write one store at once: two processes appending to their own runs
// never lose a row or fail on the lock.
TEST(Tuning, TwoProcessesWriteOneStoreAtOnce) {
    const fs::path dir = fresh_dir("two"), db = dir / "runs.sqlite";
    ASSERT_TRUE(run_store_open(db.string()));
    auto write_run = [&](const char* name) {
        auto st = run_store_open(db.string());
        if (!st) return 10;
        auto id = run_store_begin(*st, name, "{}");
        if (!id) return 11;
        for (int b = 0; b < 100; b++) {
            std::vector<CurvePoint> pts;
            for (int i = 0; i < 5; i++) pts.push_back(CurvePoint{b * 5 + i + 1, 1.f});
            if (!run_store_append(*st, *id, pts)) return 12;
        }
        return run_store_finish(*st, *id, 1.f) ? 0 : 13;
    };
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) _exit(write_run("child"));
    const int mine = write_run("parent");
    int wst = 0;
    waitpid(pid, &wst, 0);
    EXPECT_EQ(mine, 0);
    ASSERT_TRUE(WIFEXITED(wst));
    EXPECT_EQ(WEXITSTATUS(wst), 0);
    auto st = run_store_open(db.string());
    auto runs = run_store_list(*st);
    ASSERT_EQ(runs->size(), 2u);
    for (const auto& r : *runs) {
        EXPECT_EQ(r.status, RunStatus::finished) << r.name;
        EXPECT_EQ(run_store_curve(*st, r.id)->size(), 500u) << r.name;
    }
    fs::remove_all(dir);
}

// Every lesson names its view and runs presets that exist with overrides that validate; the shortest
// one runs end to end and its conclusion quotes the run's own numbers.
TEST(Lessons, EveryLessonIsValidAndTheHeadsLessonConcludesFromItsRun) {
    ASSERT_EQ(lessons().size(), 8u);
    for (const Lesson& l : lessons()) {
        EXPECT_FALSE(l.text.empty() || l.look_at.empty()) << l.name;
        EXPECT_TRUE(l.view == "heads" || l.view == "experts" || l.view == "curves" || l.view == "speedup" || l.view == "cluster")
            << l.name;
        for (const auto& r : l.runs) {
            auto cfg = preset_load(r.preset);
            ASSERT_TRUE(cfg) << l.name << ": " << r.preset;
            for (const auto& s : r.sets) ASSERT_TRUE(config_apply_override(*cfg, s)) << l.name << ": " << s;
            EXPECT_TRUE(config_validate(*cfg)) << l.name << ": " << config_validate(*cfg).msg;
            EXPECT_LE(cfg->train.steps, 300) << l.name << ": a lesson run stays under a minute";
        }
    }
    Lesson quick = *lesson_find("heads");
    quick.runs[0].sets = {"train.steps=20", "train.batch_size=4"};
    auto r = lesson_run(quick);
    ASSERT_TRUE(r) << r.status.msg;
    ASSERT_EQ(r->size(), 1u);
    const std::string c = quick.conclude(*r);
    char val[16];
    std::snprintf(val, sizeof val, "%.3f", (*r)[0].val_loss);
    EXPECT_NE(c.find("After 20 steps"), std::string::npos) << c;
    EXPECT_NE(c.find(val), std::string::npos) << "the conclusion quotes the run's validation loss: " << c;
    EXPECT_EQ(lesson_find("nope"), nullptr);
}

// The cost of imbalance (issue 25): three short runs costed on one cluster; the conclusion quotes each
// run's imbalance, time and validation loss and names the slowest and the fastest.
TEST(Lessons, ImbalanceCostConcludesFromTheRunsLoads) {
    Lesson quick = *lesson_find("imbalance-cost");
    for (auto& run : quick.runs) run.sets[0] = "train.steps=16", run.sets.push_back("train.batch_size=4");
    auto r = lesson_run(quick);
    ASSERT_TRUE(r) << r.status.msg;
    ASSERT_EQ(r->size(), 3u);
    const std::string c = quick.conclude(*r);
    EXPECT_EQ(c.find("refused"), std::string::npos) << c;
    for (const LessonResult& x : *r) {
        char val[32];
        std::snprintf(val, sizeof val, "val loss %.3f", x.val_loss);
        EXPECT_NE(c.find(x.spec.label + ": worst layer's imbalance"), std::string::npos) << c;
        EXPECT_NE(c.find(val), std::string::npos) << c;
    }
    EXPECT_NE(c.find("slower than balanced"), std::string::npos) << c;
}
