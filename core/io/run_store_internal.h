// The run store's SQLite plumbing, shared by its files (run_store.cpp: runs and curves;
// run_store_loads.cpp: the routing loads and token sets). Not for use outside core/io.
#pragma once
#include <sqlite3.h>

#include <ctime>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "io/run_store.h"

#include "util/status.h"

namespace rl {

struct RunStoreDb {
    sqlite3* h = nullptr;
    std::string path;
    ~RunStoreDb() {
        if (h) sqlite3_close(h);
    }
};

namespace run_store_detail {

constexpr const char* k_format = "routelab-runs-1";

inline Status db_error(const RunStoreDb& d, const char* what) {
    return Status::error(std::string("run store ") + d.path + ": " + what + " failed: " + sqlite3_errmsg(d.h) +
                         " (check the disk has space and the folder is writable; the run itself is unaffected)");
}

inline Status exec(RunStoreDb& d, const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(d.h, sql, nullptr, nullptr, &err) != SQLITE_OK) {
        std::string m = err ? err : "?";
        sqlite3_free(err);
        const int code = sqlite3_errcode(d.h) & 0xff;  // a full or unwritable disk can first show at BEGIN or COMMIT
        if (code == SQLITE_FULL || code == SQLITE_IOERR || code == SQLITE_READONLY || code == SQLITE_CANTOPEN)
            m += " (check the disk has space and the folder is writable; the run itself is unaffected)";
        return Status::error("run store " + d.path + ": " + m);
    }
    return Status::ok();
}

// COMMIT, and when it fails (disk full, another process holds the lock) roll back, so the connection
// is not left inside a transaction where every later write would be lost at close.
inline Status commit(RunStoreDb& d) {
    Status s = exec(d, "COMMIT");
    if (!s && !sqlite3_get_autocommit(d.h)) exec(d, "ROLLBACK");
    return s;
}

// A prepared statement that finalizes itself.
struct Stmt {
    sqlite3_stmt* s = nullptr;
    Stmt(RunStoreDb& d, const char* sql) { sqlite3_prepare_v2(d.h, sql, -1, &s, nullptr); }
    ~Stmt() { sqlite3_finalize(s); }
    explicit operator bool() const { return s != nullptr; }
};

inline std::string now_iso() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char b[32];
    std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return b;
}

inline std::string text_col(sqlite3_stmt* s, int i) {
    const unsigned char* t = sqlite3_column_text(s, i);
    return t ? reinterpret_cast<const char*>(t) : "";
}

// Runs a query with its integer parameters bound in order (?1, ?2 ...) and calls row(q) for each
// result row; failing to prepare it or to finish stepping it is the store's error for `what`.
inline Status query_rows(RunStoreDb& d, const std::string& sql, const char* what, std::initializer_list<int64_t> args,
                         const std::function<void(sqlite3_stmt*)>& row) {
    Stmt q(d, sql.c_str());
    if (!q) return db_error(d, what);
    int i = 1;
    for (int64_t a : args) sqlite3_bind_int64(q.s, i++, a);
    int rc;
    while ((rc = sqlite3_step(q.s)) == SQLITE_ROW) row(q.s);
    return rc == SQLITE_DONE ? Status::ok() : db_error(d, what);
}

// Schema 3's tables (run_store_loads.cpp): the per-step loads and the end-of-run token sets.
extern const char* const k_loads_schema;
// The steps' loads into `loads`, inside the caller's transaction.
Status loads_insert(RunStoreDb& d, int64_t run, const std::vector<StepLoads>& loads);

}  // namespace run_store_detail
}  // namespace rl
