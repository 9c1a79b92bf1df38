// The sweep's search (config/sweep_search.h) driven by a synthetic trainer: a run's validation loss
// at step s is its point's quality plus a learning curve that falls with s, plus per-seed noise. The
// schedule of successive halving and Hyperband (Li et al. 2018, Table 1), who is pruned and why,
// the budget, failed seeds, TPE's trials and the Pareto front under a constraint.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "config/presets.h"
#include "config/sweep_search.h"

using namespace rl;

namespace {

Sweep parse(const std::string& json) {
    auto s = sweep_parse(json, "t");
    EXPECT_TRUE(s) << s.status.msg;
    return s ? *s : Sweep{};
}

TuneSearch begin(const Sweep& sw) {
    auto base = preset_load("tiny");
    EXPECT_TRUE(base);
    auto t = tune_begin(sw, *base);
    EXPECT_TRUE(t) << t.status.msg;
    return *t;
}

// The point's values -> its loss at step s (lr's index: 0 best), dropped share from aux_weight.
TuneMetrics synthetic(const TuneSearch& t, const TuneJob& j) {
    const TunePoint& x = t.points[j.point].point.x;
    TuneMetrics m;
    m.ok = true;
    const double quality = 0.1 * x[0] + (x.size() > 1 ? 0.01 * x[1] : 0);
    m[TuneMetric::val_loss] = 2 + quality + 5.0 / j.to_step + 0.001 * j.replicate;
    m[TuneMetric::tok_per_s] = 1000 + 50 * x[0];
    m[TuneMetric::dropped] = x.size() > 1 && x[1] == 0 ? 0.05 : 0.0;
    return m;
}

struct Trace {
    std::vector<TuneJob> trains, prunes;
    long long steps = 0;
};

Trace drive(TuneSearch& t, const std::function<TuneMetrics(const TuneSearch&, const TuneJob&)>& f = synthetic) {
    Trace tr;
    std::map<std::pair<int, int>, int> reached;  // (point, seed) -> step
    while (auto j = tune_next(t)) {
        if (j->kind == TuneJob::Kind::prune) {
            tr.prunes.push_back(*j);
            continue;
        }
        int& at = reached[std::make_pair(j->point, j->replicate)];
        EXPECT_EQ(at, j->from_step) << "a run goes on from where it stopped";
        at = j->to_step;
        tr.steps += j->to_step - j->from_step;
        tr.trains.push_back(*j);
        tune_report(t, *j, f(t, *j));
    }
    return tr;
}

}  // namespace

TEST(SweepSearch, GridRunsEveryPointsSeedsToTheEndAndRanksByTheMean) {
    TuneSearch t = begin(parse(R"({"set":{"train.steps":40},"seeds":3,"grid":{"train.lr":[0.003,0.001,0.01]}})"));
    const Trace tr = drive(t);
    ASSERT_EQ(tr.trains.size(), 9u);
    EXPECT_TRUE(tr.prunes.empty());
    EXPECT_EQ(tr.steps, 9 * 40);
    EXPECT_EQ(t.steps_spent, tr.steps);
    for (const TuneJob& j : tr.trains) EXPECT_TRUE(j.last && j.from_step == 0 && j.to_step == 40);
    const auto sums = tune_summaries(t);
    ASSERT_EQ(sums.size(), 3u);
    EXPECT_EQ(sums[1].runs, 3);
    EXPECT_NEAR(sums[1].mean[0], 2 + 0.1 + 5.0 / 40 + 0.001, 1e-12) << "mean over the three seeds";
    EXPECT_NEAR(sums[1].lo[0], 2 + 0.1 + 5.0 / 40, 1e-12);
    EXPECT_NEAR(sums[1].hi[0], 2 + 0.1 + 5.0 / 40 + 0.002, 1e-12);
    EXPECT_NEAR(sums[1].sd[0], 0.001, 1e-9);
    EXPECT_EQ(tune_front(t), std::vector<int>{0}) << "one objective: the front is the best point";
    // The run config of a job: the point's key, max steps, seed offset, its name.
    TuneJob j;
    j.point = 2, j.replicate = 2;
    auto cfg = tune_job_config(t, j);
    ASSERT_TRUE(cfg) << cfg.status.msg;
    EXPECT_FLOAT_EQ(cfg->train.lr, 0.01f);
    EXPECT_EQ(cfg->train.steps, 40);
    EXPECT_EQ(cfg->train.seed, t.base.train.seed + 2);
    EXPECT_EQ(cfg->name, "t lr=0.01 seed=" + std::to_string(t.base.train.seed + 2));
}

TEST(SweepSearch, HalvingContinuesTheBestThirdFromWhereTheyStoodAndPrunesTheRest) {
    // 9 points (lr index 0..2 × 3 values of a second key), 2 seeds, rungs 100, 300, 900.
    TuneSearch t = begin(parse(R"({"method":"halving","min_steps":100,"max_steps":900,"eta":3,"seeds":2,
        "grid":{"train.lr":[0.001,0.002,0.003],"model.moe.aux_weight":[0,0.01,0.02]}})"));
    ASSERT_EQ(t.brackets.size(), 1u);
    EXPECT_EQ(t.brackets[0].rung_steps, (std::vector<int>{100, 300, 900}));
    const Trace tr = drive(t);
    EXPECT_EQ(tr.steps, 9 * 2 * 100 + 3 * 2 * 200 + 1 * 2 * 600) << "survivors train only the steps they have not";
    EXPECT_EQ(tr.trains.size(), (size_t)(18 + 6 + 2));
    ASSERT_EQ(t.rungs.size(), 2u);
    EXPECT_EQ(t.rungs[0].kept, 3);
    EXPECT_EQ(t.rungs[1].kept, 1);
    // The best by loss: lr index 0 with aux 0, 0.01, 0.02 (quality 0, 0.01, 0.02).
    EXPECT_EQ(std::set<int>(t.rungs[0].points.begin(), t.rungs[0].points.begin() + 3), (std::set<int>{0, 1, 2}));
    EXPECT_EQ(t.rungs[1].points[0], 0);
    EXPECT_EQ(tr.prunes.size(), (size_t)(6 * 2 + 2 * 2)) << "every seed of every pruned point";
    for (const TuneJob& p : tr.prunes) {
        EXPECT_EQ(t.points[p.point].state, TunePointState::State::pruned);
        EXPECT_NE(p.why.find("pruned at rung"), std::string::npos) << p.why;
    }
    EXPECT_EQ(t.points[0].state, TunePointState::State::finished);
    EXPECT_EQ(tune_front(t), std::vector<int>{0});
}

TEST(SweepSearch, HalvingRanksFeasiblePointsFirst) {
    // dropped <= 0.01 rules out aux_weight 0 (synthetic dropped 0.05), the best by loss.
    TuneSearch t = begin(parse(R"({"method":"halving","min_steps":10,"max_steps":90,"eta":3,"constraints":["dropped <= 0.01"],
        "grid":{"train.lr":[0.001,0.002,0.003],"model.moe.aux_weight":[0,0.01,0.02]}})"));
    drive(t);
    ASSERT_FALSE(t.rungs.empty());
    const TuneRung& r = t.rungs[0];
    EXPECT_EQ(std::set<int>(r.points.begin(), r.points.begin() + 3), (std::set<int>{1, 2, 4})) << "feasible, by loss";
    EXPECT_GT(r.violation.back(), 0) << "infeasible last";
    EXPECT_EQ(tune_front(t), std::vector<int>{1});
}

TEST(SweepSearch, HalvingRanksInfeasiblePointsByLossNotByViolation) {
    // As in a real top-1 capacity sweep: at the first rung every point drops far more than 1% of its
    // tokens, and the points that drop least early are the worst by loss (a low learning rate moves the
    // router less). The rung keeps the best by loss; by the end they drop nothing.
    TuneSearch t = begin(parse(R"({"method":"halving","min_steps":10,"max_steps":90,"eta":3,"constraints":["dropped <= 0.01"],
        "grid":{"train.lr":[0.001,0.002,0.003,0.004,0.005,0.006,0.007,0.008,0.009]}})"));
    drive(t, [](const TuneSearch& s, const TuneJob& j) {
        TuneMetrics m = synthetic(s, j);
        const double x = s.points[j.point].point.x[0];
        m[TuneMetric::dropped] = j.to_step < 90 ? 0.2 + 0.3 * (8 - x) / 8 : 0.0;  // lr index 0: best loss, most drops
        return m;
    });
    ASSERT_FALSE(t.rungs.empty());
    const TuneRung& r = t.rungs[0];
    ASSERT_EQ(r.kept, 3);
    EXPECT_GT(r.violation[0], 0) << "every point infeasible at the rung";
    EXPECT_EQ(std::vector<int>(r.points.begin(), r.points.begin() + 3), (std::vector<int>{0, 1, 2})) << "by loss, not by violation";
    EXPECT_EQ(tune_front(t), std::vector<int>{0}) << "the best by loss finished feasible";
}

TEST(SweepSearch, HyperbandBracketsAreTheOnesOfLiEtAlTableOne) {
    // R = 81, eta = 3: (n, r) = (81, 1), (34, 3), (15, 9), (8, 27), (5, 81).
    TuneSearch t = begin(parse(R"({"method":"halving","hyperband":true,"min_steps":1,"max_steps":81,"eta":3,
        "grid":{"train.lr":{"min":1e-4,"max":1e-2,"log":true}}})"));
    ASSERT_EQ(t.brackets.size(), 5u);
    const int n[] = {81, 34, 15, 8, 5}, r[] = {1, 3, 9, 27, 81};
    for (int b = 0; b < 5; b++) {
        EXPECT_EQ(t.brackets[b].size, n[b]) << b;
        EXPECT_EQ(t.brackets[b].rung_steps.front(), r[b]) << b;
        EXPECT_EQ(t.brackets[b].rung_steps.back(), 81) << b;
    }
    const Trace tr = drive(t);
    EXPECT_EQ(t.points.size(), (size_t)(81 + 34 + 15 + 8 + 5));
    // Bracket 0's rungs keep 27, 9, 3, 1 of 81 (floor(n/eta)).
    std::vector<int> kept;
    for (const TuneRung& g : t.rungs)
        if (g.bracket == 0) kept.push_back(g.kept);
    EXPECT_EQ(kept, (std::vector<int>{27, 9, 3, 1}));
    int finished = 0;
    for (const auto& p : t.points) finished += p.state == TunePointState::State::finished;
    EXPECT_EQ(finished, 1 + 1 + 1 + 2 + 5) << "each bracket's last rung (s = 0 trains all five to the end)";
    EXPECT_GT(tr.steps, 0);
}

TEST(SweepSearch, BudgetStopsTheSearchBeforeAJobThatWouldPassIt) {
    TuneSearch t = begin(parse(R"({"set":{"train.steps":50},"budget":120,"grid":{"train.lr":[0.001,0.002,0.003,0.004]}})"));
    const Trace tr = drive(t);
    EXPECT_EQ(tr.trains.size(), 2u);
    EXPECT_EQ(tr.steps, 100);
    EXPECT_TRUE(t.budget_hit);
}

TEST(SweepSearch, AFailedSeedDropsItsPointAndItsOtherSeedsDoNotTrain) {
    TuneSearch t = begin(parse(R"({"set":{"train.steps":20},"seeds":3,"grid":{"train.lr":[0.001,0.002]}})"));
    const Trace tr = drive(t, [](const TuneSearch& s, const TuneJob& j) {
        TuneMetrics m = synthetic(s, j);
        if (j.point == 0 && j.replicate == 0) m.ok = false;
        return m;
    });
    EXPECT_EQ(tr.trains.size(), 1u + 3u);
    EXPECT_EQ(t.points[0].state, TunePointState::State::failed);
    EXPECT_EQ(tr.steps, 4 * 20);
    EXPECT_EQ(t.steps_spent, 4 * 20) << "the skipped seeds' steps are not counted";
    EXPECT_EQ(tune_front(t), std::vector<int>{1});
}

TEST(SweepSearch, TpeMakesItsTrialsAndTwoObjectivesGiveAFrontUnderTheConstraint) {
    TuneSearch t = begin(parse(R"({"method":"tpe","trials":14,"startup":5,"set":{"train.steps":10},
        "objectives":{"val_loss":"min","tok_per_s":"max"},"constraints":["dropped <= 0.01"],
        "grid":{"train.lr":{"min":0,"max":2},"model.moe.aux_weight":[0,0.01,0.02]}})"));
    const Trace tr = drive(t);
    ASSERT_EQ(t.points.size(), 14u);
    EXPECT_EQ(tr.trains.size(), 14u);
    // lr trades loss (+0.1·x0) for speed (+50·x0), so the front has points of both ends; the infeasible
    // (aux index 0, dropped 5%) are never on it, however good.
    const std::vector<int> front = tune_front(t);
    ASSERT_FALSE(front.empty());
    for (int i : front) EXPECT_NE(t.points[i].point.x[1], 0.0) << t.points[i].point.label;
    const auto sums = tune_summaries(t);
    for (size_t k = 1; k < front.size(); k++) {
        EXPECT_LT(sums[front[k - 1]].mean[0], sums[front[k]].mean[0]) << "sorted by the first objective";
        EXPECT_LT(sums[front[k - 1]].mean[1], sums[front[k]].mean[1]) << "so the second falls (maximised: rises back)";
    }
}

TEST(SweepSearch, ParseRefusesWhatTheMethodsCannotUse) {
    for (const char* bad :
         {R"({"method":"halving","grid":{"train.lr":[1]}})", R"({"method":"tpe","grid":{"train.lr":{"min":0,"max":1}}})",
          R"({"method":"annealing"})", R"({"trials":5,"grid":{"train.lr":[1]}})", R"({"eta":3,"grid":{"train.lr":[1]}})",
          R"({"seeds":0,"grid":{"train.lr":[1]}})", R"({"objectives":{"speed":"max"}})", R"({"objectives":{"val_loss":"low"}})",
          R"({"constraints":["dropped < 0.01"]})", R"({"constraints":["dropped <= x"]})",
          R"({"method":"halving","min_steps":900,"max_steps":100,"grid":{"train.lr":[1]}})",
          R"({"method":"tpe","trials":5,"random":3,"grid":{"train.lr":{"min":0,"max":1}}})", R"({"method":3})", R"({"method":null})",
          R"({"random":2,"grid":{"train.lr":{"min":0.1,"max":1,"log":"yes"}}})"}) {
        auto s = sweep_parse(bad, "x");
        EXPECT_FALSE(s) << bad;
        if (!s) {
            EXPECT_EQ(s.status.msg.rfind("sweep: '", 0), 0u) << s.status.msg;
        }
    }
    const Sweep s = parse(R"({"objectives":{"val_loss":"min","tok_per_s":"max"},"constraints":["dropped <= 0.01"],"grid":{"train.lr":[1]}})");
    ASSERT_EQ(s.objectives.size(), 2u);
    EXPECT_TRUE(s.objectives[1].maximise);
    ASSERT_EQ(s.constraints.size(), 1u);
    EXPECT_EQ(s.constraints[0].text, "dropped <= 0.01");
    TuneMetrics m;
    m[TuneMetric::dropped] = 0.015;
    EXPECT_NEAR(tune_violation(s, m), 0.5, 1e-12) << "how far past the bound, relative to it";
    m[TuneMetric::dropped] = 0.01;
    EXPECT_EQ(tune_violation(s, m), 0.0);
}

TEST(SweepSearch, ImportanceNamesTheKeyTheLossFollows) {
    // The synthetic loss moves 0.1 per lr index and 0.01 per aux_weight index.
    TuneSearch t = begin(parse(R"({"set":{"train.steps":10},"grid":{"train.lr":[0.001,0.002,0.003,0.004,0.005,0.006],
        "model.moe.aux_weight":[0,0.01,0.02,0.03,0.04]}})"));
    TuneSearch few = t;
    drive(t);
    const std::vector<double> imp = tune_importances(t);
    ASSERT_EQ(imp.size(), 2u);
    EXPECT_GT(imp[0], 0.7) << imp[0] << " " << imp[1];
    EXPECT_NEAR(imp[0] + imp[1], 1.0, 1e-9);
    few.points.resize(9);
    drive(few);
    EXPECT_TRUE(tune_importances(few).empty()) << "fewer than 10 finished points";
}

TEST(SweepSearch, HalvingDropsTheSeedsOfAPointThatFailedAndTheBudgetNeverSplitsARung) {
    const char* file = R"({"method":"halving","min_steps":10,"max_steps":90,"eta":3,"seeds":2,
        "grid":{"train.lr":[0.001,0.002,0.003],"model.moe.aux_weight":[0,0.01,0.02]}})";
    // Point 0 (the best) fails on its second seed at rung 2: its first seed, paused there, is dropped.
    TuneSearch t = begin(parse(file));
    const Trace tr = drive(t, [](const TuneSearch& s, const TuneJob& j) {
        TuneMetrics m = synthetic(s, j);
        if (j.point == 0 && j.replicate == 1 && j.rung == 1) m.ok = false;
        return m;
    });
    EXPECT_EQ(t.points[0].state, TunePointState::State::failed);
    int dropped = 0;
    for (const TuneJob& p : tr.prunes)
        if (p.point == 0) {
            dropped++;
            EXPECT_NE(p.why.find("seed #2 of its point failed"), std::string::npos) << p.why;
        }
    EXPECT_EQ(dropped, 1);
    // A budget that covers rung 1 (9 x 2 x 10 = 180) and part of rung 2 (3 x 2 x 20 = 120): rung 2 never starts.
    std::string withBudget = file;
    withBudget.insert(1, R"("budget":250,)");
    TuneSearch b = begin(parse(withBudget));
    const Trace bt = drive(b);
    EXPECT_EQ(bt.steps, 180);
    EXPECT_TRUE(b.budget_hit);
    EXPECT_TRUE(b.rungs.empty()) << "rung 1 is decided only when rung 2 can start";
    // TPE past its budget makes no point it cannot train.
    TuneSearch p = begin(parse(R"({"method":"tpe","trials":9,"budget":50,"set":{"train.steps":20},"grid":{"train.lr":{"min":0.001,"max":0.01}}})"));
    drive(p);
    EXPECT_EQ(p.points.size(), 2u);
    for (const auto& pt : p.points) EXPECT_EQ(pt.state, TunePointState::State::finished);
    // min_steps past the runs' steps is refused, not run as one rung.
    auto base = preset_load("tiny");
    auto bad = tune_begin(parse(R"({"method":"halving","min_steps":500,"set":{"train.steps":100},"grid":{"train.lr":[0.001]}})"), *base);
    EXPECT_FALSE(bad);
    // So are Hyperband brackets of millions of points (R = 1e8 at eta 2).
    auto huge = tune_begin(parse(R"({"method":"halving","hyperband":true,"min_steps":1,"max_steps":100000000,"eta":2,
        "grid":{"train.lr":{"min":0.001,"max":0.01}}})"), *base);
    ASSERT_FALSE(huge);
    EXPECT_NE(huge.status.msg.find("more than 10000"), std::string::npos) << huge.status.msg;
}
