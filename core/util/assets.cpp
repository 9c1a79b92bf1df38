#include "util/assets.h"

#include <cstring>

namespace rl {

std::string asset_text(const std::string& kind, const std::string& name) {
    for (const EmbeddedAsset* a = k_embedded_assets; a->kind; a++)
        if (kind == a->kind && name == a->name) return std::string(a->data, a->size);
    return {};
}

std::vector<std::string> asset_names(const std::string& kind) {
    std::vector<std::string> out;
    for (const EmbeddedAsset* a = k_embedded_assets; a->kind; a++)
        if (kind == a->kind) out.push_back(a->name);
    return out;
}

}  // namespace rl
