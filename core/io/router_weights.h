// The routers of a model tuned by routelab-cli tune-router (train/router_tune.h), in a file of their own:
// a safetensors file of the router tensors under the lab's names ("layers.3.moe.router"), with
// "routelab": "router weights" in its metadata. probe, eval and analyse put them back with
// --router-weights F; every other weight still comes from the model.
#pragma once
#include <string>

#include "model/model.h"
#include "util/status.h"

namespace rl {

Status router_weights_save(const Model& m, const std::string& path);
// Refused in one line (m untouched) when the file is not such a file, or its tensors are not m's routers
// (a name m lacks, another shape, a router of m missing).
Status router_weights_apply(Model& m, const std::string& path);

}  // namespace rl
