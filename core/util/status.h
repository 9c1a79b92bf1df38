// Status / Result: how the core reports anything a user can cause (bad config, corpus,
// checkpoint, disk). The message says what went wrong and what to do; the core never throws
// across its public API and never exits.
#pragma once
#include <string>
#include <utility>
#include <optional>

namespace rl {

struct Status {
    bool ok_ = true;
    std::string msg;
    static Status ok() { return {}; }
    static Status error(std::string m) { return Status{false, std::move(m)}; }
    explicit operator bool() const { return ok_; }
    bool is_ok() const { return ok_; }
};

template <class T>
struct Result {
    std::optional<T> value;
    Status status;
    Result(T v) : value(std::move(v)) {}
    Result(Status s) : status(std::move(s)) {}
    bool is_ok() const { return value.has_value(); }
    explicit operator bool() const { return is_ok(); }
    T& operator*() { return *value; }
    const T& operator*() const { return *value; }
    T* operator->() { return &*value; }
    const T* operator->() const { return &*value; }
};

}  // namespace rl
