#include "tensor/arena.h"

#include <cassert>
#include <cstring>

namespace rl {

void tensor_zero(float* p, size_t n) { std::memset(p, 0, n * sizeof(float)); }

void tensor_scale(float* x, float s, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

size_t Layout::add(const std::string& name, std::vector<int> shape, Init init, bool decay, float init_scale) {
    assert(index_.find(name) == index_.end() && "duplicate tensor name");
    TensorSpec s;
    s.name = name;
    s.numel = 1;
    for (int d : shape) s.numel *= (size_t)d;
    s.shape = std::move(shape);
    s.offset = total_;
    s.init = init;
    s.decay = decay;
    s.init_scale = init_scale;
    total_ += (s.numel + 15) / 16 * 16;
    index_[s.name] = specs_.size();
    specs_.push_back(std::move(s));
    return specs_.back().offset;
}

const TensorSpec* Layout::find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &specs_[it->second];
}

}  // namespace rl
