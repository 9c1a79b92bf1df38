// Resume: a run saved at step 20 and picked up again takes the steps the uninterrupted run takes,
// bit for bit (weights, buffers, AdamW moments, sampler RNG, the global-balance window), and a
// checkpoint without its companion resumes with a fresh optimizer, saying so.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "config/presets.h"
#include "io/resume.h"
#include "train/trainer.h"
#include "util/threads.h"

using namespace rl;
namespace fs = std::filesystem;

namespace {

Config resume_config(bool routed) {
    Config c = *preset_load("tiny");
    c.train.steps = 40;
    c.train.eval_every = 10;
    if (routed) {  // every kind of state a step carries over: expert bias, global window, MoH
        c.model.moe.kind = FfnRouting::moe;
        c.model.moe.n_experts = 4;
        c.model.moe.d_ff_expert = 16;
        c.model.moe.expert_bias = true;
        c.model.moe.load_balancing = LoadBalancing::global_aux_loss;
        c.model.moe.global_aux_window = 4;
        c.model.attention.heads.kind = HeadSelection::moh;
        c.model.attention.heads.n_shared = 1;
        c.model.attention.heads.n_active_routed = 2;
        c.model.attention.heads.head_bias = true;
    }
    return c;
}

}  // namespace

class Resume : public ::testing::TestWithParam<bool> {};

TEST_P(Resume, TwentyStepsPlusResumePlusTwentyEqualFortyBitForBit) {
    const Config cfg = resume_config(GetParam());
    std::vector<float> straight, resumed;
    auto a = trainer_create(cfg);
    ASSERT_TRUE(a.is_ok()) << a.status.msg;
    for (int i = 0; i < 40; i++) straight.push_back(trainer_step(**a).loss);
    const float val_straight = trainer_eval(**a);

    const fs::path dir = fs::temp_directory_path() / ("rl_resume_" + std::to_string(getpid()) + (GetParam() ? "r" : "d"));
    fs::create_directories(dir);
    const std::string ck = (dir / "checkpoint.safetensors").string();
    {
        auto b = trainer_create(cfg);
        ASSERT_TRUE(b.is_ok());
        for (int i = 0; i < 20; i++) resumed.push_back(trainer_step(**b).loss);
        ASSERT_TRUE(run_save(**b, ck).is_ok());
    }  // the first process is gone
    ASSERT_TRUE(fs::exists(run_state_path(ck, 20)));
    auto r = run_resume(ck);
    ASSERT_TRUE(r.is_ok()) << r.status.msg;
    EXPECT_TRUE(r->exact) << r->note;
    TrainState& s = *r->state;
    EXPECT_EQ(s.step, 20);
    for (int i = 0; i < 20; i++) resumed.push_back(trainer_step(s).loss);
    ASSERT_EQ(resumed.size(), straight.size());
    for (size_t i = 0; i < straight.size(); i++) ASSERT_EQ(resumed[i], straight[i]) << "step " << i + 1;
    EXPECT_EQ(s.model.params.data, (*a)->model.params.data) << "the same weights at step 40";
    EXPECT_EQ(s.model.buffers.data, (*a)->model.buffers.data) << "the same selection biases";
    EXPECT_EQ(trainer_eval(s), val_straight);

    // Without the companion: the weights, a fresh optimizer, and a note saying so.
    fs::remove(run_state_path(ck, 20));
    auto fresh = run_resume(ck);
    ASSERT_TRUE(fresh.is_ok()) << fresh.status.msg;
    EXPECT_FALSE(fresh->exact);
    EXPECT_NE(fresh->note.find("optimizer starts fresh"), std::string::npos) << fresh->note;
    fs::remove_all(dir);
}
INSTANTIATE_TEST_SUITE_P(Configs, Resume, ::testing::Bool(),
                         [](const auto& info) { return std::string(info.param ? "routed" : "dense"); });

// The same run on one thread and on every core takes bit-identical steps: no sum depends on how the
// work was split (per-thread partial sums were; the governor changes the count between steps, so a
// resumed run could drift from the straight one).
TEST(Determinism, OneThreadAndAllThreadsTakeTheSameSteps) {
    if (cpu_count() < 2) GTEST_SKIP() << "one core: nothing to compare";
    for (const char* preset : {"tiny", "seed-baseline", "seed-moh", "moe-top2-8"}) {
        Config c = *preset_load(preset);
        c.train.batch_size = 4;
        c.data.synthetic_docs = 100;
        std::vector<float> curve[2];
        FloatBuffer weights[2];
        for (int run = 0; run < 2; run++) {
            set_thread_count(run == 0 ? 1 : cpu_count());
            auto s = trainer_create(c);
            ASSERT_TRUE(s.is_ok()) << s.status.msg;
            (*s)->threads.use_load = false;  // the timing fallback: it switches between 1 and all threads as it probes
            for (int i = 0; i < 6; i++) curve[run].push_back(trainer_step(**s).loss);
            weights[run] = (*s)->model.params.data;  // the updates too, not only the losses
        }
        set_thread_count(cpu_count());
        for (int i = 0; i < 6; i++) EXPECT_EQ(curve[0][i], curve[1][i]) << preset << " step " << i + 1;
        EXPECT_TRUE(weights[0] == weights[1]) << preset << ": the weights after 6 steps differ";
    }
}
