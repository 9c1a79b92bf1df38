// The tiny random Hugging Face checkpoints of scripts/hf_tiny_models.py, for the core tests that open
// model folders: each case made on first use, in a folder removed when the test binary exits (ctest
// runs each test in a process of its own, so each makes only the cases it reads). Needs PyTorch (CI
// installs it): without it these tests fail, they do not skip.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "subprocess.h"

namespace rl::test {

struct TempDir {
    std::filesystem::path path;
    ~TempDir() { std::filesystem::remove_all(path); }
};

inline std::filesystem::path hf_tiny_case(const std::string& name) {
    namespace fs = std::filesystem;
    static const TempDir root{fs::temp_directory_path() / ("routelab_hf_tiny_" + std::to_string(::getpid()))};
    const fs::path d = root.path / name;
    if (!fs::exists(d / "expected.json")) {
        const std::string cmd = shell_quoted(python()) + " " +
                                shell_quoted(std::string(ROUTELAB_SOURCE_DIR) + "/scripts/hf_tiny_models.py") + " " +
                                shell_quoted(root.path.string()) + " --only " + name;
        const Captured r = run_captured(cmd);
        EXPECT_EQ(r.code, 0) << cmd << "\n" << r.out << "\n(scripts/setup.sh --with-torch installs python3-torch)";
    }
    return d;
}

}  // namespace rl::test
