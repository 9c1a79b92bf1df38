// The trainer <-> GUI channels (docs/architecture.md §2) under real threads; run under ThreadSanitizer by
// scripts/tsan.sh. Includes the live-change path: an lr change sent from another thread reaches
// the trainer and shows in its StepStats.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <thread>

#include "config/presets.h"
#include "optim/optim.h"
#include "train/live.h"
#include "util/channel.h"

using namespace rl;

TEST(Channel, RingIsFifoAndCountsDropsWhenFull) {
    SpscRing<int, 4> r;
    for (int i = 0; i < 6; i++) r.push(i);
    EXPECT_EQ(r.dropped(), 2u);
    int v;
    for (int i = 0; i < 4; i++) {
        ASSERT_TRUE(r.pop(v));
        EXPECT_EQ(v, i);
    }
    EXPECT_FALSE(r.pop(v));
}

TEST(Channel, RingAcrossThreadsLosesNothingButCountedDrops) {
    SpscRing<uint64_t, 256> r;
    constexpr uint64_t n = 200000;
    std::atomic<bool> done{false};
    std::thread producer([&] {
        for (uint64_t i = 1; i <= n; i++) r.push(i);  // never waits
        done = true;
    });
    uint64_t received = 0, last = 0, v;
    for (;;) {
        if (r.pop(v)) {
            ASSERT_GT(v, last) << "order kept";
            last = v;
            received++;
        } else if (done.load()) {
            if (!r.pop(v)) break;  // the producer finished: drain what is left
            ASSERT_GT(v, last);
            last = v;
            received++;
        }
    }
    producer.join();
    EXPECT_EQ(received + r.dropped(), n);
}

TEST(Channel, TripleBufferReaderSeesWholeNewestValues) {
    struct Snap {
        uint64_t a = 0, b = 0;
        float pad[64] = {};
    };
    TripleBuffer<Snap> tb;
    constexpr uint64_t n = 100000;
    std::thread writer([&] {
        for (uint64_t i = 1; i <= n; i++) {
            Snap& s = tb.write_slot();
            s.a = i;
            s.b = 2 * i;
            tb.publish();
        }
    });
    uint64_t last = 0, seen = 0;
    while (last < n) {
        if (!tb.acquire()) continue;
        const Snap& s = tb.read_slot();
        ASSERT_EQ(s.b, 2 * s.a) << "a torn snapshot";
        ASSERT_GE(s.a, last) << "never older than what was already read";
        last = s.a;
        seen++;
    }
    writer.join();
    EXPECT_GT(seen, 0u);
}

TEST(Channel, LiveLrChangeReachesTheTrainerThread) {
    auto cfg = preset_load("tiny");
    cfg->train.steps = 1000;
    cfg->train.warmup_steps = 0;
    auto st = trainer_create(*cfg);
    ASSERT_TRUE(st.is_ok());
    TrainState& s = **st;
    SpscRing<StepStats, 64> stats;
    SpscRing<LiveCommand, 16> commands;
    std::atomic<bool> stop{false};
    std::thread trainer([&] {
        while (!stop) {
            LiveCommand c;
            while (commands.pop(c)) trainer_apply(s, c);  // step boundary
            StepStats ss = trainer_step(s);
            while (!stats.push(ss) && !stop) std::this_thread::yield();
            if (ss.step >= 60) break;
        }
    });
    const float new_lr = 1e-4f;
    bool sent = false;
    int changed_at = -1;
    StepStats ss;
    float lr_after = 0;
    while (true) {
        if (!stats.pop(ss)) {
            std::this_thread::yield();
            continue;
        }
        if (!sent && ss.step >= 10) {
            commands.push({LiveKey::lr, new_lr});
            sent = true;
            changed_at = ss.step;
        }
        if (ss.step >= 60) {
            lr_after = ss.lr;
            break;
        }
    }
    stop = true;
    trainer.join();
    ASSERT_GT(changed_at, 0);
    // After the change the schedule runs from the new peak: cosine from 1e-4 at step 59 of 1000.
    const float expect = lr_schedule(59, 1000, 0, new_lr, s.cfg.train.min_lr);
    EXPECT_NEAR(lr_after, expect, 1e-9) << "the trainer's StepStats carry the new lr";
    EXPECT_LT(lr_after, 2e-4f);
    EXPECT_FALSE(trainer_apply(s, {LiveKey::lr, -1.f}).is_ok());
    EXPECT_NE(trainer_apply(s, {LiveKey::beta, NAN}).msg.find("model.attention.heads.beta"), std::string::npos);
}
