// routelab-cli tune-bench: the TPE of the sweeps against random search on functions with known optima
// (Branin, Hartmann-6; tune/test_functions.h): the median best-so-far regret over seeds after each
// trial, with its quartiles, printed at a few trial counts and written as CSV and as an SVG plot on
// a log axis (docs/tuning.md, must-show 2).
//   tune-bench [--trials N (100)] [--repeats R (20)] [--csv F] [--svg F]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "cli.h"
#include "tune/test_functions.h"
#include "util/atomic_file.h"

using namespace rl;

namespace cli {

namespace {

// The q-quantile of v (linear between order statistics).
double quantile(std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    const double at = q * (v.size() - 1);
    const size_t i = (size_t)at;
    return i + 1 < v.size() ? v[i] + (at - i) * (v[i + 1] - v[i]) : v[i];
}

// Per trial: the 25%, 50% and 75% quantiles of the seeds' regrets.
struct Band {
    std::vector<double> q25, q50, q75;
};
Band band_of(const std::vector<std::vector<double>>& curves) {
    Band b;
    for (size_t t = 0; t < curves[0].size(); t++) {
        std::vector<double> at;
        for (const auto& c : curves) at.push_back(c[t]);
        b.q25.push_back(quantile(at, 0.25)), b.q50.push_back(quantile(at, 0.5)), b.q75.push_back(quantile(at, 0.75));
    }
    return b;
}

// Two panels side by side, regret on a log axis, a method's median as a line over its quartile band.
std::string svg_of(const std::vector<std::string>& names, const std::vector<std::pair<Band, Band>>& bands, int trials, int repeats) {
    const int W = 460, H = 320, L = 60, R = 12, T = 34, B = 44;
    std::ostringstream s;
    s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W * names.size() << "' height='" << H
      << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n";
    for (size_t p = 0; p < names.size(); p++) {
        const int x0 = (int)p * W;
        double lo = 1e300, hi = 0;
        for (const Band* b : {&bands[p].first, &bands[p].second})
            for (size_t t = 0; t < b->q25.size(); t++) lo = std::min(lo, std::max(b->q25[t], 1e-6)), hi = std::max(hi, b->q75[t]);
        const double l0 = std::floor(std::log10(lo)), l1 = std::ceil(std::log10(hi));
        auto X = [&](double t) { return x0 + L + (W - L - R) * (t - 1) / std::max(1, trials - 1); };
        auto Y = [&](double v) { return T + (H - T - B) * (l1 - std::log10(std::max(v, 1e-6))) / std::max(1.0, l1 - l0); };
        s << "<text x='" << x0 + W / 2 << "' y='20' text-anchor='middle' font-size='14'>" << names[p] << ": median regret over "
          << repeats << " seeds (band: quartiles)</text>\n";
        for (double e = l0; e <= l1; e++)
            s << "<line x1='" << X(1) << "' x2='" << X(trials) << "' y1='" << Y(std::pow(10, e)) << "' y2='" << Y(std::pow(10, e))
              << "' stroke='#ddd'/><text x='" << X(1) - 6 << "' y='" << Y(std::pow(10, e)) + 4 << "' text-anchor='end'>1e" << e << "</text>\n";
        for (int t = 0; t <= trials; t += std::max(1, trials / 5))
            s << "<text x='" << X(std::max(t, 1)) << "' y='" << H - B + 16 << "' text-anchor='middle'>" << std::max(t, 1) << "</text>\n";
        s << "<text x='" << x0 + L + (W - L - R) / 2 << "' y='" << H - 8 << "' text-anchor='middle'>trials</text>\n";
        const char* colour[] = {"#1f6fd0", "#d0531f"};
        const char* label[] = {"TPE", "random"};
        int m = 0;
        for (const Band* b : {&bands[p].first, &bands[p].second}) {
            std::ostringstream area, line;
            for (int t = 0; t < trials; t++) area << (t ? " " : "") << X(t + 1) << "," << Y(b->q75[t]);
            for (int t = trials; t-- > 0;) area << " " << X(t + 1) << "," << Y(b->q25[t]);
            for (int t = 0; t < trials; t++) line << (t ? " " : "") << X(t + 1) << "," << Y(b->q50[t]);
            s << "<polygon points='" << area.str() << "' fill='" << colour[m] << "' fill-opacity='0.15'/>\n<polyline points='"
              << line.str() << "' fill='none' stroke='" << colour[m] << "' stroke-width='2'/>\n<text x='" << X(trials) - 4
              << "' y='" << T + 16 + 16 * m << "' text-anchor='end' fill='" << colour[m] << "'>" << label[m] << "</text>\n";
            m++;
        }
    }
    s << "</svg>\n";
    return s.str();
}

}  // namespace

int cmd_tune_bench(const Args& a) {
    long long trials = 100, repeats = 20;
    if (a.has("trials") && !parse_int(a.opt.at("trials"), 2, 10000, trials)) return usage("--trials must be in 2..10000");
    if (a.has("repeats") && !parse_int(a.opt.at("repeats"), 1, 1000, repeats)) return usage("--repeats must be in 1..1000");
    std::vector<std::string> names;
    std::vector<std::pair<Band, Band>> bands;
    std::ostringstream csv;
    csv << "function,trial,tpe_q25,tpe_median,tpe_q75,random_q25,random_median,random_q75\n";
    for (const TuneProblem& pr : tune_problems()) {
        const Band tpe = band_of(tune_regret_curves(pr, (int)trials, (int)repeats, true));
        const Band rnd = band_of(tune_regret_curves(pr, (int)trials, (int)repeats, false));
        std::printf("%s (optimum %.6g), median regret over %lld seeds [quartiles]:\n", pr.name.c_str(), pr.optimum, repeats);
        std::printf("  %6s  %-30s %-30s\n", "trials", "TPE", "random");
        for (int t = 1; t <= trials; t++) {
            csv << pr.name << "," << t << "," << tpe.q25[t - 1] << "," << tpe.q50[t - 1] << "," << tpe.q75[t - 1] << ","
                << rnd.q25[t - 1] << "," << rnd.q50[t - 1] << "," << rnd.q75[t - 1] << "\n";
            if (t != 1 && t != 10 && t % 20 != 0 && t != trials) continue;
            char a1[64], a2[64];
            std::snprintf(a1, sizeof a1, "%.4g [%.3g, %.3g]", tpe.q50[t - 1], tpe.q25[t - 1], tpe.q75[t - 1]);
            std::snprintf(a2, sizeof a2, "%.4g [%.3g, %.3g]", rnd.q50[t - 1], rnd.q25[t - 1], rnd.q75[t - 1]);
            std::printf("  %6d  %-30s %-30s\n", t, a1, a2);
        }
        names.push_back(pr.name);
        bands.push_back({tpe, rnd});
    }
    if (a.has("csv"))
        if (Status w = atomic_file_write(a.opt.at("csv"), csv.str()); !w) return fail(w.msg + " (choose another --csv path)");
    if (a.has("svg"))
        if (Status w = atomic_file_write(a.opt.at("svg"), svg_of(names, bands, (int)trials, (int)repeats)); !w)
            return fail(w.msg + " (choose another --svg path)");
    return 0;
}

}  // namespace cli
