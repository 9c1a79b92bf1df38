// Running a command from a test and reading what it printed (the CLI, the PyTorch peers), once for
// every test file that needs it.
#pragma once
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace rl::test {

struct Captured {
    int code = -1;    // exit status; -1 when it could not start or was killed by a signal
    std::string out;  // stdout and stderr together
};

// Runs `cmd` through the shell with stderr joined to stdout.
inline Captured run_captured(const std::string& cmd) {
    Captured r;
    FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    if (!p) return r;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    const int st = pclose(p);
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

// Single-quoted for the shell, appended piecewise: "'" + std::string trips GCC 12's false -Wrestrict.
inline std::string shell_quoted(const std::string& s) {
    std::string q = "'";
    q += s;
    q += "'";
    return q;
}

// The interpreter the PyTorch checks use: $ROUTELAB_PYTHON, else Debian's (the python3 on PATH may lack torch).
inline std::string python() {
    const char* p = std::getenv("ROUTELAB_PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

inline bool torch_importable() {
    return std::system((shell_quoted(python()) + " -c 'import torch' >/dev/null 2>&1").c_str()) == 0;
}

}  // namespace rl::test
