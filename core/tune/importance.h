// Parameter importance by PED-ANOVA (Watanabe, Bansal & Hutter, IJCAI 2023, arXiv 2304.10255), as
// Optuna's importance/_ped_anova computes it (docs/tuning-sources.md §4): for each parameter, the
// Pearson divergence between the density of its values among the top target_quantile of the points
// and among the top region_quantile, each a Parzen estimator on a grid, scaled by (n_top/n_region)^2.
// It needs no surrogate model: only the values and which points made the quantiles.
// Sizes: P parameters, N points, G grid points of a numerical parameter (C for a choice).
#pragma once
#include <vector>

#include "tune/search_space.h"

namespace rl {

struct ImportanceOptions {
    double target_quantile = 0.1;  // gamma': the "good" points whose values we explain
    double region_quantile = 1.0;  // gamma: the region they are compared with (1 = every point)
    int grid = 50;                 // grid points of a numerical parameter (fewer for small integer ranges)
};

// One importance per param, normalised to sum 1 (all 0 when fewer than 2 top points or every loss
// equal). points[i] has a value per param.
std::vector<double> tune_importance(const std::vector<TuneParam>& space, const std::vector<TunePoint>& points,
                                    const std::vector<double>& loss, const ImportanceOptions& o = {});

// The parts, for the tests. A parameter's grid size and the grid index of each value (§4.2).
int importance_grid_size(const TuneParam& p, int grid);
int importance_grid_index(const TuneParam& p, int grid, double value);
// Scott's bandwidth for kernels at grid indices 0..G-1 weighted by counts (G):
// 1.059 min(IQR / 1.34, sd) W^(-1/5), at least 0.5 / 1.64.
double importance_scott_sigma(const std::vector<double>& counts);
// The unscaled divergence of one parameter: sum over the grid of p_reg (p_top / p_reg - 1)^2.
double importance_divergence(const TuneParam& p, int grid, const std::vector<double>& top_values,
                             const std::vector<double>& region_values);

}  // namespace rl
