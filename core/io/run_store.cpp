#include "io/run_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <functional>

#include <nlohmann/json.hpp>

#include "util/json_leaves.h"

namespace rl {

struct RunStoreDb {
    sqlite3* h = nullptr;
    std::string path;
    ~RunStoreDb() {
        if (h) sqlite3_close(h);
    }
};

namespace {

constexpr const char* k_format = "routelab-runs-1";

Status db_error(const RunStoreDb& d, const char* what) {
    return Status::error(std::string("run store ") + d.path + ": " + what + " failed: " + sqlite3_errmsg(d.h) +
                         " (check the disk has space and the folder is writable; the run itself is unaffected)");
}

Status exec(RunStoreDb& d, const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(d.h, sql, nullptr, nullptr, &err) != SQLITE_OK) {
        std::string m = err ? err : "?";
        sqlite3_free(err);
        return Status::error("run store " + d.path + ": " + m);
    }
    return Status::ok();
}

// COMMIT, and when it fails (disk full, another process holds the lock) roll back, so the connection
// is not left inside a transaction where every later write would be lost at close.
Status commit(RunStoreDb& d) {
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

std::string now_iso() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char b[32];
    std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return b;
}

std::string text_col(sqlite3_stmt* s, int i) {
    const unsigned char* t = sqlite3_column_text(s, i);
    return t ? reinterpret_cast<const char*>(t) : "";
}

}  // namespace

CurvePoint curve_point(const StepStats& s) {
    CurvePoint p{s.step, s.loss, s.ce, s.moh_balance, s.moe_aux, s.zloss, s.lr, s.grad_norm, s.tok_per_s};
    int nh = 0, ne = 0;
    for (int l = 0; l < s.n_layers; l++) {
        const LayerRouteStats& L = s.layers[l];
        if (L.n_routed_heads) p.head_cv += L.head_cv, nh++;
        if (L.n_experts) p.load_cv += L.load_cv, p.dropped += L.dropped_frac, p.entropy += L.router_entropy, ne++;
    }
    if (nh) p.head_cv /= nh;
    if (ne) p.load_cv /= ne, p.dropped /= ne, p.entropy /= ne;
    return p;
}

namespace {

// Every stored curve column after `step`, once: the CSV header, the plot picker, the table schema,
// the INSERT and the SELECT are all built from this list.
struct CurveColumn {
    const char* name;
    float CurvePoint::*field;
};
const CurveColumn k_curve_columns[] = {
    {"loss", &CurvePoint::loss},       {"ce", &CurvePoint::ce},           {"moh_balance", &CurvePoint::moh_balance},
    {"moe_aux", &CurvePoint::moe_aux}, {"zloss", &CurvePoint::zloss},     {"lr", &CurvePoint::lr},
    {"grad_norm", &CurvePoint::grad_norm}, {"tok_per_s", &CurvePoint::tok_per_s}, {"head_cv", &CurvePoint::head_cv},
    {"load_cv", &CurvePoint::load_cv}, {"dropped", &CurvePoint::dropped}, {"entropy", &CurvePoint::entropy},
};
constexpr int k_n_curve_values = sizeof k_curve_columns / sizeof k_curve_columns[0];

// CREATE TABLE curves(run ..., step INTEGER, loss REAL, ..., PRIMARY KEY(run, step))
std::string curves_schema() {
    std::string sql = "CREATE TABLE curves(run INTEGER REFERENCES runs(id) ON DELETE CASCADE, step INTEGER";
    for (const CurveColumn& c : k_curve_columns) sql += std::string(", ") + c.name + " REAL";
    return sql + ", PRIMARY KEY(run, step));";
}

// INSERT OR REPLACE INTO curves VALUES(?,?,...): run, step, then one per column.
std::string curves_insert() {
    std::string sql = "INSERT OR REPLACE INTO curves VALUES(?,?";
    for (int c = 0; c < k_n_curve_values; c++) sql += ",?";
    return sql + ")";
}

}  // namespace

const std::vector<std::string>& curve_columns() {
    static const std::vector<std::string> c = [] {
        std::vector<std::string> v = {"step"};
        for (const CurveColumn& col : k_curve_columns) v.push_back(col.name);
        return v;
    }();
    return c;
}

float curve_value(const CurvePoint& p, int c) {
    if (c == 0) return (float)p.step;
    return c > 0 && c <= k_n_curve_values ? p.*k_curve_columns[c - 1].field : 0.f;
}

Result<RunStore> run_store_open(const std::string& path) {
    auto d = std::make_shared<RunStoreDb>();
    d->path = path;
    if (sqlite3_open_v2(path.c_str(), &d->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK)
        return Status::error("cannot open run store " + path + ": " + (d->h ? sqlite3_errmsg(d->h) : "out of memory") +
                             " (choose a writable workspace folder)");
    sqlite3_busy_timeout(d->h, 2000);
    // Is it ours? An empty file is a new store; any other database without our format row is refused.
    int tables = -1;
    {
        Stmt q(*d, "SELECT count(*) FROM sqlite_master");
        if (!q || sqlite3_step(q.s) != SQLITE_ROW)
            return Status::error("run store " + path + " is not a SQLite database (" + sqlite3_errmsg(d->h) +
                                 "); move it away or pick another workspace");
        tables = sqlite3_column_int(q.s, 0);
    }
    if (tables > 0) {
        Stmt q(*d, "SELECT value FROM meta WHERE key='format'");
        if (!q || sqlite3_step(q.s) != SQLITE_ROW || text_col(q.s, 0) != k_format)
            return Status::error("run store " + path + " is a SQLite database but not a RouteLab run store; "
                                 "move it away or pick another workspace");
        return RunStore{d};
    }
    const std::string create = std::string("BEGIN;"
                                           "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
                                           "CREATE TABLE runs(id INTEGER PRIMARY KEY, name TEXT, created TEXT, config TEXT,"
                                           " steps INTEGER DEFAULT 0, final_loss REAL DEFAULT 0, val_loss REAL DEFAULT -1,"
                                           " checkpoint TEXT DEFAULT '');") +
                               curves_schema() + "INSERT INTO meta VALUES('format','" + k_format + "');COMMIT;";
    Status s = exec(*d, create.c_str());
    if (!s) return s;
    return RunStore{d};
}

Result<int64_t> run_store_begin(RunStore& s, const std::string& name, const std::string& config_json) {
    RunStoreDb& d = *s.db;
    Stmt q(d, "INSERT INTO runs(name, created, config) VALUES(?,?,?)");
    const std::string created = now_iso();
    if (!q) return db_error(d, "adding a run");
    sqlite3_bind_text(q.s, 1, name.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q.s, 2, created.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q.s, 3, config_json.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(q.s) != SQLITE_DONE) return db_error(d, "adding a run");
    return (int64_t)sqlite3_last_insert_rowid(d.h);
}

Status run_store_append(RunStore& s, int64_t run, const std::vector<CurvePoint>& points) {
    if (points.empty()) return Status::ok();
    RunStoreDb& d = *s.db;
    if (Status b = exec(d, "BEGIN"); !b) return b;
    {
        Stmt q(d, curves_insert().c_str());
        if (!q) {
            Status e = db_error(d, "storing curves");  // the message before ROLLBACK resets it
            exec(d, "ROLLBACK");
            return e;
        }
        for (const CurvePoint& p : points) {
            sqlite3_reset(q.s);
            sqlite3_bind_int64(q.s, 1, run);
            sqlite3_bind_int(q.s, 2, p.step);
            for (int c = 0; c < k_n_curve_values; c++) sqlite3_bind_double(q.s, c + 3, p.*k_curve_columns[c].field);
            if (sqlite3_step(q.s) != SQLITE_DONE) {
                Status e = db_error(d, "storing curves");
                exec(d, "ROLLBACK");
                return e;
            }
        }
    }
    Stmt u(d, "UPDATE runs SET steps=?, final_loss=? WHERE id=?");
    sqlite3_bind_int(u.s, 1, points.back().step);
    sqlite3_bind_double(u.s, 2, points.back().loss);
    sqlite3_bind_int64(u.s, 3, run);
    if (sqlite3_step(u.s) != SQLITE_DONE) {
        Status e = db_error(d, "storing curves");
        exec(d, "ROLLBACK");
        return e;
    }
    return commit(d);
}

namespace {
Status update_run(RunStore& s, const char* sql, int64_t run, const std::function<void(sqlite3_stmt*)>& bind) {
    RunStoreDb& d = *s.db;
    Stmt q(d, sql);
    if (!q) return db_error(d, "updating a run");
    bind(q.s);
    sqlite3_bind_int64(q.s, sqlite3_bind_parameter_count(q.s), run);  // the run id is always the last parameter
    if (sqlite3_step(q.s) != SQLITE_DONE) return db_error(d, "updating a run");
    return Status::ok();
}
}  // namespace

Status run_store_finish(RunStore& s, int64_t run, float val_loss) {
    return update_run(s, "UPDATE runs SET val_loss=? WHERE id=?", run, [&](sqlite3_stmt* q) { sqlite3_bind_double(q, 1, val_loss); });
}

Status run_store_set_checkpoint(RunStore& s, int64_t run, const std::string& path) {
    return update_run(s, "UPDATE runs SET checkpoint=? WHERE id=?", run,
                      [&](sqlite3_stmt* q) { sqlite3_bind_text(q, 1, path.c_str(), -1, SQLITE_TRANSIENT); });
}

Status run_store_delete(RunStore& s, int64_t run) {
    RunStoreDb& d = *s.db;
    if (Status b = exec(d, "BEGIN"); !b) return b;
    for (const char* sql : {"DELETE FROM curves WHERE run=?", "DELETE FROM runs WHERE id=?"}) {
        Stmt q(d, sql);
        if (!q || sqlite3_bind_int64(q.s, 1, run) != SQLITE_OK || sqlite3_step(q.s) != SQLITE_DONE) {
            Status e = db_error(d, "deleting a run");
            exec(d, "ROLLBACK");
            return e;
        }
    }
    return commit(d);
}

Result<std::vector<RunRecord>> run_store_list(RunStore& s) {
    RunStoreDb& d = *s.db;
    Stmt q(d, "SELECT id, name, created, config, steps, final_loss, val_loss, checkpoint FROM runs ORDER BY id DESC");
    if (!q) return db_error(d, "listing runs");
    std::vector<RunRecord> out;
    int rc;
    while ((rc = sqlite3_step(q.s)) == SQLITE_ROW) {
        RunRecord r;
        r.id = sqlite3_column_int64(q.s, 0);
        r.name = text_col(q.s, 1);
        r.created = text_col(q.s, 2);
        r.config_json = text_col(q.s, 3);
        r.steps = sqlite3_column_int(q.s, 4);
        r.final_loss = (float)sqlite3_column_double(q.s, 5);
        r.val_loss = (float)sqlite3_column_double(q.s, 6);
        r.checkpoint = text_col(q.s, 7);
        out.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) return db_error(d, "listing runs");
    return out;
}

Result<std::vector<CurvePoint>> run_store_curve(RunStore& s, int64_t run) {
    RunStoreDb& d = *s.db;
    Stmt q(d, "SELECT * FROM curves WHERE run=? ORDER BY step");
    if (!q) return db_error(d, "reading a curve");
    sqlite3_bind_int64(q.s, 1, run);
    std::vector<CurvePoint> out;
    int rc;
    while ((rc = sqlite3_step(q.s)) == SQLITE_ROW) {
        CurvePoint p;  // columns: run, step, then k_curve_columns in order
        p.step = sqlite3_column_int(q.s, 1);
        for (int c = 0; c < k_n_curve_values; c++) p.*k_curve_columns[c].field = (float)sqlite3_column_double(q.s, c + 2);
        out.push_back(p);
    }
    if (rc != SQLITE_DONE) return db_error(d, "reading a curve");
    return out;
}

std::string curve_to_csv(const std::vector<CurvePoint>& points) {
    std::string out;
    const auto& cols = curve_columns();
    for (size_t c = 0; c < cols.size(); c++) {
        if (c) out += ',';
        out += cols[c];
    }
    out += '\n';
    char b[32];
    for (const CurvePoint& p : points) {
        out += std::to_string(p.step);
        for (int c = 1; c < (int)cols.size(); c++) {
            std::snprintf(b, sizeof b, ",%.7g", curve_value(p, c));
            out += b;
        }
        out += '\n';
    }
    return out;
}


std::vector<ConfigDiff> config_diff(const std::string& json_a, const std::string& json_b) {
    std::vector<std::pair<std::string, nlohmann::json>> fa, fb;
    const nlohmann::json ja = nlohmann::json::parse(json_a, nullptr, false), jb = nlohmann::json::parse(json_b, nullptr, false);
    if (ja.is_object()) json_leaves(ja, fa);
    if (jb.is_object()) json_leaves(jb, fb);
    auto by_key = [](const auto& x, const auto& y) { return x.first < y.first; };
    std::sort(fa.begin(), fa.end(), by_key);  // "a.b" and "a-b" do not come out of the walk in byte order
    std::sort(fb.begin(), fb.end(), by_key);
    std::vector<ConfigDiff> out;
    size_t i = 0, k = 0;
    while (i < fa.size() || k < fb.size()) {
        if (k == fb.size() || (i < fa.size() && fa[i].first < fb[k].first)) {
            out.push_back({fa[i].first, fa[i].second.dump(), "(absent)"});
            i++;
        } else if (i == fa.size() || fb[k].first < fa[i].first) {
            out.push_back({fb[k].first, "(absent)", fb[k].second.dump()});
            k++;
        } else {
            if (fa[i].second != fb[k].second) out.push_back({fa[i].first, fa[i].second.dump(), fb[k].second.dump()});
            i++, k++;
        }
    }
    return out;
}

}  // namespace rl
