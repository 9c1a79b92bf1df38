// Branin and Hartmann-6 (test_functions.h; docs/tuning-sources.md §5).
// Sizes: P parameters of a problem.
#include "tune/test_functions.h"

#include <cassert>
#include <cmath>

namespace rl {

double tune_branin(const TunePoint& x) {
    assert(x.size() == 2);
    const double pi = 3.14159265358979323846;
    const double b = 5.1 / (4 * pi * pi), c = 5 / pi, r = 6, s = 10, t = 1 / (8 * pi);
    const double u = x[1] - b * x[0] * x[0] + c * x[0] - r;
    return u * u + s * (1 - t) * std::cos(x[0]) + s;
}

double tune_hartmann6(const TunePoint& x) {
    assert(x.size() == 6);
    static const double alpha[4] = {1.0, 1.2, 3.0, 3.2};
    static const double A[4][6] = {{10, 3, 17, 3.5, 1.7, 8},
                                   {0.05, 10, 17, 0.1, 8, 14},
                                   {3, 3.5, 1.7, 10, 17, 8},
                                   {17, 8, 0.05, 10, 0.1, 14}};
    static const double P[4][6] = {{1312, 1696, 5569, 124, 8283, 5886},
                                   {2329, 4135, 8307, 3736, 1004, 9991},
                                   {2348, 1451, 3522, 2883, 3047, 6650},
                                   {4047, 8828, 8732, 5743, 1091, 381}};
    double f = 0;
    for (int i = 0; i < 4; ++i) {
        double e = 0;
        for (int j = 0; j < 6; ++j) {
            const double d = x[j] - 1e-4 * P[i][j];
            e += A[i][j] * d * d;
        }
        f -= alpha[i] * std::exp(-e);
    }
    return f;
}

std::vector<TuneProblem> tune_problems() {
    auto real = [](std::string key, double lo, double hi) {
        TuneParam p;
        p.key = std::move(key);
        p.lo = lo;
        p.hi = hi;
        return p;
    };
    std::vector<TuneProblem> out;
    out.push_back({"branin", {real("x1", -5, 10), real("x2", 0, 15)}, 0.39788735772973816, tune_branin});
    std::vector<TuneParam> h6;
    for (const char* key : {"x1", "x2", "x3", "x4", "x5", "x6"}) h6.push_back(real(key, 0, 1));
    out.push_back({"hartmann6", std::move(h6), -3.32237, tune_hartmann6});
    return out;
}

std::vector<std::vector<double>> tune_regret_curves(const TuneProblem& pr, int trials, int seeds, bool tpe,
                                                    const TpeOptions& o) {
    std::vector<std::vector<double>> out;
    for (int seed = 0; seed < seeds; ++seed) {
        std::mt19937_64 rng((uint64_t)seed);
        std::vector<TpeObservation> obs;
        std::vector<double> curve;
        double best = INFINITY;
        for (int t = 0; t < trials; ++t) {
            const TunePoint x = tpe ? tpe_suggest(pr.space, obs, o, rng) : tune_random_point(pr.space, rng);
            const double y = pr.f(x);
            best = std::min(best, y);
            obs.push_back({x, y, 0.0});
            curve.push_back(best - pr.optimum);
        }
        out.push_back(std::move(curve));
    }
    return out;
}

}  // namespace rl
