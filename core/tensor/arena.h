// Arenas: one float buffer per role (params, grads, Adam m and v, activations, backward scratch),
// allocated once per (config, B, T), with named views laid out by a Layout. Our code allocates
// nothing inside a training step (tests/alloc proves it for every preset family).
#pragma once
#include <cstddef>
#include <new>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace rl {

// 64-byte aligned storage (one cache line, one AVX-512 vector): vectorised kernels then split a row
// the same way wherever the buffer was allocated, so two copies of a computation round alike.
template <class T>
struct AlignedAllocator {
    using value_type = T;
    static constexpr std::align_val_t k_align{64};
    AlignedAllocator() = default;
    template <class U>
    AlignedAllocator(const AlignedAllocator<U>&) {}
    T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), k_align)); }
    void deallocate(T* p, size_t) { ::operator delete(p, k_align); }
    template <class U>
    bool operator==(const AlignedAllocator<U>&) const { return true; }
};
using FloatBuffer = std::vector<float, AlignedAllocator<float>>;

enum class Init { normal, zeros, ones };

// p[0..n) = 0: the model's buffer clears, an op of their own so that a device backend clears its memory.
void tensor_zero(float* p, size_t n);
// x *= s over n floats (the Granite multipliers).
void tensor_scale(float* x, float s, size_t n);

struct TensorSpec {
    std::string name;
    std::vector<int> shape;
    size_t offset = 0;
    size_t numel = 0;
    Init init = Init::zeros;
    float init_scale = 1.f;  // multiplies the init std for Init::normal
    bool decay = false;      // AdamW weight decay applies
};

// Ordered named tensors packed into one buffer; each view starts on a 16-float (64-byte) boundary.
class Layout {
public:
    size_t add(const std::string& name, std::vector<int> shape, Init init = Init::zeros, bool decay = false,
               float init_scale = 1.f);
    const TensorSpec* find(const std::string& name) const;
    const std::vector<TensorSpec>& specs() const { return specs_; }
    size_t total() const { return total_; }

private:
    std::vector<TensorSpec> specs_;
    std::unordered_map<std::string, size_t> index_;
    size_t total_ = 0;
};

// A buffer laid out by a Layout. ptr() is null for names the layout does not have. The arena does
// not keep the layout, so both stay freely movable.
struct Arena {
    FloatBuffer data;
    // Zero-filled, on transparent huge pages when large: a model folder's 5 GB of weights then takes
    // ~2.6k page faults, not 1.3M (in a VM each 4 KiB fault cost more than the copy into it).
    void allocate(const Layout& l);
    float* ptr(const Layout& l, const std::string& name) {
        const TensorSpec* s = l.find(name);
        return s ? data.data() + s->offset : nullptr;
    }
};

// Declares each tensor once: add() puts its name, shape and init in the layout and remembers which
// view it fills; bind() points every view into an arena allocated from that layout. The views must
// not move between add() and bind() (size their containers first).
class Binder {
public:
    void add(float*& view, const std::string& name, std::vector<int> shape, Init init = Init::zeros,
             bool decay = false, float init_scale = 1.f) {
        view = nullptr;
        views_.push_back({&view, layout.add(name, std::move(shape), init, decay, init_scale)});
    }
    // Allocates the arena (zeroed) for the layout and fills every declared view.
    void bind(Arena& arena) const {
        arena.allocate(layout);
        for (const auto& [view, offset] : views_) *view = arena.data.data() + offset;
    }
    // bind() without the tensors named in `elsewhere` (held outside the arena: their views stay null);
    // returns the layout of what the arena does hold.
    Layout bind_except(Arena& arena, const std::set<std::string>& elsewhere) const {
        Layout held;
        std::vector<std::pair<float**, size_t>> views;
        for (size_t i = 0; i < views_.size(); i++) {
            const TensorSpec& s = layout.specs()[i];
            if (elsewhere.count(s.name)) continue;
            views.push_back({views_[i].first, held.add(s.name, s.shape, s.init, s.decay, s.init_scale)});
        }
        arena.allocate(held);
        for (const auto& [view, offset] : views) *view = arena.data.data() + offset;
        return held;
    }
    Layout layout;

private:
    std::vector<std::pair<float**, size_t>> views_;
};

}  // namespace rl
