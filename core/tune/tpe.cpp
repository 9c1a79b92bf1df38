// Univariate TPE (tpe.h; docs/tuning-sources.md §1). The estimator follows Optuna 4.9's
// samplers/_tpe/parzen_estimator.py as the notes record it, and the truncated-normal numerics follow
// SciPy's truncnorm as Optuna's _truncnorm.py adapts it: log-space masses and an inverse-CDF draw.
// Sizes: P parameters, n observations, K kernels of one estimator, C choices.
#include "tune/tpe.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <numeric>

namespace rl {

namespace {

constexpr double k_inf = std::numeric_limits<double>::infinity();
constexpr double k_log_sqrt_2pi = 0.91893853320467274178;  // log sqrt(2 pi)
constexpr double k_sqrt1_2 = 0.70710678118654752440;       // 1 / sqrt(2)
constexpr double k_ln2 = 0.69314718055994530942;

// log(1 - e^x) for x <= 0: expm1 near 0, log1p further out (Maechler 2012, "Accurately computing
// log(1 - exp(-|a|))"), so a narrow interval's mass keeps its digits.
double log1mexp(double x) { return x > -k_ln2 ? std::log(-std::expm1(x)) : std::log1p(-std::exp(x)); }

double log_add_exp(double a, double b) {
    if (a < b) std::swap(a, b);
    if (b == -k_inf) return a;
    return a + std::log1p(std::exp(b - a));
}

bool is_numeric(const TuneParam& p) { return p.kind != TuneParam::Kind::choice; }
double to_work(const TuneParam& p, double x) { return p.log ? std::log(x) : x; }

// The working domain: integers widened by half a step so each integer owns an interval, then logged
// for log parameters (widen first, as Optuna does since v4.7).
void work_domain(const TuneParam& p, double& lo, double& hi) {
    const double h = p.kind == TuneParam::Kind::integer ? 0.5 : 0.0;
    lo = to_work(p, p.lo - h);
    hi = to_work(p, p.hi + h);
}

// Acklam's rational approximation of the inverse normal CDF (relative error 1.15e-9) for the lower
// half, taking log p so that the tail branch works beyond double's smallest p.
double ndtri_acklam_lower(double log_p) {
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                               1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                               6.680131188771972e+01, -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                               -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                               3.754408661907416e+00};
    if (log_p < std::log(0.02425)) {
        const double q = std::sqrt(-2 * log_p);
        return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
               ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    }
    const double q = std::exp(log_p) - 0.5, r = q * q;
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
           (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

// Lower half (log_p <= log 0.5): Acklam, then Newton steps on log Phi(z) - log_p, whose slope is
// phi(z)/Phi(z). log Phi is concave, so a step from the right lands left of the root and the steps
// from the left climb to it without passing; two usually suffice.
double ndtri_exp_lower(double log_p) {
    if (log_p == -k_inf) return -k_inf;
    double z = ndtri_acklam_lower(log_p);
    for (int it = 0; it < 6; ++it) {
        const double lp = tpe_log_ndtr(z);
        const double step = (lp - log_p) * std::exp(lp - (-0.5 * z * z - k_log_sqrt_2pi));
        z -= step;
        if (std::abs(step) <= 1e-15 * (1 + std::abs(z))) break;
    }
    return z;
}

}  // namespace

double tpe_log_ndtr(double z) {
    if (z >= 0) return std::log1p(-0.5 * std::erfc(z * k_sqrt1_2));
    if (z > -30) return std::log(0.5 * std::erfc(-z * k_sqrt1_2));
    // Far left tail (erfc would underflow near z = -38): Phi(z) = phi(z)/(-z) (1 - 1/z^2 + 3/z^4 -
    // 15/z^6 + 105/z^8 - 945/z^10 ...), whose next term is below 2e-14 from z = -30 on.
    const double r = 1 / (z * z);
    const double s = 1 - r * (1 - r * (3 - r * (15 - r * (105 - r * 945))));
    return -0.5 * z * z - std::log(-z) - k_log_sqrt_2pi + std::log(s);
}

double tpe_log_gauss_mass(double a, double b) {
    if (!(a < b)) return -k_inf;
    // Both ends in one tail: the difference of the two tail probabilities, in log space, taken on the
    // left (reflecting a right-tail interval), so a far-off interval keeps a finite log mass.
    if (b <= 0) return tpe_log_ndtr(b) + log1mexp(tpe_log_ndtr(a) - tpe_log_ndtr(b));
    if (a >= 0) return tpe_log_ndtr(-a) + log1mexp(tpe_log_ndtr(-b) - tpe_log_ndtr(-a));
    // Straddling 0: one minus the two small tails outside.
    return std::log1p(-0.5 * std::erfc(-a * k_sqrt1_2) - 0.5 * std::erfc(b * k_sqrt1_2));
}

double tpe_ndtri_exp(double log_p) {
    assert(log_p <= 0);
    if (log_p <= -k_ln2) return ndtri_exp_lower(log_p);
    return -ndtri_exp_lower(log1mexp(log_p));  // upper half: the complement's quantile, reflected
}

double tpe_truncnorm_ppf(double u, double a, double b) {
    const double lm = tpe_log_gauss_mass(a, b);
    // Phi(z) = Phi(a) + u mass, or equally 1 - Phi(z) = Phi(-b) + (1 - u) mass: invert the smaller.
    const double left = log_add_exp(tpe_log_ndtr(a), std::log(u) + lm);
    double z;
    if (left <= -k_ln2) {
        z = tpe_ndtri_exp(left);
    } else {
        z = -tpe_ndtri_exp(log_add_exp(tpe_log_ndtr(-b), std::log1p(-u) + lm));
    }
    return std::clamp(z, a, b);
}

int tpe_gamma(int n) { return std::min((n + 9) / 10, 25); }

std::vector<double> tpe_default_weights(int n) {
    if (n < 25) return std::vector<double>(std::max(n, 0), 1.0);
    std::vector<double> w(n, 1.0);
    const int m = n - 25;  // the oldest m get a ramp from 1/n to 1, endpoints included
    for (int i = 0; i < m; ++i) w[i] = m == 1 ? 1.0 / n : 1.0 / n + (1 - 1.0 / n) * i / (m - 1);
    return w;
}

TpeSplit tpe_split(const std::vector<TpeObservation>& obs, int n_below) {
    std::vector<int> feasible, infeasible;
    for (int i = 0; i < static_cast<int>(obs.size()); ++i) {
        assert(std::isfinite(obs[i].loss) && std::isfinite(obs[i].violation));  // NaN would break the sort
        (obs[i].violation > 0 ? infeasible : feasible).push_back(i);
    }
    std::stable_sort(feasible.begin(), feasible.end(), [&](int a, int b) { return obs[a].loss < obs[b].loss; });
    std::stable_sort(infeasible.begin(), infeasible.end(),
                     [&](int a, int b) { return obs[a].violation < obs[b].violation; });
    // Infeasible observations take good places only when the feasible ones cannot fill them (§1.3).
    feasible.insert(feasible.end(), infeasible.begin(), infeasible.end());
    const size_t nb = std::min<size_t>(std::max(n_below, 0), feasible.size());
    TpeSplit s;
    s.below.assign(feasible.begin(), feasible.begin() + nb);
    s.above.assign(feasible.begin() + nb, feasible.end());
    std::sort(s.below.begin(), s.below.end());  // trial order, for the forgetting weights
    std::sort(s.above.begin(), s.above.end());
    return s;
}

std::vector<double> tpe_bandwidths(const std::vector<double>& mu, double lo, double hi) {
    const size_t n = mu.size();
    if (n == 0) return {};
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return mu[a] < mu[b]; });
    std::vector<double> s(n + 2);  // the sorted centres padded with the domain's ends
    s[0] = lo;
    s[n + 1] = hi;
    for (size_t i = 0; i < n; ++i) s[i + 1] = mu[order[i]];
    // Each centre's width is the larger gap to its neighbours (hyperopt's adaptive_parzen_normal); with
    // consider_endpoints = false the outermost centres look only inward when there are two or more.
    std::vector<double> sorted(n);
    for (size_t i = 0; i < n; ++i) sorted[i] = std::max(s[i + 1] - s[i], s[i + 2] - s[i + 1]);
    if (n >= 2) {
        sorted[0] = s[2] - s[1];
        sorted[n - 1] = s[n] - s[n - 1];
    }
    // Magic clip: at least range / min(100, kernels incl. the prior + 1), at most the range.
    const double range = hi - lo, lo_sigma = range / std::min(100.0, n + 2.0);
    std::vector<double> sigma(n);
    for (size_t i = 0; i < n; ++i) sigma[order[i]] = std::clamp(sorted[i], lo_sigma, range);
    return sigma;
}

TpeParzen tpe_parzen_from_kernels(const TuneParam& p, std::vector<double> mu, std::vector<double> sigma,
                                  std::vector<double> weight) {
    assert(is_numeric(p) && mu.size() == sigma.size() && mu.size() == weight.size() && !mu.empty());
    TpeParzen pe;
    pe.param = p;
    work_domain(p, pe.lo, pe.hi);
    const double total = std::accumulate(weight.begin(), weight.end(), 0.0);
    for (double& w : weight) w /= total;
    pe.log_norm.resize(mu.size());
    for (size_t k = 0; k < mu.size(); ++k)
        pe.log_norm[k] = tpe_log_gauss_mass((pe.lo - mu[k]) / sigma[k], (pe.hi - mu[k]) / sigma[k]);
    pe.mu = std::move(mu);
    pe.sigma = std::move(sigma);
    pe.weight = std::move(weight);
    return pe;
}

TpeParzen tpe_parzen_build(const TuneParam& p, const std::vector<double>& values,
                           const std::vector<double>& weights, double prior_weight) {
    assert(values.size() == weights.size() && prior_weight > 0);
    std::vector<double> w = weights;
    w.push_back(prior_weight);  // mixture weights: the observations', then the prior's (§1.4)
    if (is_numeric(p)) {
        TpeParzen tmp;
        work_domain(p, tmp.lo, tmp.hi);
        assert(tmp.hi > tmp.lo);
        std::vector<double> mu(values.size());
        for (size_t i = 0; i < values.size(); ++i) mu[i] = to_work(p, values[i]);
        std::vector<double> sigma = tpe_bandwidths(mu, tmp.lo, tmp.hi);
        mu.push_back(0.5 * (tmp.lo + tmp.hi));  // the prior: a wide kernel over the whole domain
        sigma.push_back(tmp.hi - tmp.lo);
        return tpe_parzen_from_kernels(p, std::move(mu), std::move(sigma), std::move(w));
    }
    // Categorical: every row starts at prior_weight / K on each choice, an observation's row gains 1
    // on its choice, rows are normalised; the prior's row stays uniform.
    const size_t C = p.n_choices, K = values.size() + 1;
    assert(C > 0);
    TpeParzen pe;
    pe.param = p;
    pe.prob.assign(K * C, prior_weight / K);
    for (size_t i = 0; i < values.size(); ++i) pe.prob[i * C + static_cast<size_t>(values[i])] += 1;
    for (size_t k = 0; k < K; ++k) {
        const double row = std::accumulate(pe.prob.begin() + k * C, pe.prob.begin() + (k + 1) * C, 0.0);
        for (size_t c = 0; c < C; ++c) pe.prob[k * C + c] /= row;
    }
    const double total = std::accumulate(w.begin(), w.end(), 0.0);
    for (double& x : w) x /= total;
    pe.weight = std::move(w);
    return pe;
}

double tpe_parzen_sample(const TpeParzen& pe, std::mt19937_64& rng) {
    auto pick = [](const double* w, size_t n, double u) {  // the first index whose running sum passes u
        double acc = 0;
        for (size_t i = 0; i < n; ++i)
            if ((acc += w[i]) > u) return i;
        return n - 1;  // u beyond a sum short of 1 by rounding
    };
    const size_t K = pe.weight.size();
    const size_t k = pick(pe.weight.data(), K, tune_uniform(rng));
    const double v = tune_uniform(rng);
    const TuneParam& p = pe.param;
    if (!is_numeric(p)) return static_cast<double>(pick(pe.prob.data() + k * p.n_choices, p.n_choices, v));
    const double mu = pe.mu[k], s = pe.sigma[k];
    const double z = tpe_truncnorm_ppf(v, (pe.lo - mu) / s, (pe.hi - mu) / s);
    double x = std::clamp(mu + s * z, pe.lo, pe.hi);
    if (p.log) x = std::exp(x);
    if (p.kind == TuneParam::Kind::integer) x = std::round(x);
    return std::clamp(x, p.lo, p.hi);
}

double tpe_log_density(const TpeParzen& pe, double x) {
    const TuneParam& p = pe.param;
    const size_t K = pe.weight.size();
    if (!is_numeric(p)) {  // a mixture of rows: no kernel is ever tiny, so a plain sum is exact enough
        const size_t C = p.n_choices, c = static_cast<size_t>(x);
        double s = 0;
        for (size_t k = 0; k < K; ++k) s += pe.weight[k] * pe.prob[k * C + c];
        return std::log(s);
    }
    const bool is_int = p.kind == TuneParam::Kind::integer;
    const double w = to_work(p, x);
    const double wa = is_int ? to_work(p, x - 0.5) : 0, wb = is_int ? to_work(p, x + 0.5) : 0;
    // Log-sum-exp, one pass: m is the running maximum, sum the terms scaled by e^-m.
    double m = -k_inf, sum = 0;
    for (size_t k = 0; k < K; ++k) {
        if (pe.weight[k] <= 0) continue;
        const double mu = pe.mu[k], s = pe.sigma[k];
        double t = std::log(pe.weight[k]) - pe.log_norm[k];
        if (is_int) {
            t += tpe_log_gauss_mass((wa - mu) / s, (wb - mu) / s);
        } else {
            const double z = (w - mu) / s;
            t += -0.5 * z * z - std::log(s) - k_log_sqrt_2pi;
        }
        if (t == -k_inf) continue;  // an empty interval: no mass, and e^(-inf - -inf) would be NaN
        if (t <= m) {
            sum += std::exp(t - m);
        } else {
            sum = sum * std::exp(m - t) + 1;
            m = t;
        }
    }
    return m + std::log(sum);
}

double tpe_log_density_ref(const TpeParzen& pe, double x) {
    const TuneParam& p = pe.param;
    double total = 0;
    if (p.kind == TuneParam::Kind::choice) {
        for (size_t k = 0; k < pe.weight.size(); ++k)
            total += pe.weight[k] * pe.prob[k * p.n_choices + static_cast<size_t>(x)];
        return std::log(total);
    }
    const double pi = 3.14159265358979323846;
    auto cdf = [](double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); };
    auto work = [&](double v) { return p.log ? std::log(v) : v; };
    for (size_t k = 0; k < pe.weight.size(); ++k) {
        const double mu = pe.mu[k], s = pe.sigma[k];
        const double mass = cdf((pe.hi - mu) / s) - cdf((pe.lo - mu) / s);
        double dens;
        if (p.kind == TuneParam::Kind::integer) {
            dens = (cdf((work(x + 0.5) - mu) / s) - cdf((work(x - 0.5) - mu) / s)) / mass;
        } else {
            const double z = (work(x) - mu) / s;
            dens = std::exp(-0.5 * z * z) / (s * std::sqrt(2 * pi)) / mass;
        }
        total += pe.weight[k] * dens;
    }
    return std::log(total);
}

TunePoint tpe_suggest(const std::vector<TuneParam>& space, const std::vector<TpeObservation>& obs,
                      const TpeOptions& o, std::mt19937_64& rng) {
    assert(o.candidates > 0);
    const int n = static_cast<int>(obs.size());
    if (n < o.startup) return tune_random_point(space, rng);
    const TpeSplit split = tpe_split(obs, tpe_gamma(n));
    const std::vector<double> w_below = tpe_default_weights(static_cast<int>(split.below.size()));
    const std::vector<double> w_above = tpe_default_weights(static_cast<int>(split.above.size()));
    TunePoint out(space.size());
    std::vector<double> vb(split.below.size()), va(split.above.size());
    for (size_t i = 0; i < space.size(); ++i) {
        if (is_numeric(space[i]) && !(space[i].hi > space[i].lo)) {  // a pinned key: no width to model
            out[i] = space[i].lo;
            continue;
        }
        for (size_t j = 0; j < vb.size(); ++j) vb[j] = obs[split.below[j]].x[i];
        for (size_t j = 0; j < va.size(); ++j) va[j] = obs[split.above[j]].x[i];
        const TpeParzen l = tpe_parzen_build(space[i], vb, w_below, o.prior_weight);
        const TpeParzen g = tpe_parzen_build(space[i], va, w_above, o.prior_weight);
        // Maximising l/g maximises expected improvement (Bergstra et al. 2011 §4.1); the first
        // maximum wins a tie, as np.argmax does in Optuna's _compare.
        double best = -k_inf;
        for (int c = 0; c < o.candidates; ++c) {
            const double x = tpe_parzen_sample(l, rng);
            const double score = tpe_log_density(l, x) - tpe_log_density(g, x);
            if (score > best || c == 0) {
                best = score;
                out[i] = x;
            }
        }
    }
    return out;
}

}  // namespace rl
