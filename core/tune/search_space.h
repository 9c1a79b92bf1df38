// The description of a hyper-parameter search shared by the tuner's parts: the searched keys, a
// point in that space, and the uniform draw that random search and TPE's start-up trials use.
// Sizes: P searched parameters (a TunePoint holds P values, in the order of the space).
#pragma once
#include <random>
#include <string>
#include <vector>

namespace rl {

// One searched key. real/integer: a range [lo, hi] (log: sampled and modelled in log space, lo > 0).
// choice: n_choices categories, a value is the index (as a double).
struct TuneParam {
    std::string key;
    enum class Kind { real, integer, choice } kind = Kind::real;
    double lo = 0, hi = 1;
    bool log = false;
    int n_choices = 0;
};
using TunePoint = std::vector<double>;  // (P) one value per TuneParam, in order

// A uniform double in (0, 1), never 0 or 1, from the top 53 bits of one draw. Our own, so that a
// seed gives the same points with every standard library (std::uniform_real_distribution's
// algorithm is left to the implementation).
double tune_uniform(std::mt19937_64& rng);

// Uniform (log-uniform with log) in [lo, hi]. Integers are drawn on [lo - 0.5, hi + 0.5] (in log
// space with log) and rounded, so each integer gets an equal share of the drawn range; choice: a
// uniform index. Exactly one draw of rng per parameter, in order.
TunePoint tune_random_point(const std::vector<TuneParam>& space, std::mt19937_64& rng);

}  // namespace rl
