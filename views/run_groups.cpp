#include "run_groups.h"

#include <cmath>
#include <set>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "infer/eval.h"
#include "io/run_metrics.h"

namespace {

// The active parameters a token reaches at the config's top-k, once per distinct config.
double activeParams(const std::string& config_json) {
    static std::unordered_map<std::string, double> cache;
    if (auto it = cache.find(config_json); it != cache.end()) return it->second;
    auto cfg = rl::config_from_json(config_json);
    const double v = cfg ? rl::eval_active_params(cfg->model, {}) : NAN;
    if (cache.size() > 4096) cache.clear();
    return cache[config_json] = v;
}

// What makes a configuration: the config less its seed and its name ("" = ungroupable).
std::string groupKey(const rl::RunRecord& r) {
    if (r.sweep.empty()) return "";
    auto j = nlohmann::json::parse(r.config_json, nullptr, false);
    if (!j.is_object() || !j.contains("train") || !j["train"].is_object()) return "";
    j["train"].erase("seed");
    j.erase("name"), j.erase("description");
    return r.sweep + "\n" + j.dump();
}

// "s lr=0.003 seed=1235" -> "s lr=0.003"
std::string withoutSeed(std::string name) {
    const size_t at = name.rfind(" seed=");
    if (at != std::string::npos && name.find(' ', at + 1) == std::string::npos) name.resize(at);
    return name;
}

void setMetric(rl::RunRecord& r, rl::TuneMetric m, double v) {
    switch (m) {
        case rl::TuneMetric::val_loss: r.val_loss = (float)v; break;
        case rl::TuneMetric::final_loss: r.final_loss = (float)v; break;
        case rl::TuneMetric::tok_per_s: r.tok_per_s = (float)v; break;
        case rl::TuneMetric::load_cv: r.load_cv = (float)v; break;
        case rl::TuneMetric::head_cv: r.head_cv = (float)v; break;
        case rl::TuneMetric::dropped: r.dropped = (float)v; break;
        case rl::TuneMetric::wall_s: r.wall_s = (float)v; break;
        default: break;  // active parameters come from the config, the same for every run of a group
    }
}

// The group's record: the first run's, its metrics the means, and the spread beside it.
void summarise(const std::vector<const rl::RunRecord*>& g, RunGroups& out) {
    rl::RunRecord row = *g.front();
    RunSpread sp;
    sp.n = (int)g.size();
    for (int m = 0; m < (int)rl::TuneMetric::count; m++) {
        double sum = 0, sq = 0, lo = INFINITY, hi = -INFINITY;
        int n = 0;
        for (const rl::RunRecord* r : g) {
            const double v = runMetric(*r, (rl::TuneMetric)m);
            if (!std::isfinite(v)) continue;
            sum += v, sq += v * v, lo = std::min(lo, v), hi = std::max(hi, v), n++;
        }
        const double mean = n ? sum / n : -1;
        sp.sd[m] = n > 1 ? std::sqrt(std::max(0.0, (sq - n * mean * mean) / (n - 1))) : 0;
        sp.lo[m] = n ? lo : NAN, sp.hi[m] = n ? hi : NAN;
        setMetric(row, (rl::TuneMetric)m, mean);
    }
    // The group's status: the least finished of its runs' (running, failed, interrupted, pruned, finished).
    auto rank = [](rl::RunStatus s) {
        switch (s) {
            case rl::RunStatus::running: return 0;
            case rl::RunStatus::failed: return 1;
            case rl::RunStatus::interrupted: return 2;
            case rl::RunStatus::pruned: return 3;
            default: return 4;
        }
    };
    for (const rl::RunRecord* r : g) {
        row.steps = std::max(row.steps, r->steps);
        if (rank(r->status) < rank(row.status)) row.status = r->status;
        out.members[row.id].push_back(r->id);
    }
    row.name = withoutSeed(row.name) + " (" + std::to_string(g.size()) + " seeds)";
    out.spread[row.id] = sp;
    out.rows.push_back(std::move(row));
}

}  // namespace

double runMetric(const rl::RunRecord& r, rl::TuneMetric m) {
    return m == rl::TuneMetric::active_params ? activeParams(r.config_json) : rl::run_record_metric(r, m);
}

RunGroups runGroups(const std::vector<rl::RunRecord>& runs) {
    RunGroups out;
    std::vector<std::string> order;
    std::map<std::string, std::vector<const rl::RunRecord*>> groups;
    std::map<std::string, std::set<int64_t>> seeds;  // key -> the seeds its group holds
    for (const rl::RunRecord& r : runs) {
        std::string key = groupKey(r);
        if (key.empty()) {
            out.rows.push_back(r);
            out.members[r.id] = {r.id};
            continue;
        }
        // A seed a group already holds starts another group: the same config drawn twice, or a
        // sweep name run again, is another configuration's runs, never one run counted twice.
        for (int n = 2; seeds[key].count(r.seed); n++) key = groupKey(r) + "\n#" + std::to_string(n);
        seeds[key].insert(r.seed);
        if (!groups.count(key)) order.push_back(key);
        groups[key].push_back(&r);
    }
    for (const std::string& k : order) {
        const auto& g = groups[k];
        if (g.size() == 1) {
            out.rows.push_back(*g.front());
            out.members[g.front()->id] = {g.front()->id};
        } else {
            summarise(g, out);
        }
    }
    return out;
}
