// The uniform draw over a search space (search_space.h).
// Sizes: P searched parameters.
#include "tune/search_space.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace rl {

double tune_uniform(std::mt19937_64& rng) {
    // (k + 0.5) / 2^53 for k in [0, 2^53): strictly inside (0, 1), so log(u) and log1p(-u) are finite.
    return (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53;
}

TunePoint tune_random_point(const std::vector<TuneParam>& space, std::mt19937_64& rng) {
    TunePoint x(space.size());
    for (size_t i = 0; i < space.size(); ++i) {
        const TuneParam& p = space[i];
        const double u = tune_uniform(rng);
        if (p.kind == TuneParam::Kind::choice) {
            assert(p.n_choices > 0);
            x[i] = std::min(std::floor(u * p.n_choices), p.n_choices - 1.0);
            continue;
        }
        const bool is_int = p.kind == TuneParam::Kind::integer;
        const double lo = is_int ? p.lo - 0.5 : p.lo, hi = is_int ? p.hi + 0.5 : p.hi;
        assert(!p.log || lo > 0);
        double v = p.log ? std::exp(std::log(lo) + u * (std::log(hi) - std::log(lo))) : lo + u * (hi - lo);
        if (is_int) v = std::round(v);
        x[i] = std::clamp(v, p.lo, p.hi);  // rounding (and exp) may step just outside
    }
    return x;
}

}  // namespace rl
