// Presets: the JSON configs in assets/presets, compiled in.
#pragma once
#include <string>
#include <vector>

#include "config/config.h"

namespace rl {

std::vector<std::string> preset_names();
// Parses and validates; an unknown name lists the known ones.
Result<Config> preset_load(const std::string& name);

}  // namespace rl
