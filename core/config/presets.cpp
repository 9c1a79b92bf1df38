#include "config/presets.h"

#include "util/assets.h"

namespace rl {

std::vector<std::string> preset_names() { return asset_names("preset"); }

Result<Config> preset_load(const std::string& name) {
    const std::string text = asset_text("preset", name);
    if (text.empty()) {
        std::string known;
        for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
        return Status::error("unknown preset '" + name + "' (known: " + known + ")");
    }
    auto cfg = config_from_json(text);
    if (!cfg) return Status::error("preset '" + name + "': " + cfg.status.msg);
    if (Status s = config_validate(*cfg); !s) return Status::error("preset '" + name + "': " + s.msg);
    return cfg;
}

}  // namespace rl
