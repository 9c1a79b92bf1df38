// Benchmark functions with known minima, for checking a tuner against random search by its regret
// (best-so-far value minus the optimum): Branin (2-D) and Hartmann-6, defined as in BoTorch's
// test_functions/synthetic.py after the SFU Virtual Library (docs/tuning-sources.md §5).
// Sizes: P parameters of a problem.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "tune/search_space.h"
#include "tune/tpe.h"

namespace rl {

struct TuneProblem {
    std::string name;
    std::vector<TuneParam> space;
    double optimum;                                // the global minimum f*
    std::function<double(const TunePoint&)> f;     // to minimise
};

// Branin on x1 in [-5, 10], x2 in [0, 15]; minimum 5/(4 pi) = 0.3978873577 at (-pi, 12.275),
// (pi, 2.275) and (3 pi, 2.475).
double tune_branin(const TunePoint& x);
// Hartmann-6 on [0, 1]^6; minimum -3.32237 at (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573).
double tune_hartmann6(const TunePoint& x);

// {branin, hartmann6}, in that order.
std::vector<TuneProblem> tune_problems();

// Best-so-far regret (best value minus the optimum) after each of `trials` suggestions (trials), one
// row per seed 0..seeds-1: TPE with o, or random search (the draws TPE's start-up trials make).
std::vector<std::vector<double>> tune_regret_curves(const TuneProblem& pr, int trials, int seeds, bool tpe,
                                                    const TpeOptions& o = {});

}  // namespace rl
