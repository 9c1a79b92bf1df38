// printf into a std::string (report and lesson texts built from numbers).
#pragma once
#include <cstdarg>
#include <cstdio>
#include <string>

namespace rl {

inline std::string str_printf(const char* f, ...) __attribute__((format(printf, 1, 2)));
inline std::string str_printf(const char* f, ...) {
    char b[1024];
    va_list ap;
    va_start(ap, f);
    std::vsnprintf(b, sizeof b, f, ap);
    va_end(ap);
    return b;
}

}  // namespace rl
