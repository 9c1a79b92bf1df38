// The leaves of a JSON object as ("a.b.c", value) pairs, in key order: the config form and the run
// comparison both work key by key.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace rl {

inline void json_leaves(const nlohmann::json& j, std::vector<std::pair<std::string, nlohmann::json>>& out,
                        const std::string& prefix = "") {
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string k = prefix.empty() ? it.key() : prefix + "." + it.key();
        if (it->is_object()) json_leaves(*it, out, k);
        else out.push_back({k, *it});
    }
}

}  // namespace rl
