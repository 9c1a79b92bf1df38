// The CPU backend's table: every op is the layer function of the same name.
#include "backend/ops.h"

namespace rl {

const Ops& ops_cpu() {
    static const Ops ops = [] {
        Ops o;
        o.device = "cpu";
#define ROUTELAB_OP_CPU(name) o.name = &::rl::name;
        ROUTELAB_OPS(ROUTELAB_OP_CPU)
#undef ROUTELAB_OP_CPU
        return o;
    }();
    return ops;
}

const std::vector<const char*>& ops_names() {
    static const std::vector<const char*> names = {
#define ROUTELAB_OP_NAME(name) #name,
        ROUTELAB_OPS(ROUTELAB_OP_NAME)
#undef ROUTELAB_OP_NAME
    };
    return names;
}

const void* ops_entry(const Ops& o, size_t i) {
    size_t k = 0;
    const void* found = nullptr;
#define ROUTELAB_OP_ENTRY(name) \
    if (k++ == i) found = reinterpret_cast<const void*>(o.name);
    ROUTELAB_OPS(ROUTELAB_OP_ENTRY)
#undef ROUTELAB_OP_ENTRY
    return found;
}

}  // namespace rl
