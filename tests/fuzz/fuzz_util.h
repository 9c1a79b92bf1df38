// Shared by the fuzz targets: bytes to a file the loaders can open, and a hard stop when a loader
// breaks its own contract (an error without a message), which libFuzzer reports like a crash.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

namespace rl_fuzz {

// A per-process scratch file (libFuzzer's -fork / -jobs run several processes at once).
inline std::string temp_path(const std::string& name) {
    return (std::filesystem::temp_directory_path() / ("routelab_fuzz_" + std::to_string(::getpid()) + "_" + name)).string();
}

inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

inline void require(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "fuzz: contract broken: %s\n", what);
        std::abort();
    }
}

}  // namespace rl_fuzz
