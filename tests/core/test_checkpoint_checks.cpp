// Reading a checkpoint treats its metadata as untrusted as its bytes: a truncated file, a step that is
// not a count, a companion named by a path outside the folder, a window position out of range are
// each a message naming the file, never a crash or a read elsewhere.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "config/presets.h"
#include "io/checkpoint.h"
#include "io/resume.h"
#include "io/safetensors.h"
#include "train/trainer.h"

using namespace rl;
namespace fs = std::filesystem;

namespace {

#define EXPECT_HAS(msg, part) EXPECT_NE((msg).find(part), std::string::npos) << (msg)

class CheckpointChecks : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("routelab_ckchk_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) +
                                            "_" + std::to_string(::getpid()));
        fs::remove_all(dir_);
        fs::create_directories(dir_);
        ck_ = (dir_ / "checkpoint.safetensors").string();
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    // A routed run (MoE with the global-balance window) saved at step 2 to ck_.
    void save_run() {
        Config c = *preset_load("tiny");
        c.model.moe.kind = FfnRouting::moe;
        c.model.moe.n_experts = 4;
        c.model.moe.d_ff_expert = 16;
        c.model.moe.load_balancing = LoadBalancing::global_aux_loss;
        c.model.moe.global_aux_window = 4;
        auto st = trainer_create(c);
        ASSERT_TRUE(st.is_ok()) << st.status.msg;
        trainer_step(**st), trainer_step(**st);
        ASSERT_TRUE(run_save(**st, ck_));
    }
    // Rewrites `file` with one metadata entry changed (tensors kept).
    static void set_meta(const std::string& file, const std::string& key, const std::string& value) {
        auto f = safetensors_read(file);
        ASSERT_TRUE(f.is_ok()) << f.status.msg;
        std::vector<TensorView> views;
        for (const auto& [name, t] : f->tensors) views.push_back({name, t.shape, t.data.data()});
        f->metadata[key] = value;
        ASSERT_TRUE(safetensors_write(file, views, f->metadata));
    }
    std::string load_error() {
        auto r = checkpoint_load(ck_);
        EXPECT_FALSE(r.is_ok());
        return r.status.msg;
    }
    fs::path dir_;
    std::string ck_;
};

}  // namespace

TEST_F(CheckpointChecks, TruncatedCheckpointIsAMessage) {
    save_run();
    const auto size = fs::file_size(ck_);
    for (uintmax_t keep : {uintmax_t{0}, uintmax_t{7}, uintmax_t{100}, size / 2, size - 1}) {
        fs::resize_file(ck_, keep);
        const std::string m = load_error();
        EXPECT_HAS(m, ck_);
        if (keep > 8) EXPECT_HAS(m, "truncated");
    }
}

TEST_F(CheckpointChecks, StepAndEntropyMustBeNumbers) {
    save_run();
    for (const char* bad : {"abc", "-5", "12x", "", "99999999999"}) {
        set_meta(ck_, "routelab_step", bad);
        EXPECT_HAS(load_error(), "routelab_step");
    }
    set_meta(ck_, "routelab_step", "2");
    for (const char* bad : {"nan", "inf", "-1", "x"}) {
        set_meta(ck_, "routelab_attn_entropy", bad);
        EXPECT_HAS(load_error(), "routelab_attn_entropy");
    }
    set_meta(ck_, "routelab_attn_entropy", "1.5");
    auto ok = checkpoint_load(ck_);
    ASSERT_TRUE(ok.is_ok()) << ok.status.msg;
    EXPECT_EQ((*ok)->info.step, 2);
}

// The companion is a file beside the checkpoint: a path in the metadata never reads another file.
TEST_F(CheckpointChecks, CompanionMustBeAFileInTheSameFolder) {
    save_run();
    const std::string outside = (dir_.parent_path() / "elsewhere.safetensors").string();
    for (const std::string& bad : {std::string("../elsewhere.safetensors"), outside, std::string(".."), std::string("")}) {
        set_meta(ck_, "routelab_train_state", bad);
        EXPECT_HAS(load_error(), "must name a file in the checkpoint's folder");
        auto r = run_resume(ck_);
        EXPECT_FALSE(r.is_ok());
    }
}

TEST_F(CheckpointChecks, CorruptCompanionIsRefusedNotUsed) {
    save_run();
    const std::string state = run_state_path(ck_, 2);
    ASSERT_TRUE(fs::exists(state));
    auto orig = safetensors_read(state);
    ASSERT_TRUE(orig.is_ok());
    const std::string good = orig->metadata.at("routelab_ring_pos");  // one position per layer: "p0,p1"
    ASSERT_FALSE(good.empty());
    for (const char* bad : {"-1", "4", "x", ""}) {  // the window holds 4 rows: 0..3
        set_meta(state, "routelab_ring_pos", bad);
        auto r = run_resume(ck_);
        ASSERT_FALSE(r.is_ok()) << "ring_pos " << bad;
        EXPECT_HAS(r.status.msg, "routelab_ring_pos");
        EXPECT_HAS(r.status.msg, state);
    }
    set_meta(state, "routelab_ring_pos", good);
    auto r = run_resume(ck_);
    ASSERT_TRUE(r.is_ok()) << r.status.msg;
    EXPECT_TRUE(r->exact);
    // A truncated companion is a message too.
    fs::resize_file(state, fs::file_size(state) / 2);
    auto t = run_resume(ck_);
    ASSERT_FALSE(t.is_ok());
    EXPECT_HAS(t.status.msg, "truncated");
}
