#include "tensor/arena.h"

#include <cassert>
#include <cstdint>
#include <cstring>

#include <sys/mman.h>

namespace rl {

void tensor_zero(float* p, size_t n) { std::memset(p, 0, n * sizeof(float)); }

void tensor_scale(float* x, float s, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

void Arena::allocate(const Layout& l) {
    const size_t n = l.total(), bytes = n * sizeof(float);
    data.clear();
    data.reserve(n);  // allocated, not yet touched
#ifdef MADV_HUGEPAGE
    constexpr size_t k_huge = size_t{2} << 20;
    if (bytes >= 32 * k_huge) {  // the page-aligned interior; a refusal only costs the small pages
        const uintptr_t b = (reinterpret_cast<uintptr_t>(data.data()) + k_huge - 1) & ~(k_huge - 1);
        const uintptr_t e = (reinterpret_cast<uintptr_t>(data.data()) + bytes) & ~(k_huge - 1);
        if (e > b) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_HUGEPAGE);
    }
#endif
    data.assign(n, 0.f);
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
