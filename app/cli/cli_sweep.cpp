// routelab-cli sweep --grid F: the search a sweep file asks for (config/sweep_search.h), each job a run
// trained, paused at a rung, continued from its checkpoint or stored pruned; each rung and the
// Pareto front printed (docs/tuning.md).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "cli_train.h"
#include "config/sweep_search.h"
#include "infer/eval.h"
#include "io/resume.h"
#include "io/run_metrics.h"
#include "util/atomic_file.h"

using namespace rl;
namespace fs = std::filesystem;

namespace cli {

namespace {

// Where one run of the sweep lives: its folder and its store row.
struct SweepRun {
    std::string dir;
    int64_t id = 0;
};

// A run's metrics from its stored row (the window's tuning view reads the same), else from the loop.
TuneMetrics metrics_of(StoreLink& link, const TrainOutcome& o, const TrainState& s) {
    TuneMetrics m;
    m.ok = true;
    m[TuneMetric::active_params] = eval_active_params(s.cfg.model, {});
    if (link.rec.store)
        if (auto r = run_store_get(*link.rec.store, link.rec.id); r) {
            for (int k = 0; k < (int)TuneMetric::count; k++)
                if ((TuneMetric)k != TuneMetric::active_params) m.v[k] = run_record_metric(*r, (TuneMetric)k);
            return m;
        }
    m[TuneMetric::val_loss] = o.val, m[TuneMetric::final_loss] = o.last.loss;  // no store: what the loop measured
    m[TuneMetric::tok_per_s] = o.seconds > 0 ? o.train_tokens / o.seconds : 0;
    return m;
}

std::string run_label(const TuneSearch& t, const TuneJob& j) {
    return t.points[j.point].point.label + (t.sw.seeds > 1 ? " seed#" + std::to_string(j.replicate + 1) : "");
}

// One train job: a new run (from step 0) or a paused one continued exactly from its checkpoint, to
// the job's step. Its metrics there (ok false when it could not start or failed).
TuneMetrics run_job(const TuneSearch& t, const TuneJob& j, SweepRun& run, const StoreLink& store, const std::string& tag) {
    const auto t0 = std::chrono::steady_clock::now();
    StoreLink link = store;  // each run its own row in the one store
    link.rec.id = run.id;
    std::unique_ptr<TrainState> state;
    Status err = Status::ok();
    if (j.from_step == 0) {
        Config as_far;
        auto cfg = tune_job_config(t, j, &as_far);
        if (cfg) {
            if (auto st = trainer_create(*cfg); st) state = std::move(*st);
            else err = st.status;
        } else {
            err = cfg.status;
        }
        std::error_code ec;
        fs::create_directories(run.dir, ec);
        if (!err && link.rec.store) {
            if (auto id = recorder_record(*link.rec.store, tune_job_name(t, j), config_to_json(as_far), {t.sw.name, {}}, {},
                                          RunStatus::failed, err.msg); !id)
                std::fprintf(stderr, "warning: %s\n", id.status.msg.c_str());
        }
        if (state) store_begin(link, *state, run.dir, {t.sw.name, {}});
    } else {
        auto r = run_resume(run.dir + "/checkpoint.safetensors");
        if (r && !r->exact) err = Status::error("its checkpoint could not be continued exactly: " + r->note);
        else if (r && r->state->step != j.from_step)
            err = Status::error("its checkpoint is of step " + std::to_string(r->state->step) + ", not the rung's " + std::to_string(j.from_step));
        else if (r) state = std::move(r->state);
        else err = r.status;
        if (state && link.rec.store && !recorder_reopen(link.rec, run.id)) link.said();
        if (!err && link.rec.store && run.id)  // the paused row says why it goes no further
            if (Status st = run_store_end(*link.rec.store, run.id, RunStatus::failed, "could not go on from its rung: " + err.msg); !st)
                std::fprintf(stderr, "warning: %s\n", st.msg.c_str());
    }
    TuneMetrics m;
    if (!err) {
        std::fprintf(stderr, "%s %s: failed: %s\n", tag.c_str(), run_label(t, j).c_str(), err.msg.c_str());
        return m;
    }
    run.id = link.rec.id;
    TrainOutcome o;
    if (run_training(*state, run.dir, link, seconds_since(t0), true, o, j.to_step) != 0) {
        std::fprintf(stderr, "%s %s: failed (see above)\n", tag.c_str(), run_label(t, j).c_str());
        return m;
    }
    m = metrics_of(link, o, *state);
    std::fprintf(stderr, "%s %s: %s, steps %d-%d, loss %.4f, val %.4f, %.0f tok/s, %.2f s, run %lld\n", tag.c_str(),
                 run_label(t, j).c_str(), j.last ? "finished" : "paused", j.from_step + 1, j.to_step, o.last.loss,
                 m[TuneMetric::val_loss], m[TuneMetric::tok_per_s], seconds_since(t0), (long long)run.id);
    return m;
}

void print_rung(const TuneSearch& t, const TuneRung& r) {
    std::printf("rung %d%s at %d steps: %zu points, the best %d go on (ranked by %s%s)\n", r.rung + 1,
                t.sw.hyperband ? (" of bracket " + std::to_string(r.bracket + 1)).c_str() : "", r.steps, r.points.size(), r.kept,
                tune_metric_name(t.sw.objectives[0].metric), t.sw.constraints.empty() ? "" : ", feasible first");
    for (size_t k = 0; k < r.points.size(); k++)
        std::printf("  %s %-10.4f %s%s\n", (int)k < r.kept ? "kept  " : "pruned", r.value[k], t.points[r.points[k]].point.label.c_str(),
                    r.violation[k] > 0 ? "  (infeasible)" : "");
    std::fflush(stdout);  // between the runs' progress lines on stderr
}

// The points that finished, best first by the first objective (mean ± sd over seeds), and the front.
void print_results(const TuneSearch& t) {
    std::vector<TuneSummary> fin;
    for (const TuneSummary& s : tune_summaries(t))
        if (s.state == TunePointState::State::finished) fin.push_back(s);
    const bool max0 = t.sw.objectives[0].maximise;
    std::stable_sort(fin.begin(), fin.end(), [&](const TuneSummary& a, const TuneSummary& b) {
        return max0 ? a.mean[0] > b.mean[0] : a.mean[0] < b.mean[0];
    });
    std::printf("finished points (%zu), by %s, mean ± sd over %d seed%s:\n", fin.size(), tune_metric_name(t.sw.objectives[0].metric),
                t.sw.seeds, t.sw.seeds > 1 ? "s" : "");
    for (size_t i = 0; i < fin.size() && i < 10; i++) {
        std::printf("  ");
        for (size_t k = 0; k < t.sw.objectives.size(); k++)
            std::printf("%s %.4g ± %.2g  ", tune_metric_name(t.sw.objectives[k].metric), fin[i].mean[k], fin[i].sd[k]);
        std::printf("%s%s\n", t.points[fin[i].point].point.label.c_str(), fin[i].violation > 0 ? "  (infeasible)" : "");
    }
    const std::vector<int> front = tune_front(t);
    std::string names;
    for (const SweepObjective& o : t.sw.objectives) names += std::string(names.empty() ? "" : ", ") + (o.maximise ? "max " : "min ") + tune_metric_name(o.metric);
    std::printf("front (%s%s): %zu point%s\n", names.c_str(), t.sw.constraints.empty() ? "" : ("; " + t.sw.constraints[0].text + (t.sw.constraints.size() > 1 ? ", ..." : "")).c_str(),
                front.size(), front.size() == 1 ? "" : "s");
    const std::vector<TuneSummary> all = tune_summaries(t);
    for (int i : front) {
        std::printf("  ");
        for (size_t k = 0; k < t.sw.objectives.size(); k++) std::printf("%s %.4g  ", tune_metric_name(t.sw.objectives[k].metric), all[i].mean[k]);
        std::printf("%s\n", t.points[i].point.label.c_str());
    }
    const std::vector<double> imp = tune_importances(t);
    if (imp.empty()) return (void)std::printf("importance: needs 10 finished points (%zu here)\n", fin.size());
    std::printf("importance (PED-ANOVA: the best 10%% of the finished points against all %zu):\n", fin.size());
    for (size_t k = 0; k < imp.size(); k++)
        std::printf("  %-32s %5.1f%% %s\n", t.sw.params[k].key.c_str(), 100 * imp[k], std::string((size_t)std::lround(40 * imp[k]), '#').c_str());
}

// --json F: the search's outcome for scripts: every point (state, steps, seeds, each objective's mean,
// sd, min and max), the rungs and the front.
nlohmann::json results_json(const TuneSearch& t, int jobs) {
    nlohmann::json pts = nlohmann::json::array(), rungs = nlohmann::json::array();
    static const char* const states[] = {"waiting", "pruned", "finished", "failed"};
    for (const TuneSummary& s : tune_summaries(t)) {
        nlohmann::json o = nlohmann::json::object();
        for (size_t k = 0; k < t.sw.objectives.size() && s.runs; k++)
            o[tune_metric_name(t.sw.objectives[k].metric)] = {{"mean", s.mean[k]}, {"sd", s.sd[k]}, {"min", s.lo[k]}, {"max", s.hi[k]}};
        pts.push_back({{"point", s.point}, {"label", t.points[s.point].point.label}, {"state", states[(int)s.state]},
                       {"steps", s.steps}, {"seeds", s.runs}, {"objectives", o}, {"violation", s.violation}});
    }
    nlohmann::json imp = nlohmann::json::object();
    const std::vector<double> shares = tune_importances(t);
    for (size_t k = 0; k < shares.size(); k++) imp[t.sw.params[k].key] = shares[k];
    for (const TuneRung& r : t.rungs)
        rungs.push_back({{"bracket", r.bracket}, {"rung", r.rung}, {"steps", r.steps}, {"points", r.points}, {"value", r.value},
                         {"kept", r.kept}});
    return {{"sweep", t.sw.name}, {"method", sweep_method_name(t.sw.method)}, {"seeds", t.sw.seeds}, {"max_steps", t.max_steps},
            {"training_steps", t.steps_spent}, {"jobs", jobs}, {"budget_hit", t.budget_hit}, {"points", pts},
            {"rungs", rungs}, {"front", tune_front(t)}, {"importance", imp}};
}

}  // namespace

int cmd_sweep(const Args& a) {
    if (!a.has("grid")) return usage("sweep needs --grid F (a JSON sweep: {\"preset\": P, \"set\": {...}, \"grid\": {...}})");
    const std::string file = a.opt.at("grid");
    std::ifstream in(file);
    if (!in) return fail("cannot read sweep file '" + file + "'");
    std::stringstream text;
    text << in.rdbuf();
    auto sw = sweep_parse(text.str(), fs::path(file).stem().string());
    if (!sw) return fail(sw.status.msg + " (in " + file + ")");
    // The same base as the window's: a relative "config" next to the sweep file, the user's presets.
    auto base = sweep_base_config(*sw, fs::path(file).parent_path().string(), workspace_presets_dir(workspace_of(a)));
    if (!base) return fail(base.status.msg + " (in " + file + ")");
    auto search = tune_begin(*sw, *base);
    if (!search) return fail(search.status.msg + " (in " + file + ")");
    TuneSearch& t = *search;
    const std::string dir = a.has("out") ? a.opt.at("out") : "runs/sweep-" + sw->name;
    StoreLink link = store_open(a);
    std::fprintf(stderr, "sweep %s: %s, %s, %d seed%s a point, %d steps a run%s\n", sw->name.c_str(), sweep_method_name(sw->method),
                 sw->method == SweepMethod::tpe ? (std::to_string(sw->trials) + " trials").c_str()
                 : sw->hyperband ? (std::to_string(t.brackets.size()) + " Hyperband brackets").c_str()
                                 : (std::to_string(t.points.size()) + " points").c_str(),
                 sw->seeds, sw->seeds > 1 ? "s" : "", t.max_steps, link.rec.store ? (", stored in " + link.path).c_str() : "");
    std::map<std::pair<int, int>, SweepRun> runs;
    int jobs = 0, failed = 0, pruned = 0;
    size_t rungs_said = 0;
    while (auto j = tune_next(t)) {
        for (; rungs_said < t.rungs.size(); rungs_said++) print_rung(t, t.rungs[rungs_said]);
        SweepRun& run = runs[{j->point, j->replicate}];
        if (run.dir.empty())
            run.dir = dir + "/" + std::to_string(j->point + 1) + (sw->seeds > 1 ? "/seed-" + std::to_string(j->replicate + 1) : "");
        if (j->kind == TuneJob::Kind::prune) {
            pruned++;
            if (link.rec.store && run.id)
                if (Status st = run_store_end(*link.rec.store, run.id, RunStatus::pruned, j->why, (float)t.points[j->point].runs[j->replicate][TuneMetric::val_loss]); !st)
                    std::fprintf(stderr, "warning: %s\n", st.msg.c_str());
            continue;
        }
        const int planned = tune_planned_jobs(t);
        const std::string tag = "[" + std::to_string(++jobs) + (planned ? "/" + std::to_string(planned) : "") + "]";
        const TuneMetrics m = run_job(t, *j, run, link, tag);
        if (!m.ok) failed++;
        tune_report(t, *j, m);
    }
    for (; rungs_said < t.rungs.size(); rungs_said++) print_rung(t, t.rungs[rungs_said]);
    print_results(t);
    std::printf("sweep %s: %lld training steps in %d jobs; %d runs pruned, %d failed%s\n", sw->name.c_str(), t.steps_spent, jobs,
                pruned, failed, t.budget_hit ? "; stopped at the budget" : "");
    if (a.has("json"))
        if (Status w = atomic_file_write(a.opt.at("json"), results_json(t, jobs).dump(2) + "\n"); !w) return fail(w.msg + " (choose another --json path)");
    if (failed) std::fprintf(stderr, "the failed runs are stored with their reason (routelab-cli runs list)\n");
    return failed ? 1 : 0;
}

}  // namespace cli
