// Files from assets/ compiled into the core (scripts/embed_assets.cmake). Lowest layer: the
// presets (config) and the corpus (train) both read from it.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace rl {

struct EmbeddedAsset {
    const char* kind;  // "corpus" or "preset"
    const char* name;  // file name without extension
    const char* data;
    size_t size;
};
extern const EmbeddedAsset k_embedded_assets[];  // terminated by kind == nullptr

// The text of an embedded asset, or empty when there is none of that kind and name.
std::string asset_text(const std::string& kind, const std::string& name);
std::vector<std::string> asset_names(const std::string& kind);

}  // namespace rl
