#include "run_table.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <map>

#include <nlohmann/json.hpp>

#include "util/json_leaves.h"

using json = nlohmann::json;

std::string tableNumber(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.6g", v);
    return b;
}

namespace {

std::string shown(const json& v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number()) return tableNumber(v.get<double>());
    return v.dump();  // true / false / null / a list
}

// Columns before the differing keys: (header, value of a run; "" = not measured).
struct Fixed {
    const char* name;
    std::string (*value)(const rl::RunRecord&, bool heads, bool experts);
};
std::string metric(float v) { return v < 0 ? "" : tableNumber(v); }
const Fixed k_fixed[] = {
    {"id", [](const rl::RunRecord& r, bool, bool) { return std::to_string(r.id); }},
    {"name", [](const rl::RunRecord& r, bool, bool) { return r.name; }},
    {"status", [](const rl::RunRecord& r, bool, bool) { return std::string(rl::run_status_name(r.status)); }},
    {"steps", [](const rl::RunRecord& r, bool, bool) { return std::to_string(r.steps); }},
    {"final_loss", [](const rl::RunRecord& r, bool, bool) { return r.steps > 0 ? tableNumber(r.final_loss) : std::string(); }},
    {"val_loss", [](const rl::RunRecord& r, bool, bool) { return metric(r.val_loss); }},
    {"load_cv", [](const rl::RunRecord& r, bool, bool e) { return e ? metric(r.load_cv) : std::string(); }},
    {"head_cv", [](const rl::RunRecord& r, bool h, bool) { return h ? metric(r.head_cv) : std::string(); }},
    {"dropped", [](const rl::RunRecord& r, bool, bool e) { return e ? metric(r.dropped) : std::string(); }},
    {"tok_per_s", [](const rl::RunRecord& r, bool, bool) { return metric(r.tok_per_s); }},
};

std::string csvCell(const std::string& s) {
    if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
}

std::string mdCell(const std::string& s) {
    if (s.empty()) return "-";
    std::string o;
    for (char c : s) o += c == '|' ? std::string("\\|") : c == '\n' ? std::string(" ") : std::string(1, c);
    return o;
}

}  // namespace

RunTable runTable(const std::vector<rl::RunRecord>& runs) {
    RunTable t;
    std::vector<std::map<std::string, json>> leaves(runs.size());
    std::map<std::string, int> present;  // key -> runs that have it
    t.routedHeads.assign(runs.size(), false);
    t.routedExperts.assign(runs.size(), false);
    for (size_t i = 0; i < runs.size(); i++) {
        const json j = json::parse(runs[i].config_json, nullptr, false);
        if (!j.is_object()) continue;
        // The config's own names (heads.kind "moh", moe.kind "dense"); a key left out keeps the default.
        const json heads = j.value(json::json_pointer("/model/attention/heads/kind"), json("all_heads"));
        const json moe = j.value(json::json_pointer("/model/moe/kind"), json("dense"));
        t.routedHeads[i] = heads == "moh";
        t.routedExperts[i] = moe != "dense";
        std::vector<std::pair<std::string, json>> l;
        rl::json_leaves(j, l);
        for (auto& [k, v] : l) {
            if (k == "name" || k == "description") continue;
            present[k]++;
            leaves[i][k] = std::move(v);
        }
    }
    // A run stored without a config (the CLI stores "{}" for a sweep point whose config would not
    // parse) has no say in which keys differ: it would make every key a column.
    int withConfig = 0;
    for (const auto& l : leaves) withConfig += !l.empty();
    for (const auto& [k, n] : present) {  // std::map: key order
        bool differs = n != withConfig, numeric = true;
        const json* first = nullptr;
        for (const auto& l : leaves) {
            auto it = l.find(k);
            if (it == l.end()) continue;
            numeric = numeric && it->second.is_number();
            if (!first) first = &it->second;
            else if (*first != it->second) differs = true;
        }
        if (!differs) continue;
        t.keys.push_back(k);
        t.numeric.push_back(numeric);
    }
    t.text.assign(runs.size(), std::vector<std::string>(t.keys.size()));
    t.number.assign(runs.size(), std::vector<double>(t.keys.size(), NAN));
    for (size_t i = 0; i < runs.size(); i++)
        for (size_t k = 0; k < t.keys.size(); k++) {
            auto it = leaves[i].find(t.keys[k]);
            if (it == leaves[i].end()) continue;
            t.text[i][k] = shown(it->second);
            if (it->second.is_number()) t.number[i][k] = it->second.get<double>();
        }
    return t;
}

void dropTableKey(RunTable& t, const std::string& key) {
    const auto it = std::find(t.keys.begin(), t.keys.end(), key);
    if (it == t.keys.end()) return;
    const size_t k = it - t.keys.begin();
    t.keys.erase(it);
    t.numeric.erase(t.numeric.begin() + k);
    for (auto& row : t.text) row.erase(row.begin() + k);
    for (auto& row : t.number) row.erase(row.begin() + k);
}

// Appends piece by piece: g++ 12 warns falsely (-Wrestrict) on "," + std::string temporaries.
std::string comparisonCsv(const std::vector<rl::RunRecord>& runs) {
    const RunTable t = runTable(runs);
    std::string out;
    auto cell = [&out](const std::string& v, bool first) {
        if (!first) out += ',';
        out += csvCell(v);
    };
    for (const Fixed& f : k_fixed) cell(f.name, &f == k_fixed);
    for (const auto& k : t.keys) cell(k, false);
    out += '\n';
    for (size_t i = 0; i < runs.size(); i++) {
        for (const Fixed& f : k_fixed) cell(f.value(runs[i], t.routedHeads[i], t.routedExperts[i]), &f == k_fixed);
        for (size_t k = 0; k < t.keys.size(); k++) cell(t.text[i][k], false);
        out += '\n';
    }
    return out;
}

std::string comparisonMarkdown(const std::vector<rl::RunRecord>& runs) {
    const RunTable t = runTable(runs);
    std::string out = "|";
    auto cell = [&out](const std::string& v) {
        out += ' ';
        out += mdCell(v);
        out += " |";
    };
    for (const Fixed& f : k_fixed) cell(f.name);
    for (const auto& k : t.keys) cell(k);
    out += "\n|";
    for (size_t c = 0; c < std::size(k_fixed) + t.keys.size(); c++) out += " --- |";
    out += '\n';
    for (size_t i = 0; i < runs.size(); i++) {
        out += '|';
        for (const Fixed& f : k_fixed) cell(f.value(runs[i], t.routedHeads[i], t.routedExperts[i]));
        for (size_t k = 0; k < t.keys.size(); k++) cell(t.text[i][k]);
        out += '\n';
    }
    return out;
}
