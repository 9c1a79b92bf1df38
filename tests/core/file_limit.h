// A full disk for tests, root included (permission bits do not stop root): the write runs in a forked
// child whose files may not grow past `limit` bytes (RLIMIT_FSIZE), with SIGXFSZ ignored so that
// write() fails with EFBIG instead of killing the child. The parent gets the child's Status back.
#pragma once
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>

#include "util/status.h"

struct LimitedWrite {
    bool exited = false;  // the child ran to its end (not killed, not hung)
    bool ok = false;      // the Status it returned
    std::string msg;      // its message
};

// The child only writes: call no OpenMP or thread-pool code in fn (fork keeps one thread).
inline LimitedWrite write_with_file_limit(rlim_t limit, const std::function<rl::Status()>& fn) {
    LimitedWrite out;
    int p[2];
    if (::pipe(p) != 0) return out;
    const pid_t pid = ::fork();
    if (pid < 0) return out;
    if (pid == 0) {
        ::close(p[0]);
        ::alarm(120);  // a hung write fails the test instead of the whole run
        ::signal(SIGXFSZ, SIG_IGN);
        rlimit r{};
        ::getrlimit(RLIMIT_FSIZE, &r);
        r.rlim_cur = limit;  // the soft limit only: lowering it needs no privilege
        if (::setrlimit(RLIMIT_FSIZE, &r) != 0) ::_exit(3);
        const rl::Status s = fn();
        const std::string m = s.msg;  // a pipe is not a regular file: the limit does not apply
        for (size_t at = 0; at < m.size();) {
            const ssize_t n = ::write(p[1], m.data() + at, m.size() - at);
            if (n <= 0) break;
            at += (size_t)n;
        }
        ::_exit(s.is_ok() ? 0 : 1);
    }
    ::close(p[1]);
    char buf[4096];
    for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;) out.msg.append(buf, (size_t)n);
    ::close(p[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    out.exited = WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 1);
    out.ok = out.exited && WEXITSTATUS(status) == 0;
    return out;
}
