// Univariate (independent) TPE, the tree-structured Parzen estimator of Bergstra et al. 2011
// ("Algorithms for Hyper-Parameter Optimization", NeurIPS), with Optuna 4.9's default numerics as
// docs/tuning-sources.md §1 records them: 10 random start-up trials, gamma(n) = min(ceil(0.1 n), 25),
// linear-forgetting weights, the neighbour-rule bandwidth with the magic clip, truncated-normal
// kernels with a prior kernel, and 24 candidates drawn from l(x) scored by log l(x) - log g(x).
// Each parameter gets its own l and g and its own argmax (§1.5). Constraints enter only through the
// split (§1.3, §1.6): infeasible observations fill the good set after every feasible one.
// Sizes: P parameters, n observations, K kernels of one estimator (its observations + the prior),
// C choices of a categorical parameter.
#pragma once
#include <random>
#include <vector>

#include "tune/search_space.h"

namespace rl {

struct TpeOptions {
    int startup = 10;           // random suggestions before the model (Optuna's n_startup_trials)
    int candidates = 24;        // draws from l(x) per parameter (n_ei_candidates)
    double prior_weight = 1.0;  // the prior kernel's weight beside the observation weights
};

struct TpeObservation {
    TunePoint x;
    double loss = 0;       // to minimise (the caller negates a maximised objective, or passes a rank
                           // for several objectives)
    double violation = 0;  // sum of positive constraint violations; 0 = feasible
};

// The next point: random while fewer than o.startup observations, else TPE. obs is in trial order
// (the oldest first; the weights forget the oldest). Losses must be finite.
TunePoint tpe_suggest(const std::vector<TuneParam>& space, const std::vector<TpeObservation>& obs,
                      const TpeOptions& o, std::mt19937_64& rng);

// ---- The parts, for the tests and for importance.cpp.

// Size of the good set for n observations: min(ceil(0.1 n), 25) (Optuna's default_gamma).
int tpe_gamma(int n);
// (n) observation weights in trial order: all ones below 25, else a linear ramp from 1/n to 1 over
// the oldest n - 25 followed by 25 ones (Bergstra et al. 2013's linear forgetting, Optuna's
// default_weights).
std::vector<double> tpe_default_weights(int n);

// The good ("below") and bad ("above") observations, as indices in ascending trial order: feasible
// ones by loss, then infeasible ones by violation (ties by trial order); the first n_below are good.
struct TpeSplit {
    std::vector<int> below, above;
};
TpeSplit tpe_split(const std::vector<TpeObservation>& obs, int n_below);

// One parameter's Parzen estimator: a mixture of truncated normals on the working domain (numerical
// parameters) or of categorical rows (choice). The prior kernel is the last component.
struct TpeParzen {
    TuneParam param;                // what values mean (densities take, samples give, param units)
    double lo = 0, hi = 1;          // working domain: [lo, hi], widened by 0.5 for integers, then logged for log
    std::vector<double> weight;     // (K) mixture weights, summing to 1
    std::vector<double> mu, sigma;  // (K) numerical kernels' centres and widths, in the working space
    std::vector<double> log_norm;   // (K) log of a numerical kernel's mass on [lo, hi] (its truncation)
    std::vector<double> prob;       // (K, C) categorical kernels, each row summing to 1
};

// Neighbour-rule bandwidths of centres mu on [lo, hi] with consider_endpoints = false, then the magic
// clip to [(hi - lo) / min(100, n + 2), hi - lo] (§1.4). (n) widths, in mu's order.
std::vector<double> tpe_bandwidths(const std::vector<double>& mu, double lo, double hi);
// TPE's estimator from observed values (param units) with their weights (unnormalised), plus a prior
// kernel of weight prior_weight: centre mid-domain and width the domain for numerical parameters,
// a uniform row for choice.
TpeParzen tpe_parzen_build(const TuneParam& p, const std::vector<double>& values,
                           const std::vector<double>& weights, double prior_weight);
// A numerical estimator from given kernels (working space; weights unnormalised, the prior's
// included): fills the domain, normalises the weights and computes each kernel's truncation mass.
TpeParzen tpe_parzen_from_kernels(const TuneParam& p, std::vector<double> mu, std::vector<double> sigma,
                                  std::vector<double> weight);
// One draw (param units: integers rounded, choice an index): a component by weight, then its kernel
// by inverse CDF. Two draws of rng.
double tpe_parzen_sample(const TpeParzen& pe, std::mt19937_64& rng);
// log density at x (param units). log parameters: the density in log space with no 1/x Jacobian
// (it cancels in l/g); integers: each kernel's mass on [x - 0.5, x + 0.5]; choice: the mixed row.
// Log-sum-exp over the kernels.
double tpe_log_density(const TpeParzen& pe, double x);
// The naive twin: every kernel's density from plain erfc, summed, then the log. Agrees with the
// fast path wherever no kernel underflows.
double tpe_log_density_ref(const TpeParzen& pe, double x);

// ---- Standard normal numerics (SciPy's truncnorm recipe as Optuna's _truncnorm.py adapts it).
double tpe_log_ndtr(double z);                  // log Phi(z), finite for every finite z
double tpe_log_gauss_mass(double a, double b);  // log(Phi(b) - Phi(a)), a <= b; -inf when a == b
double tpe_ndtri_exp(double log_p);             // z with log Phi(z) = log_p, log_p <= 0
// Inverse-CDF draw of a standard normal truncated to [a, b] for u in (0, 1), taken from whichever
// tail is the smaller so that neither side loses precision.
double tpe_truncnorm_ppf(double u, double a, double b);

}  // namespace rl
