// PED-ANOVA importance (importance.h; docs/tuning-sources.md §4.2): quantile filters, values counted
// on a grid, Scott-bandwidth Parzen estimators on the grid (TPE's kernels, tpe.h) and the Pearson
// divergence between the top and the region densities.
// Sizes: P parameters, N points, G grid points of a numerical parameter (C for a choice).
#include "tune/importance.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numeric>

#include "tune/tpe.h"

namespace rl {

namespace {

constexpr double k_prior_weight = 1.0;  // Optuna's PED-ANOVA prior_weight

// Indices of the points whose loss is at most the ceil(q N)-th smallest: ties with the cutoff are
// all kept (Optuna's _QuantileFilter).
std::vector<int> quantile_filter(const std::vector<double>& loss, double q) {
    std::vector<double> sorted = loss;
    std::sort(sorted.begin(), sorted.end());
    const int n = static_cast<int>(loss.size());
    const int cut = std::clamp(static_cast<int>(std::ceil(q * n)) - 1, 0, n - 1);
    std::vector<int> keep;
    for (int i = 0; i < n; ++i)
        if (loss[i] <= sorted[cut]) keep.push_back(i);
    return keep;
}

// (G) the estimator's probability of each grid cell, plus 1e-12 so that the ratio stays finite.
std::vector<double> grid_pdf(const TuneParam& p, int G, const std::vector<double>& counts) {
    std::vector<double> values, weights;
    for (int g = 0; g < G; ++g)
        if (counts[g] > 0) {
            values.push_back(g);
            weights.push_back(counts[g]);
        }
    TpeParzen pe;
    if (p.kind == TuneParam::Kind::choice) {
        pe = tpe_parzen_build(p, values, weights, k_prior_weight);  // TPE's categorical kernel, counts as weights
    } else {
        // Kernels on the grid indices 0..G-1, one per occupied cell with its count as weight and one
        // Scott width for all (TPE's neighbour rule is too wide here), plus a prior at the centre
        // with width G; each a discrete truncated normal (mass of its cell).
        TuneParam cells;
        cells.kind = TuneParam::Kind::integer;
        cells.lo = 0;
        cells.hi = G - 1;
        std::vector<double> sigma(values.size(), importance_scott_sigma(counts));
        values.push_back(0.5 * (G - 1));
        sigma.push_back(G);
        weights.push_back(k_prior_weight);
        pe = tpe_parzen_from_kernels(cells, values, sigma, weights);
    }
    std::vector<double> pdf(G);
    for (int g = 0; g < G; ++g) pdf[g] = std::exp(tpe_log_density(pe, g)) + 1e-12;
    return pdf;
}

}  // namespace

int importance_grid_size(const TuneParam& p, int grid) {
    if (p.kind == TuneParam::Kind::choice) return p.n_choices;
    if (!(p.hi > p.lo)) return 1;
    if (p.kind == TuneParam::Kind::real) return grid;
    // Integers: one cell per integer while they fit; log integers: about one per doubling.
    const double cells = p.log ? std::ceil(std::log2(p.hi - p.lo + 1)) + 1 : std::round(p.hi - p.lo) + 1;
    return static_cast<int>(std::min<double>(cells, grid));
}

int importance_grid_index(const TuneParam& p, int grid, double value) {
    if (p.kind == TuneParam::Kind::choice) return static_cast<int>(value);
    const int G = importance_grid_size(p, grid);
    if (G <= 1) return 0;
    auto work = [&](double v) { return p.log ? std::log(v) : v; };
    const double lo = work(p.lo), step = (work(p.hi) - lo) / (G - 1);
    // The nearest grid point; an exact midpoint goes to the lower one.
    const double idx = std::ceil((work(value) - lo) / step - 0.5);
    return static_cast<int>(std::clamp(idx, 0.0, G - 1.0));
}

double importance_scott_sigma(const std::vector<double>& counts) {
    std::vector<double> mus, cs;
    for (size_t g = 0; g < counts.size(); ++g)
        if (counts[g] > 0) {
            mus.push_back(static_cast<double>(g));
            cs.push_back(counts[g]);
        }
    const double min_sigma = 0.5 / 1.64;  // a kernel's central 90% (+-1.64 sigma) spans at least a cell
    if (mus.empty()) return min_sigma;
    const double W = std::accumulate(cs.begin(), cs.end(), 0.0);
    double mean = 0, var = 0;
    for (size_t i = 0; i < mus.size(); ++i) mean += cs[i] * mus[i] / W;
    for (size_t i = 0; i < mus.size(); ++i) var += cs[i] * (mus[i] - mean) * (mus[i] - mean);
    const double sd = std::sqrt(var / std::max(1.0, W - 1));
    // Quartiles from the cumulative counts: the first cell reaching floor(W/4), the first passing
    // floor(3W/4).
    const double q25 = std::floor(W / 4), q75 = std::floor(3 * W / 4);
    size_t i25 = mus.size() - 1, i75 = mus.size() - 1;
    double cum = 0;
    bool got25 = false;
    for (size_t i = 0; i < mus.size(); ++i) {
        cum += cs[i];
        if (!got25 && cum >= q25) i25 = i, got25 = true;
        if (cum > q75) {
            i75 = i;
            break;
        }
    }
    const double iqr = mus[i75] - mus[i25];
    return std::max(1.059 * std::min(iqr / 1.34, sd) * std::pow(W, -0.2), min_sigma);
}

double importance_divergence(const TuneParam& p, int grid, const std::vector<double>& top_values,
                             const std::vector<double>& region_values) {
    const int G = importance_grid_size(p, grid);
    if (G <= 1) return 0;  // one value: nothing to explain
    std::vector<double> top(G, 0.0), region(G, 0.0);
    for (double v : top_values) top[importance_grid_index(p, grid, v)] += 1;
    for (double v : region_values) region[importance_grid_index(p, grid, v)] += 1;
    const std::vector<double> pt = grid_pdf(p, G, top), pr = grid_pdf(p, G, region);
    double d = 0;
    for (int g = 0; g < G; ++g) d += pr[g] * (pt[g] / pr[g] - 1) * (pt[g] / pr[g] - 1);
    return d;
}

std::vector<double> tune_importance(const std::vector<TuneParam>& space, const std::vector<TunePoint>& points,
                                    const std::vector<double>& loss, const ImportanceOptions& o) {
    assert(points.size() == loss.size());
    assert(0 < o.target_quantile && o.target_quantile < o.region_quantile && o.region_quantile <= 1);
    std::vector<double> imp(space.size(), 0.0);
    if (points.size() < 2) return imp;
    const std::vector<int> top = quantile_filter(loss, o.target_quantile);
    const std::vector<int> region = quantile_filter(loss, o.region_quantile);
    // The top set lies inside the region; the same size means the same points (every loss equal).
    if (top.size() < 2 || top.size() == region.size()) return imp;
    const double scale = static_cast<double>(top.size()) / region.size();  // gamma'/gamma as realised
    std::vector<double> tv(top.size()), rv(region.size());
    for (size_t d = 0; d < space.size(); ++d) {
        for (size_t i = 0; i < top.size(); ++i) tv[i] = points[top[i]][d];
        for (size_t i = 0; i < region.size(); ++i) rv[i] = points[region[i]][d];
        imp[d] = scale * scale * importance_divergence(space[d], o.grid, tv, rv);
    }
    const double total = std::accumulate(imp.begin(), imp.end(), 0.0);
    for (double& v : imp) v = total > 0 ? v / total : 0.0;
    return imp;
}

}  // namespace rl
