#include "config/sweep.h"

#include <cmath>
#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "config/presets.h"

namespace rl {

namespace {

using json = nlohmann::ordered_json;  // grid keys keep the order the user wrote

Status bad(const std::string& where, const std::string& what) { return Status::error("sweep: '" + where + "' " + what); }

std::string assign(const std::string& key, const json& v) { return key + "=" + v.dump(); }

// One draw from a range {"min", "max", "log", "int"}.
json draw(const json& r, std::mt19937_64& g) {
    const double lo = r["min"].get<double>(), hi = r["max"].get<double>();
    const bool lg = r.value("log", false), integer = r.value("int", false);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    double v = lg ? std::exp(std::log(lo) + u(g) * (std::log(hi) - std::log(lo))) : lo + u(g) * (hi - lo);
    if (integer) return (long long)std::llround(v);
    return v;
}

}  // namespace

Result<Sweep> sweep_parse(const std::string& text, const std::string& default_name) {
    const json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Status::error("sweep: the file is not a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it)
        if (it.key() != "name" && it.key() != "preset" && it.key() != "config" && it.key() != "set" &&
            it.key() != "grid" && it.key() != "random" && it.key() != "seed")
            return bad(it.key(), "is not a sweep key (allowed: name, preset, config, set, grid, random, seed)");
    Sweep s;
    s.name = j.contains("name") && j["name"].is_string() ? j["name"].get<std::string>() : default_name;
    if (j.contains("preset") && j.contains("config")) return Status::error("sweep: give 'preset' or 'config', not both");
    if (j.contains("preset") && !j["preset"].is_string()) return bad("preset", "must be a preset name");
    if (j.contains("config") && !j["config"].is_string()) return bad("config", "must be a path");
    s.preset = j.value("preset", std::string(j.contains("config") ? "" : "default"));
    s.config_path = j.value("config", std::string());
    std::vector<std::string> base;
    if (j.contains("set")) {
        if (!j["set"].is_object()) return bad("set", "must be an object of key: value");
        for (auto it = j["set"].begin(); it != j["set"].end(); ++it) base.push_back(assign(it.key(), it.value()));
    }
    const json grid = j.contains("grid") ? j["grid"] : json::object();
    if (!grid.is_object()) return bad("grid", "must be an object of key: [values] or key: {min, max}");
    const bool random = j.contains("random");
    if (random && (!j["random"].is_number_integer() || j["random"].get<long long>() < 1 || j["random"].get<long long>() > 10000))
        return bad("random", "must be a number of points in 1..10000");
    std::vector<std::string> keys;
    for (auto it = grid.begin(); it != grid.end(); ++it) {
        const json& v = it.value();
        if (v.is_array()) {
            if (v.empty()) return bad("grid." + it.key(), "is an empty list");
        } else if (v.is_object()) {
            if (!random) return bad("grid." + it.key(), "is a range; ranges need \"random\": N (a grid takes lists)");
            if (!v.contains("min") || !v.contains("max") || !v["min"].is_number() || !v["max"].is_number())
                return bad("grid." + it.key(), "needs numeric \"min\" and \"max\"");
            if (v["min"].get<double>() > v["max"].get<double>()) return bad("grid." + it.key(), "has min > max");
            if (v.value("log", false) && v["min"].get<double>() <= 0) return bad("grid." + it.key(), "needs min > 0 with \"log\"");
        } else {
            return bad("grid." + it.key(), "must be a list of values or a {min, max} range");
        }
        keys.push_back(it.key());
    }
    auto point = [&](const std::vector<json>& values) {
        SweepPoint p;
        p.sets = base;
        for (size_t k = 0; k < keys.size(); k++) {
            p.sets.push_back(assign(keys[k], values[k]));
            p.label += (k ? " " : "") + assign(keys[k], values[k]);
        }
        s.points.push_back(std::move(p));
    };
    if (random) {
        std::mt19937_64 g(j.value("seed", 1ull));
        for (long long i = 0; i < j["random"].get<long long>(); i++) {
            std::vector<json> values;
            for (const auto& k : keys) {
                const json& v = grid[k];
                if (v.is_array()) values.push_back(v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(g)]);
                else values.push_back(draw(v, g));
            }
            point(values);
        }
        return s;
    }
    // The cartesian product, the last key changing fastest.
    std::vector<size_t> idx(keys.size(), 0);
    size_t total = 1;
    for (const auto& k : keys) total *= grid[k].size();
    if (total > 10000) return bad("grid", "has " + std::to_string(total) + " points; more than 10000 is surely a mistake");
    for (size_t n = 0; n < total; n++) {
        std::vector<json> values;
        for (size_t k = 0; k < keys.size(); k++) values.push_back(grid[keys[k]][idx[k]]);
        point(values);
        for (size_t k = keys.size(); k-- > 0;) {
            if (++idx[k] < grid[keys[k]].size()) break;
            idx[k] = 0;
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
