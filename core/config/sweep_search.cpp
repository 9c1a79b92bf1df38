#include "config/sweep_search.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "tune/importance.h"
#include "tune/pareto.h"
#include "tune/tpe.h"

namespace rl {

namespace {

using State = TunePointState::State;

// An objective's value in "smaller is better" form.
double minimised(const SweepObjective& o, double v) { return o.maximise ? -v : v; }

// The means of a point's reported seeds (ok false when none reported).
TuneMetrics point_mean(const TunePointState& p) {
    TuneMetrics m;
    int n = 0;
    for (const TuneMetrics& r : p.runs) {
        if (!r.ok) continue;
        for (size_t i = 0; i < m.v.size(); i++) m.v[i] += r.v[i];
        n++;
    }
    if (!n) return m;
    for (double& x : m.v) x /= n;
    m.ok = true;
    return m;
}

// The steps a point's runs train: max_steps where the search sets them (halving, "max_steps"), else
// its own config's train.steps (a grid may sweep train.steps itself).
int point_steps(const TuneSearch& t, int i) {
    if (t.sw.method == SweepMethod::halving || t.sw.max_steps) return t.max_steps;
    Config cfg = t.base;
    const SweepPoint& p = t.points[i].point;
    for (size_t k = t.sw.base_sets.size(); k < p.sets.size(); k++)
        if (!config_apply_override(cfg, p.sets[k])) return t.max_steps;
    return std::max(1, cfg.train.steps);  // an invalid count fails in tune_job_config, as one step's job
}

int add_point(TuneSearch& t, const TunePoint& x, int bracket) {
    TunePointState p;
    p.point = sweep_point_at(t.sw, x);
    p.bracket = bracket;
    p.runs.assign(t.sw.seeds, {});
    t.points.push_back(std::move(p));
    return (int)t.points.size() - 1;
}

// Queues the seeds of point i from where they stand to `to`; false when the budget would be passed
// (halving checks its whole rung first, so only a point of its own meets this).
bool queue_point(TuneSearch& t, int i, int to, int bracket, int rung) {
    TunePointState& p = t.points[i];
    const long long cost = (long long)(to - p.steps) * t.sw.seeds;
    if (t.sw.budget > 0 && t.steps_spent + cost > t.sw.budget && t.sw.method != SweepMethod::halving) return t.budget_hit = true, false;
    t.steps_spent += cost;
    p.reported = 0;
    for (int r = 0; r < t.sw.seeds; r++) {
        TuneJob j;
        j.point = i, j.replicate = r, j.from_step = p.steps, j.to_step = to;
        j.last = t.sw.method != SweepMethod::halving || to >= t.max_steps;
        j.bracket = bracket, j.rung = rung;
        t.queue.push_back(j);
    }
    return true;
}

// Hyperband's brackets (Li et al. 2018, Alg. 1) over R = max/min: s = s_max..0, each starting
// n = ceil((s_max+1)/(s+1)·eta^s) points at max·eta^-s steps; one bracket is plain successive halving.
void make_brackets(TuneSearch& t) {
    const Sweep& sw = t.sw;
    auto rungs_from = [&](double first) {
        std::vector<int> r;
        for (double s = first; (int)std::lround(s) < t.max_steps; s *= sw.eta) r.push_back(std::max(1, (int)std::lround(s)));
        r.push_back(t.max_steps);
        return r;
    };
    if (!sw.hyperband) {
        TuneBracket b;
        b.rung_steps = rungs_from(std::min(sw.min_steps, t.max_steps));
        b.size = (int)sw.points.size();
        t.brackets.push_back(b);
        return;
    }
    const double R = (double)t.max_steps / std::min(sw.min_steps, t.max_steps);
    const int s_max = (int)std::floor(std::log(R) / std::log((double)sw.eta) + 1e-9);
    for (int s = s_max; s >= 0; s--) {
        TuneBracket b;
        b.rung_steps = rungs_from(t.max_steps * std::pow((double)sw.eta, -s));
        b.size = (int)std::ceil((s_max + 1.0) / (s + 1.0) * std::pow((double)sw.eta, s) - 1e-9);
        t.brackets.push_back(b);
    }
}

// Ranks the bracket's alive points at its rung and prunes all but the best 1/eta (at least one).
void decide_rung(TuneSearch& t, TuneBracket& b) {
    TuneRung r;
    r.bracket = (int)t.bracket, r.rung = b.rung, r.steps = b.rung_steps[b.rung];
    std::vector<int> ranked;
    for (int i : b.alive)
        if (t.points[i].state == State::waiting) ranked.push_back(i);
    std::vector<double> value(t.points.size()), viol(t.points.size());
    for (int i : ranked) {
        const TuneMetrics m = point_mean(t.points[i]);
        value[i] = minimised(t.sw.objectives[0], m[t.sw.objectives[0].metric]);
        viol[i] = tune_violation(t.sw, m);
    }
    // Feasible points first, then the infeasible, each by the first objective. Not Deb's "infeasible by
    // violation": at a rung a load metric is still settling (docs/tuning-compare/pareto: every point
    // dropped 20-50% of its tokens at step 67 and 0-7% at 200), so ranking by violation there kept the
    // points that dropped least early and pruned the best by loss. Feasible early stays feasible (drops
    // fall as routers balance); infeasible early says little.
    std::stable_sort(ranked.begin(), ranked.end(), [&](int a, int c) {
        if ((viol[a] > 0) != (viol[c] > 0)) return viol[a] <= 0;
        return value[a] < value[c];
    });
    r.kept = std::max(1, (int)ranked.size() / t.sw.eta);
    if (ranked.empty()) r.kept = 0;
    const char* obj = tune_metric_name(t.sw.objectives[0].metric);
    for (size_t k = 0; k < ranked.size(); k++) {
        const int i = ranked[k];
        r.points.push_back(i);
        r.value.push_back(t.sw.objectives[0].maximise ? -value[i] : value[i]);
        r.violation.push_back(viol[i]);
        if ((int)k < r.kept) continue;
        t.points[i].state = State::pruned;
        char why[200];
        std::snprintf(why, sizeof why, "pruned at rung %d (%d steps): %s %.4g, ranked %zu of %zu%s; the best %d went on", b.rung + 1,
                      r.steps, obj, r.value.back(), k + 1, ranked.size(), viol[i] > 0 ? ", infeasible" : "", r.kept);
        for (int s = 0; s < t.sw.seeds; s++)
            if (t.points[i].runs[s].ok) t.queue.push_back({TuneJob::Kind::prune, i, s, r.steps, r.steps, false, r.bracket, r.rung, why});
    }
    b.alive.assign(ranked.begin(), ranked.begin() + r.kept);
    if (!ranked.empty()) t.rungs.push_back(std::move(r));
}

// Halving: the current bracket's next rung, after deciding the one just trained.
void refill_halving(TuneSearch& t) {
    while (t.bracket < t.brackets.size() && t.queue.empty() && !t.budget_hit) {
        TuneBracket& b = t.brackets[t.bracket];
        if (!b.started) {
            // The whole first rung must fit the budget, or none of it starts (no point left untrained).
            if (t.sw.budget > 0 && t.steps_spent + (long long)b.size * b.rung_steps[0] * t.sw.seeds > t.sw.budget) return (void)(t.budget_hit = true);
            b.started = true;
            for (int k = 0; k < b.size; k++)
                b.alive.push_back(t.sw.hyperband ? add_point(t, sweep_draw(t.sw, t.rng), (int)t.bracket) : k);
        } else if (b.rung + 1 < (int)b.rung_steps.size()) {
            long long cost = 0;  // the next rung's survivors, as decide_rung will keep them
            const int kept = std::max(1, (int)std::count_if(b.alive.begin(), b.alive.end(), [&](int i) { return t.points[i].state == State::waiting; }) / t.sw.eta);
            for (int k = 0; k < kept && k < (int)b.alive.size(); k++) cost += (long long)(b.rung_steps[b.rung + 1] - b.rung_steps[b.rung]) * t.sw.seeds;
            if (t.sw.budget > 0 && t.steps_spent + cost > t.sw.budget) return (void)(t.budget_hit = true);  // its runs stay paused, resumable
            decide_rung(t, b);
            b.rung++;
        } else {
            t.bracket++;  // its survivors finished at max_steps
            continue;
        }
        for (int i : b.alive) queue_point(t, i, b.rung_steps[b.rung], (int)t.bracket, b.rung);
        if (!t.queue.empty() && t.queue.back().kind == TuneJob::Kind::train) return;
    }
}

// The finished points as TPE observations, in the order they were made: the loss is the first
// objective's mean, minimised (several objectives: the constrained Pareto rank, ties by the first).
std::vector<TpeObservation> finished_observations(const TuneSearch& t) {
    std::vector<TpeObservation> obs;
    std::vector<std::vector<double>> objs;
    std::vector<double> viol;
    for (const TuneSummary& s : tune_summaries(t)) {
        if (s.state != State::finished) continue;
        std::vector<double> o;
        for (size_t k = 0; k < t.sw.objectives.size(); k++) o.push_back(minimised(t.sw.objectives[k], s.mean[k]));
        objs.push_back(o);
        viol.push_back(s.violation);
        obs.push_back({t.points[s.point].point.x, o[0], s.violation});
    }
    if (t.sw.objectives.size() > 1 && !obs.empty()) {
        const std::vector<int> rank = pareto_ranks(objs, viol);
        std::vector<double> first;
        for (const auto& o : objs) first.push_back(o[0]);
        const auto [lo, hi] = std::minmax_element(first.begin(), first.end());
        for (size_t i = 0; i < obs.size(); i++) obs[i].loss = rank[i] + 0.5 * (first[i] - *lo) / std::max(1e-300, *hi - *lo);
    }
    return obs;
}

// TPE: the next point from the finished ones.
void refill_tpe(TuneSearch& t) {
    if ((int)t.points.size() >= t.sw.trials || t.budget_hit) return;
    const std::vector<TpeObservation> obs = finished_observations(t);
    TpeOptions o;
    o.startup = t.sw.startup;
    const int i = add_point(t, tpe_suggest(t.sw.params, obs, o, t.rng), 0);
    if (!queue_point(t, i, point_steps(t, i), 0, 0)) t.points.pop_back();  // past the budget: never a point
}

}  // namespace

std::vector<double> tune_importances(const TuneSearch& t) {
    const std::vector<TpeObservation> obs = finished_observations(t);
    if (obs.size() < 10) return {};
    std::vector<TunePoint> x;
    std::vector<double> loss;
    double worst = -INFINITY;
    for (const TpeObservation& o : obs)
        if (o.violation <= 0) worst = std::max(worst, o.loss);
    if (!std::isfinite(worst)) worst = 0;
    for (const TpeObservation& o : obs) {
        x.push_back(o.x);
        // Infeasible points rank after every feasible one (by violation), as in the halving's rungs.
        loss.push_back(o.violation > 0 ? worst + 1 + std::abs(worst) + o.violation : o.loss);
    }
    return tune_importance(t.sw.params, x, loss);
}

double tune_violation(const Sweep& sw, const TuneMetrics& m) {
    double v = 0;
    for (const SweepConstraint& c : sw.constraints) {
        const double past = c.at_most ? m[c.metric] - c.bound : c.bound - m[c.metric];
        if (past > 0) v += past / std::max(std::abs(c.bound), 1e-9);
    }
    return v;
}

Result<TuneSearch> tune_begin(const Sweep& sw, const Config& base) {
    TuneSearch t;
    t.sw = sw;
    t.base = base;
    for (const std::string& kv : sw.base_sets)
        if (Status st = config_apply_override(t.base, kv); !st) return Status::error("sweep " + sw.name + ": " + st.msg);
    t.max_steps = sw.max_steps ? sw.max_steps : t.base.train.steps;
    if (t.max_steps < 1) return Status::error("sweep " + sw.name + ": its runs' train.steps must be 1 or more");
    if (sw.method == SweepMethod::halving && sw.min_steps > t.max_steps)
        return Status::error("sweep " + sw.name + ": min_steps " + std::to_string(sw.min_steps) + " is more than the runs' " +
                             std::to_string(t.max_steps) + " steps (max_steps, else train.steps)");
    t.rng.seed(sw.seed);
    if (sw.method == SweepMethod::halving) make_brackets(t);
    long long points = 0;
    for (const TuneBracket& b : t.brackets) points += b.size;
    if (sw.hyperband && points > 10000)
        return Status::error("sweep " + sw.name + ": Hyperband's brackets would draw " + std::to_string(points) +
                             " points; more than 10000 is surely a mistake (raise min_steps or eta)");
    if (sw.method != SweepMethod::tpe && !sw.hyperband)
        for (const SweepPoint& p : sw.points) add_point(t, p.x, 0);
    return t;
}

std::optional<TuneJob> tune_next(TuneSearch& t) {
    for (;;) {
        if (t.queue.empty()) {
            if (t.sw.method == SweepMethod::halving) refill_halving(t);
            else if (t.sw.method == SweepMethod::tpe) refill_tpe(t);
            else if (t.next_point < (int)t.points.size()) queue_point(t, t.next_point, point_steps(t, t.next_point), 0, 0), t.next_point++;
        }
        if (t.queue.empty()) return std::nullopt;
        TuneJob j = t.queue.front();
        t.queue.pop_front();
        // A seed of a point that failed meanwhile does not train.
        if (j.kind == TuneJob::Kind::train && t.points[j.point].state == State::failed) {
            t.steps_spent -= j.to_step - j.from_step;
            continue;
        }
        return j;
    }
}

void tune_report(TuneSearch& t, const TuneJob& job, const TuneMetrics& m) {
    if (job.kind != TuneJob::Kind::train) return;
    TunePointState& p = t.points[job.point];
    p.runs[job.replicate] = m;
    if (!m.ok) {
        // A paused seed of a point that failed goes no further: stored pruned, with why.
        if (p.state == State::waiting && !job.last)
            for (int s = 0; s < t.sw.seeds; s++)
                if (s != job.replicate && p.runs[s].ok)
                    t.queue.push_front({TuneJob::Kind::prune, job.point, s, p.steps, p.steps, false, job.bracket, job.rung,
                                        "dropped at step " + std::to_string(p.steps) + ": seed #" + std::to_string(job.replicate + 1) +
                                            " of its point failed"});
        p.state = State::failed;
        return;
    }
    if (++p.reported < t.sw.seeds) return;
    p.steps = job.to_step;
    if (job.last && p.state == State::waiting) p.state = State::finished;
}

Result<Config> tune_job_config(const TuneSearch& t, const TuneJob& job, Config* as_far) {
    Config cfg = t.base;
    const SweepPoint& p = t.points[job.point].point;
    Status st = Status::ok();
    for (size_t k = t.sw.base_sets.size(); st && k < p.sets.size(); k++) st = config_apply_override(cfg, p.sets[k]);
    if (t.sw.method == SweepMethod::halving || t.sw.max_steps) cfg.train.steps = t.max_steps;
    cfg.train.seed += (uint64_t)job.replicate;
    cfg.name = sweep_point_name(t.sw.name, p.label) + (t.sw.seeds > 1 ? " seed=" + std::to_string(cfg.train.seed) : "");
    if (st) st = config_validate(cfg);
    if (as_far) *as_far = cfg;
    if (!st) return st;
    return cfg;
}

std::string tune_job_name(const TuneSearch& t, const TuneJob& job) {
    Config cfg = t.base;  // the point's own seed when it sweeps train.seed
    const SweepPoint& p = t.points[job.point].point;
    for (size_t k = t.sw.base_sets.size(); k < p.sets.size(); k++) (void)config_apply_override(cfg, p.sets[k]);
    return sweep_point_name(t.sw.name, p.label) + (t.sw.seeds > 1 ? " seed=" + std::to_string(cfg.train.seed + (uint64_t)job.replicate) : "");
}

int tune_planned_jobs(const TuneSearch& t) {
    if (t.sw.method == SweepMethod::halving) return 0;
    return (t.sw.method == SweepMethod::tpe ? t.sw.trials : (int)t.points.size()) * t.sw.seeds;
}

std::vector<TuneSummary> tune_summaries(const TuneSearch& t) {
    std::vector<TuneSummary> out;
    for (size_t i = 0; i < t.points.size(); i++) {
        const TunePointState& p = t.points[i];
        TuneSummary s;
        s.point = (int)i, s.steps = p.steps, s.state = p.state;
        const size_t K = t.sw.objectives.size();
        s.mean.assign(K, 0), s.sd.assign(K, 0), s.lo.assign(K, INFINITY), s.hi.assign(K, -INFINITY);
        for (const TuneMetrics& r : p.runs) {
            if (!r.ok) continue;
            s.runs++;
            for (size_t k = 0; k < K; k++) {
                const double v = r[t.sw.objectives[k].metric];
                s.mean[k] += v, s.lo[k] = std::min(s.lo[k], v), s.hi[k] = std::max(s.hi[k], v);
            }
        }
        for (size_t k = 0; k < K && s.runs; k++) {
            s.mean[k] /= s.runs;
            for (const TuneMetrics& r : p.runs)
                if (r.ok) s.sd[k] += std::pow(r[t.sw.objectives[k].metric] - s.mean[k], 2);
            s.sd[k] = s.runs > 1 ? std::sqrt(s.sd[k] / (s.runs - 1)) : 0;
        }
        s.violation = s.runs ? tune_violation(t.sw, point_mean(p)) : 0;
        out.push_back(std::move(s));
    }
    return out;
}

std::vector<int> tune_front(const TuneSearch& t) {
    std::vector<std::vector<double>> objs;
    std::vector<double> viol;
    std::vector<int> idx;
    for (const TuneSummary& s : tune_summaries(t)) {
        if (s.state != State::finished) continue;
        std::vector<double> o;
        for (size_t k = 0; k < t.sw.objectives.size(); k++) o.push_back(minimised(t.sw.objectives[k], s.mean[k]));
        objs.push_back(o), viol.push_back(s.violation), idx.push_back(s.point);
    }
    std::vector<int> out;
    for (int f : pareto_front(objs, viol)) out.push_back(idx[f]);
    return out;
}

}  // namespace rl
