#include "config/sweep.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "config/presets.h"

namespace rl {

namespace {

using json = nlohmann::ordered_json;  // grid keys keep the order the user wrote

Status bad(const std::string& where, const std::string& what) { return Status::error("sweep: '" + where + "' " + what); }

const char* const k_metric_names[] = {"val_loss", "final_loss", "tok_per_s", "load_cv", "head_cv", "dropped", "active_params", "wall_s"};
const char* const k_keys[] = {"name", "preset", "config", "set", "grid", "random", "seed", "method", "seeds", "trials",
                              "startup", "min_steps", "max_steps", "eta", "hyperband", "budget", "objectives", "constraints"};

// An integer key in [lo, hi], or its default when absent.
Status int_key(const json& j, const char* key, long long lo, long long hi, long long& out) {
    if (!j.contains(key)) return Status::ok();
    if (!j[key].is_number_integer() || j[key].get<long long>() < lo || j[key].get<long long>() > hi)
        return bad(key, "must be a whole number in " + std::to_string(lo) + ".." + std::to_string(hi));
    out = j[key].get<long long>();
    return Status::ok();
}

// The "grid" block: a list is a choice among its values, a range {min, max, log, int} a real or integer.
Status parse_params(const json& grid, bool ranges_ok, Sweep& s) {
    if (!grid.is_object()) return bad("grid", "must be an object of key: [values] or key: {min, max}");
    for (auto it = grid.begin(); it != grid.end(); ++it) {
        const json& v = it.value();
        TuneParam p;
        p.key = it.key();
        std::vector<std::string> values;
        if (v.is_array()) {
            if (v.empty()) return bad("grid." + it.key(), "is an empty list");
            for (const auto& e : v) values.push_back(e.dump());
            p.kind = TuneParam::Kind::choice;
            p.n_choices = (int)v.size();
            p.lo = 0, p.hi = (double)v.size() - 1;
        } else if (v.is_object()) {
            if (!ranges_ok) return bad("grid." + it.key(), "is a range; ranges need \"random\": N or \"method\": \"tpe\" (a grid takes lists)");
            if (!v.contains("min") || !v.contains("max") || !v["min"].is_number() || !v["max"].is_number())
                return bad("grid." + it.key(), "needs numeric \"min\" and \"max\"");
            for (const char* flag : {"log", "int"})
                if (v.contains(flag) && !v[flag].is_boolean()) return bad("grid." + it.key() + "." + flag, "must be true or false");
            p.lo = v["min"].get<double>(), p.hi = v["max"].get<double>();
            if (p.lo > p.hi) return bad("grid." + it.key(), "has min > max");
            p.log = v.value("log", false);
            if (p.log && p.lo <= 0) return bad("grid." + it.key(), "needs min > 0 with \"log\"");
            p.kind = v.value("int", false) ? TuneParam::Kind::integer : TuneParam::Kind::real;
        } else {
            return bad("grid." + it.key(), "must be a list of values or a {min, max} range");
        }
        s.params.push_back(p);
        s.choices.push_back(std::move(values));
    }
    return Status::ok();
}

// "objectives": {"val_loss": "min", "tok_per_s": "max"}; "constraints": ["dropped <= 0.01"].
Status parse_objectives(const json& j, Sweep& s) {
    if (j.contains("objectives")) {
        const json& o = j["objectives"];
        if (!o.is_object() || o.empty()) return bad("objectives", "must be an object of metric: \"min\" or \"max\"");
        for (auto it = o.begin(); it != o.end(); ++it) {
            SweepObjective ob;
            if (!tune_metric_parse(it.key(), ob.metric)) return bad("objectives." + it.key(), "is not a metric (val_loss, final_loss, tok_per_s, load_cv, head_cv, dropped, active_params, wall_s)");
            if (!it.value().is_string() || (it.value() != "min" && it.value() != "max")) return bad("objectives." + it.key(), "must be \"min\" or \"max\"");
            ob.maximise = it.value() == "max";
            s.objectives.push_back(ob);
        }
    } else {
        s.objectives.push_back({});
    }
    if (!j.contains("constraints")) return Status::ok();
    if (!j["constraints"].is_array()) return bad("constraints", "must be a list such as [\"dropped <= 0.01\"]");
    for (const auto& c : j["constraints"]) {
        auto k = sweep_constraint_parse(c.is_string() ? c.get<std::string>() : c.dump());
        if (!k) return bad("constraints", k.status.msg);
        s.constraints.push_back(*k);
    }
    return Status::ok();
}

// "method" and the keys that go with it.
Status parse_method(const json& j, Sweep& s) {
    if (j.contains("method") && !j["method"].is_string()) return bad("method", "must be grid, random, halving or tpe");
    const std::string m = j.value("method", std::string(j.contains("random") ? "random" : "grid"));
    if (m == "grid") s.method = SweepMethod::grid;
    else if (m == "random") s.method = SweepMethod::random;
    else if (m == "halving") s.method = SweepMethod::halving;
    else if (m == "tpe") s.method = SweepMethod::tpe;
    else return bad("method", "must be grid, random, halving or tpe (got \"" + m + "\")");
    long long v = 0;
    if (Status st = int_key(j, "seed", 0, (long long)1 << 53, v = 1); !st) return st;
    s.seed = (uint64_t)v;
    if (Status st = int_key(j, "seeds", 1, 100, v = 1); !st) return st;
    s.seeds = (int)v;
    if (Status st = int_key(j, "budget", 0, (long long)1 << 40, v = 0); !st) return st;
    s.budget = v;
    if (Status st = int_key(j, "max_steps", 1, 100000000, v = 0); !st) return st;
    s.max_steps = (int)v;
    if (m == "random" && !j.contains("random")) return bad("method", "\"random\" needs \"random\": N (the number of points)");
    if (m == "tpe") {
        if (!j.contains("trials")) return bad("method", "\"tpe\" needs \"trials\": N (the points to try)");
        if (Status st = int_key(j, "trials", 1, 10000, v); !st) return st;
        s.trials = (int)v;
        if (Status st = int_key(j, "startup", 1, 10000, v = 10); !st) return st;
        s.startup = (int)v;
    }
    if (m == "halving") {
        if (!j.contains("min_steps")) return bad("method", "\"halving\" needs \"min_steps\" (the first rung's steps)");
        if (Status st = int_key(j, "min_steps", 1, 100000000, v); !st) return st;
        s.min_steps = (int)v;
        if (s.max_steps && s.min_steps > s.max_steps) return bad("min_steps", "is more than \"max_steps\"");
        if (Status st = int_key(j, "eta", 2, 100, v = 3); !st) return st;
        s.eta = (int)v;
        if (j.contains("hyperband") && !j["hyperband"].is_boolean()) return bad("hyperband", "must be true or false");
        s.hyperband = j.value("hyperband", false);
    }
    for (const char* k : {"trials", "startup"})
        if (j.contains(k) && m != "tpe") return bad(k, "goes with \"method\": \"tpe\"");
    for (const char* k : {"min_steps", "eta", "hyperband"})
        if (j.contains(k) && m != "halving") return bad(k, "goes with \"method\": \"halving\"");
    if (j.contains("random") && (m == "grid" || m == "tpe" || s.hyperband))
        return bad("random", m == "tpe"  ? "is not used by \"tpe\" (it takes \"trials\")"
                             : m == "grid" ? "is not used by \"grid\" (it tries every combination of the lists; \"method\": \"random\" draws)"
                                           : "is not used here (Hyperband draws its own points)");
    return Status::ok();
}

std::string value_text(const Sweep& sw, size_t k, double x) {
    const TuneParam& p = sw.params[k];
    if (p.kind == TuneParam::Kind::choice) return sw.choices[k][(size_t)std::clamp<long long>(std::llround(x), 0, p.n_choices - 1)];
    if (p.kind == TuneParam::Kind::integer) return std::to_string(std::llround(x));
    // The fewest digits that read back as x (nlohmann's dump may give 17: 0.0051919999999999996).
    for (int digits = 1; digits <= 17; digits++) {
        char b[40];
        std::snprintf(b, sizeof b, "%.*g", digits, x);
        if (std::strtod(b, nullptr) == x) return json::parse(b, nullptr, false).is_number() ? b : json(x).dump();
    }
    return json(x).dump();
}

}  // namespace

const char* tune_metric_name(TuneMetric m) { return k_metric_names[(int)m]; }

bool tune_metric_parse(const std::string& name, TuneMetric& out) {
    for (int i = 0; i < (int)TuneMetric::count; i++)
        if (name == k_metric_names[i]) return out = (TuneMetric)i, true;
    return false;
}

const char* sweep_method_name(SweepMethod m) {
    static const char* const names[] = {"grid", "random", "halving", "tpe"};
    return names[(int)m];
}

Result<SweepConstraint> sweep_constraint_parse(const std::string& text) {
    std::istringstream in(text);
    std::string metric, op, rest;
    double bound = 0;
    SweepConstraint k;
    if (!(in >> metric >> op >> bound) || (in >> rest) || (op != "<=" && op != ">=") || !tune_metric_parse(metric, k.metric))
        return Status::error("takes \"METRIC <= BOUND\" or \"METRIC >= BOUND\", METRIC one of val_loss, final_loss, tok_per_s, "
                             "load_cv, head_cv, dropped, active_params, wall_s (got \"" + text + "\")");
    k.at_most = op == "<=";
    k.bound = bound;
    std::ostringstream t;
    t << metric << " " << op << " " << bound;
    k.text = t.str();
    return k;
}

SweepPoint sweep_point_at(const Sweep& sw, const TunePoint& x) {
    SweepPoint p;
    p.sets = sw.base_sets;
    p.x = x;
    for (size_t k = 0; k < sw.params.size(); k++) {
        // A drawn real keeps 4 significant digits (inside its range): names and tables read
        // lr=0.002997, not lr=0.0029974367706209603, and the point is the value the run used.
        if (sw.params[k].kind == TuneParam::Kind::real && std::isfinite(p.x[k])) {
            char b[32];
            std::snprintf(b, sizeof b, "%.4g", p.x[k]);
            p.x[k] = std::clamp(std::strtod(b, nullptr), sw.params[k].lo, sw.params[k].hi);
        }
        const std::string kv = sw.params[k].key + "=" + value_text(sw, k, p.x[k]);
        p.sets.push_back(kv);
        p.label += (k ? " " : "") + kv;
    }
    return p;
}

// The draws "random" always made (the same seed draws the same points as before TPE existed).
TunePoint sweep_draw(const Sweep& sw, std::mt19937_64& g) {
    TunePoint x;
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (const TuneParam& p : sw.params) {
        if (p.kind == TuneParam::Kind::choice) {
            x.push_back((double)std::uniform_int_distribution<size_t>(0, (size_t)p.n_choices - 1)(g));
            continue;
        }
        const double v = p.log ? std::exp(std::log(p.lo) + u(g) * (std::log(p.hi) - std::log(p.lo))) : p.lo + u(g) * (p.hi - p.lo);
        x.push_back(p.kind == TuneParam::Kind::integer ? (double)std::llround(v) : v);
    }
    return x;
}

Result<Sweep> sweep_parse(const std::string& text, const std::string& default_name) {
    const json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Status::error("sweep: the file is not a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it)
        if (std::find(std::begin(k_keys), std::end(k_keys), it.key()) == std::end(k_keys))
            return bad(it.key(), "is not a sweep key (allowed: name, preset, config, set, grid, random, seed, method, seeds, "
                                 "trials, startup, min_steps, max_steps, eta, hyperband, budget, objectives, constraints)");
    Sweep s;
    s.name = j.contains("name") && j["name"].is_string() ? j["name"].get<std::string>() : default_name;
    if (j.contains("preset") && j.contains("config")) return Status::error("sweep: give 'preset' or 'config', not both");
    if (j.contains("preset") && !j["preset"].is_string()) return bad("preset", "must be a preset name");
    if (j.contains("config") && !j["config"].is_string()) return bad("config", "must be a path");
    s.preset = j.value("preset", std::string(j.contains("config") ? "" : "default"));
    s.config_path = j.value("config", std::string());
    if (j.contains("set")) {
        if (!j["set"].is_object()) return bad("set", "must be an object of key: value");
        for (auto it = j["set"].begin(); it != j["set"].end(); ++it) s.base_sets.push_back(it.key() + "=" + it.value().dump());
    }
    if (Status st = parse_method(j, s); !st) return st;
    if (Status st = parse_objectives(j, s); !st) return st;
    const bool random = j.contains("random") || s.method == SweepMethod::tpe || s.hyperband;
    if (Status st = parse_params(j.contains("grid") ? j["grid"] : json::object(), random, s); !st) return st;
    if (j.contains("random") && (!j["random"].is_number_integer() || j["random"].get<long long>() < 1 || j["random"].get<long long>() > 10000))
        return bad("random", "must be a number of points in 1..10000");
    if ((s.method == SweepMethod::tpe || s.hyperband) && s.params.empty()) return bad("grid", "names no key to search");
    if (s.method == SweepMethod::tpe || s.hyperband) return s;  // their points are made while searching
    if (j.contains("random")) {
        std::mt19937_64 g(s.seed);
        for (long long i = 0; i < j["random"].get<long long>(); i++) s.points.push_back(sweep_point_at(s, sweep_draw(s, g)));
        return s;
    }
    // The cartesian product, the last key changing fastest.
    size_t total = 1;
    for (const TuneParam& p : s.params) total *= (size_t)p.n_choices;
    if (total > 10000) return bad("grid", "has " + std::to_string(total) + " points; more than 10000 is surely a mistake");
    TunePoint x(s.params.size(), 0.0);
    for (size_t n = 0; n < total; n++) {
        s.points.push_back(sweep_point_at(s, x));
        for (size_t k = s.params.size(); k-- > 0;) {
            if (++x[k] < s.params[k].n_choices) break;
            x[k] = 0;
        }
    }
    return s;
}

std::string sweep_point_name(const std::string& sweep, const std::string& label) {
    std::string out = sweep;
    size_t at = 0;
    while (at < label.size()) {
        size_t end = label.find(' ', at);
        if (end == std::string::npos) end = label.size();
        const std::string kv = label.substr(at, end - at);
        const size_t eq = kv.find('='), dot = kv.rfind('.', eq);
        out += " " + (dot == std::string::npos ? kv : kv.substr(dot + 1));
        at = end + 1;
    }
    return out;
}

Result<Config> sweep_base_config(const Sweep& sw, const std::string& sweep_dir, const std::string& presets_dir) {
    namespace fs = std::filesystem;
    Result<Config> base = Status::error("");
    if (!sw.config_path.empty()) {
        fs::path p = sw.config_path;
        if (p.is_relative() && !sweep_dir.empty() && fs::exists(fs::path(sweep_dir) / p)) p = fs::path(sweep_dir) / p;
        base = config_load(p.string());
    } else {
        base = preset_load(sw.preset);
        const fs::path mine = fs::path(presets_dir) / (sw.preset + ".json");
        if (!base && !presets_dir.empty() && fs::exists(mine)) base = config_load(mine.string());  // one of the user's presets
    }
    if (!base) return Status::error("sweep " + sw.name + ": " + base.status.msg);
    return base;
}

}  // namespace rl
