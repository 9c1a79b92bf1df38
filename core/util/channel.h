// Lock-free channels between the trainer thread and the GUI thread (docs/architecture.md §2).
//   SpscRing     - one producer, one consumer, fixed capacity; push never waits (a full ring drops
//                  the item and counts it), for StepStats and live commands.
//   TripleBuffer - the writer always has a free slot, the reader always gets the newest published
//                  value; an atomic index swap publishes (heavy snapshots: probes, specialization).
#pragma once
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace rl {

template <class T, size_t Capacity>
class SpscRing {
    static_assert((Capacity & (Capacity - 1)) == 0, "capacity must be a power of two");

public:
    // Producer side. Returns false (and counts a drop) when the ring is full.
    bool push(const T& v) {
        const size_t head = head_.load(std::memory_order_relaxed);
        if (head - tail_.load(std::memory_order_acquire) == Capacity) {
            dropped_.fetch_add(1, std::memory_order_relaxed);
            return false;
        }
        slots_[head & (Capacity - 1)] = v;
        head_.store(head + 1, std::memory_order_release);
        return true;
    }
    // Consumer side. Returns false when empty.
    bool pop(T& out) {
        const size_t tail = tail_.load(std::memory_order_relaxed);
        if (tail == head_.load(std::memory_order_acquire)) return false;
        out = slots_[tail & (Capacity - 1)];
        tail_.store(tail + 1, std::memory_order_release);
        return true;
    }
    uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

private:
    std::array<T, Capacity> slots_{};
    alignas(64) std::atomic<size_t> head_{0};
    alignas(64) std::atomic<size_t> tail_{0};
    std::atomic<uint64_t> dropped_{0};
};

template <class T>
class TripleBuffer {
public:
    // Writer: fill write_slot(), then publish(). The writer never waits for the reader.
    T& write_slot() { return slots_[write_]; }
    void publish() {
        // Hand the written slot over as the newest; take back whichever slot was "newest" before.
        const int prev = middle_.exchange(write_ | k_fresh, std::memory_order_acq_rel);
        write_ = prev & k_index;
    }
    // Reader: when something newer was published, swap it in and return true; read_slot() is then
    // the newest value and stays valid until the next acquire().
    bool acquire() {
        if (!(middle_.load(std::memory_order_relaxed) & k_fresh)) return false;
        const int prev = middle_.exchange(read_, std::memory_order_acq_rel);
        read_ = prev & k_index;
        return true;
    }
    const T& read_slot() const { return slots_[read_]; }

private:
    static constexpr int k_fresh = 4, k_index = 3;
    std::array<T, 3> slots_{};
    int write_ = 0;                       // writer-owned
    int read_ = 1;                        // reader-owned
    std::atomic<int> middle_{2};          // the shared slot, with the "fresh" bit
};

}  // namespace rl
