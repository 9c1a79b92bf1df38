#include "io/router_weights.h"

#include "io/safetensors.h"
#include "train/router_tune.h"

namespace rl {

Status router_weights_save(const Model& m, const std::string& path) {
    std::vector<TensorView> views;
    for (const TensorSpec& s : m.layout.specs())
        if (router_tensor(s.name))
            views.push_back({s.name, std::vector<int64_t>(s.shape.begin(), s.shape.end()), m.params.data.data() + s.offset});
    if (views.empty()) return Status::error("this model has no router weights to save");
    return safetensors_write(path, views, {{"routelab", "router weights"}});
}

Status router_weights_apply(Model& m, const std::string& path) {
    auto f = safetensors_read(path);
    if (!f) return f.status;
    const std::string what = "--router-weights '" + path + "'";
    if (f->metadata.count("routelab") == 0 || f->metadata.at("routelab") != "router weights")
        return Status::error(what + " is not a file of router weights; write one with routelab-cli tune-router --save");
    size_t routers = 0;
    for (const TensorSpec& s : m.layout.specs()) {
        if (!router_tensor(s.name)) continue;
        routers++;
        const auto it = f->tensors.find(s.name);
        if (it == f->tensors.end()) return Status::error(what + " has no '" + s.name + "': it was written for another model");
        if (it->second.shape != std::vector<int64_t>(s.shape.begin(), s.shape.end()) || it->second.data.size() != s.numel)
            return Status::error(what + ": '" + s.name + "' has another shape than the model's; it was written for another model");
    }
    if (routers != f->tensors.size()) return Status::error(what + " holds tensors this model does not have; it was written for another model");
    for (const TensorSpec& s : m.layout.specs())
        if (router_tensor(s.name)) std::copy(f->tensors.at(s.name).data.begin(), f->tensors.at(s.name).data.end(), m.params.data.data() + s.offset);
    return Status::ok();
}

}  // namespace rl
