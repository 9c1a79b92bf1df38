// The tuner's model and analyses (core/tune/; docs/tuning-sources.md §1, §3-§5): the test functions
// hit their known minima; the normal numerics hold into the far tails; TPE's estimator matches its
// naive twin and integrates to one, its start-up trials are random search's draws, it concentrates
// on good regions, keeps integer, log and choice values in range, and beats random search's median
// regret on Branin and Hartmann-6; constrained Pareto ranks agree with a naive peel; PED-ANOVA finds
// the one parameter that matters.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "tune/importance.h"
#include "tune/pareto.h"
#include "tune/search_space.h"
#include "tune/test_functions.h"
#include "tune/tpe.h"

using namespace rl;

namespace {

constexpr double k_pi = 3.14159265358979323846;

TuneParam real_param(double lo, double hi, bool log = false) {
    TuneParam p;
    p.lo = lo;
    p.hi = hi;
    p.log = log;
    return p;
}
TuneParam int_param(double lo, double hi, bool log = false) {
    TuneParam p = real_param(lo, hi, log);
    p.kind = TuneParam::Kind::integer;
    return p;
}
TuneParam choice_param(int n) {
    TuneParam p;
    p.kind = TuneParam::Kind::choice;
    p.n_choices = n;
    return p;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double log_ndtr_naive(double z) { return std::log(0.5 * std::erfc(-z / std::sqrt(2.0))); }

// Best-so-far regret after `trials` suggestions, one per seed 0..seeds-1.
std::vector<double> final_regrets(const TuneProblem& pr, int trials, int seeds, bool tpe) {
    std::vector<double> out;
    for (const auto& curve : tune_regret_curves(pr, trials, seeds, tpe)) out.push_back(curve.back());
    return out;
}

}  // namespace

// ------------------------------------------------------------------------------------------ Tpe

TEST(Tpe, TestFunctionsHitTheirKnownMinima) {
    const std::vector<TuneProblem> probs = tune_problems();
    ASSERT_EQ(probs.size(), 2u);
    EXPECT_EQ(probs[0].name, "branin");
    EXPECT_EQ(probs[1].name, "hartmann6");
    for (const TunePoint& x : {TunePoint{-k_pi, 12.275}, TunePoint{k_pi, 2.275}, TunePoint{3 * k_pi, 2.475}}) {
        EXPECT_NEAR(probs[0].f(x), 0.3978873577, 1e-6);
        EXPECT_NEAR(probs[0].f(x), probs[0].optimum, 1e-6);
    }
    const TunePoint h = {0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573};
    EXPECT_NEAR(probs[1].f(h), -3.32237, 1e-4);
    EXPECT_NEAR(probs[1].f(h), probs[1].optimum, 1e-4);
    EXPECT_GT(probs[1].f(TunePoint(6, 0.5)), probs[1].optimum + 0.5);  // not flat: a central point is far off
}

TEST(Tpe, NormalNumericsHoldIntoTheFarTails) {
    for (double z = -37; z <= 8; z += 0.25)
        EXPECT_NEAR(tpe_log_ndtr(z), log_ndtr_naive(z), 1e-12 * std::max(1.0, std::abs(log_ndtr_naive(z)))) << z;
    EXPECT_NEAR(tpe_log_ndtr(-30 - 1e-12), tpe_log_ndtr(-30 + 1e-12), 1e-9);  // the two formulas meet
    EXPECT_TRUE(std::isfinite(tpe_log_ndtr(-200)));
    EXPECT_NEAR(tpe_log_ndtr(-200), -20000 - std::log(200.0) - 0.5 * std::log(2 * k_pi), 1e-4);
    EXPECT_NEAR(tpe_ndtri_exp(std::log(0.975)), 1.959963984540054, 1e-13);
    EXPECT_NEAR(tpe_ndtri_exp(std::log(0.5)), 0.0, 1e-15);
    for (double lp : {-1e4, -800.0, -50.0, -3.0, -0.7, -0.69, -1e-3, -1e-10}) {
        const double z = tpe_ndtri_exp(lp);
        EXPECT_NEAR(tpe_log_ndtr(z), lp, 1e-12 * std::max(1.0, std::abs(lp))) << lp;
    }
    // Masses: the naive difference where it is exact enough, finite where it underflows.
    for (auto [a, b] : std::vector<std::pair<double, double>>{{-1, 2}, {-3, -2}, {0.5, 0.6}, {2, 5}, {-0.1, 0.1}}) {
        const double naive = std::log(0.5 * std::erfc(-b / std::sqrt(2.0)) - 0.5 * std::erfc(-a / std::sqrt(2.0)));
        EXPECT_NEAR(tpe_log_gauss_mass(a, b), naive, 1e-12) << a << " " << b;
    }
    EXPECT_NEAR(tpe_log_gauss_mass(40, 41), tpe_log_ndtr(-40), 1e-9);  // Phi(-41) is e^-41 times smaller
    EXPECT_TRUE(std::isfinite(tpe_log_gauss_mass(-60, -59.9)));
    EXPECT_EQ(tpe_log_gauss_mass(1, 1), -INFINITY);
    // Truncated draws: in range, increasing in u, the median of a symmetric interval at 0, and the
    // right quantile of a far-off interval (both sides of the "smaller tail" switch).
    EXPECT_NEAR(tpe_truncnorm_ppf(0.5, -1, 1), 0.0, 1e-14);
    double prev = -INFINITY;
    for (double u = 0.01; u < 1; u += 0.01) {
        const double z = tpe_truncnorm_ppf(u, -0.5, 3);
        EXPECT_GT(z, prev);
        prev = z;
        const double cdf = std::exp(tpe_log_gauss_mass(-0.5, z) - tpe_log_gauss_mass(-0.5, 3));
        EXPECT_NEAR(cdf, u, 1e-12);
        const double zr = tpe_truncnorm_ppf(u, 20, 21);  // far right: all mass near 20
        EXPECT_GE(zr, 20);
        EXPECT_LT(zr, 20.3);
        EXPECT_NEAR(std::exp(tpe_log_gauss_mass(20, zr) - tpe_log_gauss_mass(20, 21)), u, 1e-9);
        const double zl = tpe_truncnorm_ppf(u, -21, -20);
        EXPECT_NEAR(std::exp(tpe_log_gauss_mass(-21, zl) - tpe_log_gauss_mass(-21, -20)), u, 1e-9);
    }
}

TEST(Tpe, GammaAndForgettingWeightsAreOptunas) {
    EXPECT_EQ(tpe_gamma(0), 0);
    EXPECT_EQ(tpe_gamma(1), 1);
    EXPECT_EQ(tpe_gamma(10), 1);
    EXPECT_EQ(tpe_gamma(11), 2);
    EXPECT_EQ(tpe_gamma(249), 25);
    EXPECT_EQ(tpe_gamma(1000), 25);
    EXPECT_TRUE(tpe_default_weights(0).empty());
    EXPECT_EQ(tpe_default_weights(24), std::vector<double>(24, 1.0));
    const std::vector<double> w = tpe_default_weights(30);  // a ramp of 5 from 1/30 to 1, then 25 ones
    ASSERT_EQ(w.size(), 30u);
    EXPECT_NEAR(w[0], 1.0 / 30, 1e-15);
    EXPECT_NEAR(w[2], 0.5 * (1.0 / 30 + 1), 1e-15);
    EXPECT_NEAR(w[4], 1.0, 1e-15);
    for (int i = 5; i < 30; ++i) EXPECT_EQ(w[i], 1.0);
    EXPECT_NEAR(tpe_default_weights(26)[0], 1.0 / 26, 1e-15);
}

TEST(Tpe, SplitTakesFeasibleByLossThenInfeasibleByViolation) {
    std::vector<TpeObservation> obs = {
        {{0}, 5.0, 0}, {{0}, 1.0, 2.0}, {{0}, 3.0, 0}, {{0}, 0.5, 1.0}, {{0}, 4.0, 0}, {{0}, 3.0, 0}};
    TpeSplit s = tpe_split(obs, 2);  // the two best feasible: 3.0 (index 2, earlier of the tie) and 3.0 (5)
    EXPECT_EQ(s.below, (std::vector<int>{2, 5}));
    EXPECT_EQ(s.above, (std::vector<int>{0, 1, 3, 4}));
    s = tpe_split(obs, 5);  // all four feasible, then the least violating infeasible (index 3)
    EXPECT_EQ(s.below, (std::vector<int>{0, 2, 3, 4, 5}));
    EXPECT_EQ(s.above, (std::vector<int>{1}));
    s = tpe_split(obs, 9);
    EXPECT_EQ(s.below.size(), 6u);
    EXPECT_TRUE(s.above.empty());
}

TEST(Tpe, BandwidthsFollowTheNeighbourRuleAndTheMagicClip) {
    // Padded [0, .1, .2, .6, 1]: the ends look inward only (.1, .4), the middle takes its larger gap
    // (.4); the clip's floor is 1 / min(100, 3 + 2) = 0.2.
    std::vector<double> s = tpe_bandwidths({0.6, 0.1, 0.2}, 0, 1);
    EXPECT_NEAR(s[0], 0.4, 1e-15);
    EXPECT_NEAR(s[1], 0.2, 1e-15);
    EXPECT_NEAR(s[2], 0.4, 1e-15);
    s = tpe_bandwidths({0.3}, 0, 1);  // one centre: the larger distance to an end
    EXPECT_NEAR(s[0], 0.7, 1e-15);
    s = tpe_bandwidths({0.5, 0.5}, 0, 10);  // coincident: floored at 10 / 4
    EXPECT_NEAR(s[0], 2.5, 1e-15);
    EXPECT_NEAR(s[1], 2.5, 1e-15);
    std::vector<double> many(300);
    for (int i = 0; i < 300; ++i) many[i] = i / 300.0;
    for (double v : tpe_bandwidths(many, 0, 1)) EXPECT_NEAR(v, 0.01, 1e-15);  // floor capped at range/100
}

TEST(Tpe, LogDensityMatchesNaiveReferenceAndIntegratesToOne) {
    std::mt19937_64 rng(7);
    const std::vector<TuneParam> params = {real_param(-2, 3), real_param(1e-3, 10, true), int_param(-3, 12),
                                           int_param(1, 200, true), choice_param(5)};
    for (int rep = 0; rep < 40; ++rep) {
        for (const TuneParam& p : params) {
            const int n = 1 + static_cast<int>(tune_uniform(rng) * 30);
            std::vector<double> vals, w;
            for (int i = 0; i < n; ++i) {
                vals.push_back(tune_random_point({p}, rng)[0]);
                w.push_back(0.05 + tune_uniform(rng));
            }
            const TpeParzen pe = tpe_parzen_build(p, vals, w, 1.0);
            for (int i = 0; i < 20; ++i) {
                const double x = tune_random_point({p}, rng)[0];
                EXPECT_NEAR(tpe_log_density(pe, x), tpe_log_density_ref(pe, x), 1e-9);
            }
            if (rep % 10) continue;
            // Total mass one: a sum over integers and choices, a midpoint rule over the working domain.
            double total = 0;
            if (p.kind != TuneParam::Kind::real) {
                const int hi = p.kind == TuneParam::Kind::choice ? p.n_choices - 1 : static_cast<int>(p.hi);
                const int lo = p.kind == TuneParam::Kind::choice ? 0 : static_cast<int>(p.lo);
                for (int v = lo; v <= hi; ++v) total += std::exp(tpe_log_density(pe, v));
            } else {
                const int m = 20000;
                const double dw = (pe.hi - pe.lo) / m;
                for (int i = 0; i < m; ++i) {
                    const double wv = pe.lo + (i + 0.5) * dw;
                    total += std::exp(tpe_log_density(pe, p.log ? std::exp(wv) : wv)) * dw;
                }
            }
            EXPECT_NEAR(total, 1.0, 1e-6);
        }
    }
}

TEST(Tpe, StartupSuggestionsAreTheRandomDraws) {
    const TuneProblem pr = tune_problems()[1];
    std::vector<TuneParam> space = pr.space;
    space.push_back(int_param(1, 64, true));
    space.push_back(choice_param(3));
    for (uint64_t seed : {0u, 1u, 42u}) {
        std::mt19937_64 a(seed), b(seed);
        std::vector<TpeObservation> obs;
        const TpeOptions o;
        for (int t = 0; t < o.startup; ++t) {
            const TunePoint x = tpe_suggest(space, obs, o, a);
            EXPECT_EQ(x, tune_random_point(space, b)) << "trial " << t;
            obs.push_back({x, static_cast<double>(t), 0.0});
        }
        EXPECT_EQ(a(), b());  // the same number of draws was taken
        EXPECT_NE(tpe_suggest(space, obs, o, a), tune_random_point(space, b));  // now the model
    }
}

TEST(Tpe, SuggestionsConcentrateNearTheGoodObservations) {
    // 100 observations: every tenth good (loss < 0.01, within 0.01 of 0.2), the rest bad and spread
    // evenly over [0, 1] in a shuffled order (a spread correlated with trial order would meet the
    // forgetting weights). gamma(100) = 10, so the good ones are exactly l's observations. 50
    // suggestions from each of 5 such sets, pooled: measured median |x - 0.2| 0.017..0.041 over 8
    // blocks of 5 seeds; random search gives 0.25 (|U - 0.2| on [0, 1]). With fewer observations the
    // magic clip keeps l wide (range / (n_below + 2)) and TPE seeks the gaps between g's narrow
    // kernels, so single sets of 40 scatter up to 0.2 away: that is the model, not noise in the test.
    const std::vector<TuneParam> space = {real_param(0, 1)};
    std::vector<double> dist;
    for (int seed = 0; seed < 5; ++seed) {
        std::mt19937_64 rng(seed);
        std::vector<double> bad(90);
        for (int i = 0; i < 90; ++i) bad[i] = (i + 0.5) / 90;
        for (int i = 89; i > 0; --i) std::swap(bad[i], bad[static_cast<int>(tune_uniform(rng) * (i + 1))]);
        std::vector<TpeObservation> obs;
        for (int i = 0, ib = 0; i < 100; ++i) {
            const bool good = i % 10 == 0;
            const double x = good ? 0.2 + 0.02 * (tune_uniform(rng) - 0.5) : bad[ib++];
            obs.push_back({{x}, good ? 0.01 * tune_uniform(rng) : 1 + tune_uniform(rng), 0.0});
        }
        for (int i = 0; i < 50; ++i) dist.push_back(std::abs(tpe_suggest(space, obs, TpeOptions{}, rng)[0] - 0.2));
    }
    EXPECT_LT(median(dist), 0.1);
}

TEST(Tpe, IntegerLogAndChoiceValuesStayInRangeAndTheBestChoiceWins) {
    const std::vector<TuneParam> space = {int_param(-3, 7), int_param(2, 500, true), real_param(1e-5, 1e-1, true),
                                          choice_param(4)};
    auto loss = [](const TunePoint& x) {
        return std::abs(x[0] - 2) + std::abs(std::log(x[1] / 40)) + std::abs(std::log10(x[2]) + 3) +
               (x[3] == 2 ? 0.0 : 3.0);
    };
    std::mt19937_64 rng(11);
    std::vector<TpeObservation> obs;
    int best_choice = 0, model_trials = 0;
    for (int t = 0; t < 80; ++t) {
        const TunePoint x = tpe_suggest(space, obs, TpeOptions{}, rng);
        EXPECT_GE(x[0], -3);
        EXPECT_LE(x[0], 7);
        EXPECT_EQ(x[0], std::round(x[0]));
        EXPECT_GE(x[1], 2);
        EXPECT_LE(x[1], 500);
        EXPECT_EQ(x[1], std::round(x[1]));
        EXPECT_GE(x[2], 1e-5);
        EXPECT_LE(x[2], 1e-1);
        EXPECT_GE(x[3], 0);
        EXPECT_LE(x[3], 3);
        EXPECT_EQ(x[3], std::round(x[3]));
        if (t >= 20) {
            ++model_trials;
            best_choice += x[3] == 2;
        }
        obs.push_back({x, loss(x), 0.0});
    }
    EXPECT_GT(best_choice, model_trials / 2);  // random: a quarter
    // The integers' extremes are reachable: the estimator's samples cover the widened domain.
    const TpeParzen pe = tpe_parzen_build(space[0], {}, {}, 1.0);
    std::vector<int> seen(11, 0);
    for (int i = 0; i < 2000; ++i) ++seen[static_cast<int>(tpe_parzen_sample(pe, rng)) + 3];
    for (int v = 0; v < 11; ++v) EXPECT_GT(seen[v], 0) << v - 3;
}

TEST(Tpe, BeatsRandomSearchMedianRegretOnBraninAndHartmann6) {
    // 20 seeds, identical for both methods. Measured with seeds 0..19: Branin after 60 trials, TPE
    // median regret 0.140 vs random 0.598 (ratio 0.23); Hartmann-6 after 100, 0.422 vs 1.092 (0.39).
    // Over ten disjoint blocks of 20 seeds the ratio ran 0.11..0.49 on Branin and 0.22..0.39 on
    // Hartmann-6, so the bound is 0.6 of random's median: it holds for every block with a margin.
    const std::vector<TuneProblem> probs = tune_problems();
    const int trials[2] = {60, 100};
    for (int i = 0; i < 2; ++i) {
        const double tpe = median(final_regrets(probs[i], trials[i], 20, true));
        const double rnd = median(final_regrets(probs[i], trials[i], 20, false));
        std::printf("%s after %d trials: median regret TPE %.4g, random %.4g (ratio %.3f)\n", probs[i].name.c_str(),
                    trials[i], tpe, rnd, tpe / rnd);
        EXPECT_LT(tpe, 0.6 * rnd) << probs[i].name;
    }
}

// --------------------------------------------------------------------------------------- Pareto

TEST(Pareto, ConstrainedDominationHandCases) {
    using V = std::vector<double>;
    EXPECT_TRUE(pareto_dominates(V{1, 2}, 0, V{2, 2}, 0));    // better in one, equal in the other
    EXPECT_FALSE(pareto_dominates(V{2, 2}, 0, V{1, 2}, 0));
    EXPECT_FALSE(pareto_dominates(V{1, 2}, 0, V{1, 2}, 0));   // equal: neither
    EXPECT_FALSE(pareto_dominates(V{1, 3}, 0, V{2, 2}, 0));   // a trade-off: neither
    EXPECT_FALSE(pareto_dominates(V{2, 2}, 0, V{1, 3}, 0));
    EXPECT_TRUE(pareto_dominates(V{9, 9}, 0, V{0, 0}, 0.1));  // feasible beats any infeasible
    EXPECT_FALSE(pareto_dominates(V{0, 0}, 0.1, V{9, 9}, 0));
    EXPECT_TRUE(pareto_dominates(V{9, 9}, 0.5, V{0, 0}, 2));  // two infeasible: less violation wins
    EXPECT_FALSE(pareto_dominates(V{0, 0}, 2, V{9, 9}, 0.5));
    EXPECT_FALSE(pareto_dominates(V{0, 0}, 1, V{9, 9}, 1));   // equal violation: neither
}

TEST(Pareto, RanksAndFront) {
    const std::vector<std::vector<double>> objs = {
        {1, 5},  // 0: front
        {2, 2},  // 1: front
        {4, 1},  // 2: front
        {3, 3},  // 3: dominated by 1 -> rank 1
        {2, 2},  // 4: a tie with 1 -> front
        {5, 5},  // 5: dominated by 3 -> rank 2
        {0, 0},  // 6: infeasible 0.5 -> after every feasible point: rank 3
        {0, 0},  // 7: infeasible 2 -> rank 4
    };
    const std::vector<double> viol = {0, 0, 0, 0, 0, 0, 0.5, 2};
    EXPECT_EQ(pareto_ranks(objs, viol), (std::vector<int>{0, 0, 0, 1, 0, 2, 3, 4}));
    EXPECT_EQ(pareto_front(objs, viol), (std::vector<int>{0, 1, 4, 2}));  // by the first objective
    // Nothing feasible: no front, but the ranks still order by violation.
    EXPECT_TRUE(pareto_front({{1, 1}, {2, 2}}, {1, 3}).empty());
    EXPECT_EQ(pareto_ranks({{1, 1}, {2, 2}}, {3, 1}), (std::vector<int>{1, 0}));
}

TEST(Pareto, RanksMatchTheNaivePeel) {
    std::mt19937_64 rng(5);
    for (int rep = 0; rep < 20; ++rep) {
        const int n = 1 + static_cast<int>(tune_uniform(rng) * 150), m = 1 + rep % 3;
        std::vector<std::vector<double>> objs(n, std::vector<double>(m));
        std::vector<double> viol(n);
        for (int i = 0; i < n; ++i) {
            for (double& v : objs[i]) v = std::round(tune_uniform(rng) * 8);  // coarse, so ties happen
            viol[i] = tune_uniform(rng) < 0.2 ? std::round(tune_uniform(rng) * 3) : 0;
        }
        const std::vector<int> fast = pareto_ranks(objs, viol);
        EXPECT_EQ(fast, pareto_ranks_ref(objs, viol));
        const std::vector<int> front = pareto_front(objs, viol);
        for (size_t i = 1; i < front.size(); ++i) EXPECT_LE(objs[front[i - 1]][0], objs[front[i]][0]);
        for (int i : front) EXPECT_TRUE(fast[i] == 0 && viol[i] <= 0);
    }
}

// ----------------------------------------------------------------------------------- Importance

TEST(Importance, GridFollowsTheParameter) {
    EXPECT_EQ(importance_grid_size(real_param(0, 1), 50), 50);
    EXPECT_EQ(importance_grid_size(int_param(0, 9), 50), 10);
    EXPECT_EQ(importance_grid_size(int_param(0, 200), 50), 50);
    EXPECT_EQ(importance_grid_size(int_param(1, 1024, true), 50), 11);  // ceil(log2(1024 - 1 + 1)) + 1
    EXPECT_EQ(importance_grid_size(choice_param(3), 50), 3);
    EXPECT_EQ(importance_grid_index(real_param(0, 1), 50, 0.0), 0);
    EXPECT_EQ(importance_grid_index(real_param(0, 1), 50, 1.0), 49);
    EXPECT_EQ(importance_grid_index(real_param(0, 49), 50, 3.4), 3);
    EXPECT_EQ(importance_grid_index(real_param(0, 49), 50, 3.5), 3);  // a midpoint goes down
    EXPECT_EQ(importance_grid_index(real_param(0, 49), 50, 3.6), 4);
    EXPECT_EQ(importance_grid_index(real_param(1e-4, 1, true), 5, 1e-2), 2);  // log spacing
    // Scott: all mass in one cell -> the floor; a spread sample -> wider than the floor.
    EXPECT_NEAR(importance_scott_sigma({0, 7, 0}), 0.5 / 1.64, 1e-15);
    std::vector<double> spread(50, 1.0);
    EXPECT_GT(importance_scott_sigma(spread), 3.0);
}

TEST(Importance, TheParameterThatDrivesTheLossDominates) {
    const std::vector<TuneParam> space = {real_param(0, 1), real_param(0, 1)};
    std::mt19937_64 rng(9);
    std::vector<TunePoint> pts, swapped;
    std::vector<double> loss;
    for (int i = 0; i < 200; ++i) {
        const TunePoint x = tune_random_point(space, rng);
        pts.push_back(x);
        swapped.push_back({x[1], x[0]});
        loss.push_back((x[0] - 0.3) * (x[0] - 0.3));  // param 1 is noise
    }
    const std::vector<double> imp = tune_importance(space, pts, loss);  // measured 0.97..0.995 over 30 seeds
    ASSERT_EQ(imp.size(), 2u);
    EXPECT_NEAR(imp[0] + imp[1], 1.0, 1e-12);
    EXPECT_GT(imp[0], 0.8);
    const std::vector<double> sw = tune_importance(space, swapped, loss);
    EXPECT_NEAR(sw[0], imp[1], 1e-12);
    EXPECT_NEAR(sw[1], imp[0], 1e-12);
    // A choice that decides the loss beats a real that does not. TPE's categorical kernel is soft (a
    // row puts only 1.5/3 on its choice when one choice is seen), and the noise parameter's top 20
    // still differ from the region by chance, so the margin is smaller: over seeds 0..29 the choice's
    // share ran 0.64..0.98 (0.74 the lowest of the first 10, used below).
    const std::vector<TuneParam> mixed = {real_param(-1, 1), choice_param(4)};
    double lowest = 1;
    for (int seed = 0; seed < 10; ++seed) {
        std::mt19937_64 r2(seed);
        std::vector<TunePoint> mp;
        std::vector<double> ml;
        for (int i = 0; i < 200; ++i) {
            const TunePoint x = tune_random_point(mixed, r2);
            mp.push_back(x);
            ml.push_back((x[1] == 1 ? 0.0 : 1.0) + 0.1 * tune_uniform(r2));
        }
        lowest = std::min(lowest, tune_importance(mixed, mp, ml)[1]);
    }
    std::printf("importance of the deciding choice, lowest of 10 seeds: %.3f\n", lowest);
    EXPECT_GT(lowest, 0.5);
}

TEST(Importance, ConstantLossOrTooFewPointsGiveZeros) {
    const std::vector<TuneParam> space = {real_param(0, 1), int_param(0, 5), choice_param(3)};
    std::mt19937_64 rng(2);
    std::vector<TunePoint> pts;
    for (int i = 0; i < 50; ++i) pts.push_back(tune_random_point(space, rng));
    EXPECT_EQ(tune_importance(space, pts, std::vector<double>(50, 1.5)), std::vector<double>(3, 0.0));
    // 10 points: the top 10% is one point, too few for a density.
    std::vector<double> loss(10);
    for (int i = 0; i < 10; ++i) loss[i] = i;
    EXPECT_EQ(tune_importance(space, std::vector<TunePoint>(pts.begin(), pts.begin() + 10), loss),
              std::vector<double>(3, 0.0));
    EXPECT_EQ(tune_importance(space, {pts[0]}, {0.0}), std::vector<double>(3, 0.0));
}
