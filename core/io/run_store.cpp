#include "io/run_store.h"

#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/run_store_internal.h"
#include "util/json_leaves.h"

namespace rl {

using namespace run_store_detail;

CurvePoint curve_point(const StepStats& s) {
    CurvePoint p{s.step, s.loss, s.ce, s.moh_balance, s.moe_aux, s.zloss, s.lr, s.grad_norm, s.tok_per_s};
    p.wall_s = s.wall_s;
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
    {"wall_s", &CurvePoint::wall_s},  // schema 2; a schema-1 database gets the column (0) when upgraded
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

namespace {

const char* const k_status_names[] = {"running", "finished", "interrupted", "failed", "pruned"};

// The runs table of schema 2 (schema 1 had the first eight columns).
const char* k_runs_schema =
    "CREATE TABLE runs(id INTEGER PRIMARY KEY, name TEXT, created TEXT, config TEXT, steps INTEGER DEFAULT 0,"
    " final_loss REAL DEFAULT 0, val_loss REAL DEFAULT -1, checkpoint TEXT DEFAULT '', status TEXT DEFAULT 'running',"
    " status_message TEXT DEFAULT '', ended TEXT DEFAULT '', corpus TEXT DEFAULT '', seed INTEGER DEFAULT 0,"
    " tags TEXT DEFAULT '', colour TEXT DEFAULT '', sweep TEXT DEFAULT '', owner TEXT DEFAULT '',"
    " load_cv REAL DEFAULT -1, head_cv REAL DEFAULT -1, dropped REAL DEFAULT -1, tok_per_s REAL DEFAULT -1,"
    " wall_s REAL DEFAULT 0);"
    "CREATE TABLE checkpoints(run INTEGER REFERENCES runs(id) ON DELETE CASCADE, step INTEGER, path TEXT, created TEXT);";

// Schema 1 -> 2: the status and facts columns, the checkpoint list, curve wall time. A schema-1 run
// with a validation loss had finished (the window stored it at the end); one without never reported
// an end, so it reads interrupted.
const char* k_migrate_1_to_2 =
    "ALTER TABLE runs ADD COLUMN status TEXT DEFAULT 'running';"
    "ALTER TABLE runs ADD COLUMN status_message TEXT DEFAULT '';"
    "ALTER TABLE runs ADD COLUMN ended TEXT DEFAULT '';"
    "ALTER TABLE runs ADD COLUMN corpus TEXT DEFAULT '';"
    "ALTER TABLE runs ADD COLUMN seed INTEGER DEFAULT 0;"
    "ALTER TABLE runs ADD COLUMN tags TEXT DEFAULT '';"
    "ALTER TABLE runs ADD COLUMN colour TEXT DEFAULT '';"
    "ALTER TABLE runs ADD COLUMN sweep TEXT DEFAULT '';"
    "ALTER TABLE runs ADD COLUMN owner TEXT DEFAULT '';"
    "ALTER TABLE runs ADD COLUMN load_cv REAL DEFAULT -1;"
    "ALTER TABLE runs ADD COLUMN head_cv REAL DEFAULT -1;"
    "ALTER TABLE runs ADD COLUMN dropped REAL DEFAULT -1;"
    "ALTER TABLE runs ADD COLUMN tok_per_s REAL DEFAULT -1;"
    "ALTER TABLE runs ADD COLUMN wall_s REAL DEFAULT 0;"
    "CREATE TABLE checkpoints(run INTEGER REFERENCES runs(id) ON DELETE CASCADE, step INTEGER, path TEXT, created TEXT);"
    "ALTER TABLE curves ADD COLUMN wall_s REAL DEFAULT 0;"
    "UPDATE runs SET status = CASE WHEN val_loss >= 0 THEN 'finished' ELSE 'interrupted' END,"
    " status_message = CASE WHEN val_loss >= 0 THEN '' ELSE 'stored before RouteLab kept run status; it never reported an end' END,"
    " corpus = coalesce(json_extract(config, '$.data.corpus'), ''), seed = coalesce(json_extract(config, '$.train.seed'), 0);"
    "INSERT INTO checkpoints SELECT id, steps, checkpoint, created FROM runs WHERE checkpoint <> '';";

// Means of the last 50 stored steps into the run's final-metric columns.
const char* k_final_metrics =
    "UPDATE runs SET load_cv = coalesce((SELECT avg(load_cv) FROM (SELECT load_cv FROM curves WHERE run=?1 ORDER BY step DESC LIMIT 50)), -1),"
    " head_cv = coalesce((SELECT avg(head_cv) FROM (SELECT head_cv FROM curves WHERE run=?1 ORDER BY step DESC LIMIT 50)), -1),"
    " dropped = coalesce((SELECT avg(dropped) FROM (SELECT dropped FROM curves WHERE run=?1 ORDER BY step DESC LIMIT 50)), -1),"
    " tok_per_s = coalesce((SELECT avg(tok_per_s) FROM (SELECT tok_per_s FROM curves WHERE run=?1 ORDER BY step DESC LIMIT 50)), -1)"
    " WHERE id=?1";

Status store_final_metrics(RunStoreDb& d, int64_t run) {
    Stmt q(d, k_final_metrics);
    if (!q) return db_error(d, "storing a run's final metrics");
    sqlite3_bind_int64(q.s, 1, run);
    if (sqlite3_step(q.s) != SQLITE_DONE) return db_error(d, "storing a run's final metrics");
    return Status::ok();
}

// This process as the owner of the runs it trains: host, pid and the pid's start time (clock ticks
// since boot, /proc/PID/stat field 22), so a later process that reuses the pid is not taken for it.
std::string proc_start_time(long pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(f, line)) return "";
    const size_t close = line.rfind(')');  // the command name may hold spaces
    if (close == std::string::npos) return "";
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    for (int i = 3; i <= 22 && rest >> field; i++)
        if (i == 22) return field;
    return "";
}
std::string host_name() {
    char h[256] = {};
    gethostname(h, sizeof h - 1);
    return h;
}
std::string owner_self() { return host_name() + " " + std::to_string(getpid()) + " " + proc_start_time(getpid()); }
// False when the owner is a process of this machine that no longer exists; true when it lives or
// when it cannot be told (another machine sharing the folder).
bool owner_alive(const std::string& owner) {
    std::istringstream in(owner);
    std::string host, start;
    long pid = 0;
    if (!(in >> host >> pid)) return false;  // no owner recorded: nothing can be running it
    in >> start;
    if (host != host_name()) return true;
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) return false;
    return start.empty() || proc_start_time(pid) == start;
}

// Runs left running by a process that is gone: interrupted, their steps and final metrics kept.
Status mark_orphans(RunStoreDb& d) {
    std::vector<std::pair<int64_t, std::string>> running;
    {
        Stmt q(d, "SELECT id, owner FROM runs WHERE status='running'");
        if (!q) return db_error(d, "checking running runs");
        while (sqlite3_step(q.s) == SQLITE_ROW) running.push_back({sqlite3_column_int64(q.s, 0), text_col(q.s, 1)});
    }
    for (const auto& [id, owner] : running) {
        if (owner_alive(owner)) continue;
        std::istringstream in(owner);
        std::string host, pid = "?";
        in >> host >> pid;
        Stmt q(d, "UPDATE runs SET status='interrupted', status_message=?, ended=? WHERE id=? AND status='running'");
        const std::string msg = "the process that trained it (pid " + pid + ") ended without finishing it; its steps are kept";
        const std::string now = now_iso();
        sqlite3_bind_text(q.s, 1, msg.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q.s, 2, now.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(q.s, 3, id);
        if (sqlite3_step(q.s) != SQLITE_DONE) return db_error(d, "marking an interrupted run");
        if (Status s = store_final_metrics(d, id); !s) return s;
    }
    return Status::ok();
}

int schema_of(RunStoreDb& d) {
    Stmt q(d, "SELECT value FROM meta WHERE key='schema'");
    if (!q || sqlite3_step(q.s) != SQLITE_ROW) return 1;  // schema 1 had no schema row
    return std::atoi(text_col(q.s, 0).c_str());
}

Status migrate(RunStoreDb& d, int from) {
    if (from == k_run_store_schema) return Status::ok();
    if (from > k_run_store_schema)
        return Status::error("run store " + d.path + " has schema " + std::to_string(from) + ", newer than this RouteLab's " +
                             std::to_string(k_run_store_schema) + "; update RouteLab or pick another workspace");
    if (Status s = exec(d, "BEGIN IMMEDIATE"); !s) return s;
    if (schema_of(d) != from) return commit(d);  // another process upgraded it meanwhile
    // Each step from the stored schema to ours; 2 -> 3 only adds the loads' tables (older runs have none).
    std::string sql = std::string(from < 2 ? k_migrate_1_to_2 : "") + k_loads_schema + "INSERT OR REPLACE INTO meta VALUES('schema','" +
                      std::to_string(k_run_store_schema) + "');";
    if (Status s = exec(d, sql.c_str()); !s) {
        exec(d, "ROLLBACK");
        return Status::error("upgrading run store " + d.path + " failed: " + s.msg + " (the file is unchanged)");
    }
    std::vector<int64_t> ids;
    {
        Stmt q(d, "SELECT id FROM runs");
        while (q && sqlite3_step(q.s) == SQLITE_ROW) ids.push_back(sqlite3_column_int64(q.s, 0));
    }
    for (int64_t id : ids)
        if (Status s = store_final_metrics(d, id); !s) {
            exec(d, "ROLLBACK");
            return s;
        }
    return commit(d);
}

}  // namespace

const char* run_status_name(RunStatus s) { return k_status_names[(int)s]; }

Result<RunStore> run_store_open(const std::string& path) {
    auto d = std::make_shared<RunStoreDb>();
    d->path = path;
    if (sqlite3_open_v2(path.c_str(), &d->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK)
        return Status::error("cannot open run store " + path + ": " + (d->h ? sqlite3_errmsg(d->h) : "out of memory") +
                             " (choose a writable workspace folder)");
    // The window and the CLI write at once: wait for the other's transaction rather than fail.
    sqlite3_busy_timeout(d->h, 10000);
    // Is it ours? An empty file is a new store; any other database without our format row is refused.
    int tables = -1;
    {
        Stmt q(*d, "SELECT count(*) FROM sqlite_master");
        if (!q || sqlite3_step(q.s) != SQLITE_ROW) {
            const int code = sqlite3_errcode(d->h) & 0xff;  // the disk, not the file: a full or unwritable folder
            if (code == SQLITE_IOERR || code == SQLITE_FULL || code == SQLITE_READONLY || code == SQLITE_CANTOPEN)
                return Status::error("cannot open run store " + path + " (" + sqlite3_errmsg(d->h) +
                                     "): check the disk has space and the folder is writable, or pick another workspace");
            return Status::error("run store " + path + " is not a SQLite database (" + sqlite3_errmsg(d->h) +
                                 "); move it away or pick another workspace");
        }
        tables = sqlite3_column_int(q.s, 0);
    }
    // Readers never block the writer and the writer never blocks readers (the window reads while a CLI sweep writes).
    exec(*d, "PRAGMA journal_mode=WAL");
    exec(*d, "PRAGMA foreign_keys=ON");
    if (tables > 0) {
        Stmt q(*d, "SELECT value FROM meta WHERE key='format'");
        if (!q || sqlite3_step(q.s) != SQLITE_ROW || text_col(q.s, 0) != k_format)
            return Status::error("run store " + path + " is a SQLite database but not a RouteLab run store; "
                                 "move it away or pick another workspace");
    } else {
        const std::string create = std::string("BEGIN IMMEDIATE;"
                                               "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);") +
                                   "INSERT OR IGNORE INTO meta VALUES('format','" + k_format + "');COMMIT;";
        if (Status s = exec(*d, create.c_str()); !s) return s;
        // Two processes may create it at once: whoever finds no runs table makes the schema.
        if (Status s = exec(*d, "BEGIN IMMEDIATE"); !s) return s;
        bool made = false;
        {
            Stmt q(*d, "SELECT count(*) FROM sqlite_master WHERE name='runs'");
            made = q && sqlite3_step(q.s) == SQLITE_ROW && sqlite3_column_int(q.s, 0) > 0;
        }
        if (!made) {
            const std::string schema = std::string(k_runs_schema) + curves_schema() + k_loads_schema + "INSERT OR REPLACE INTO meta VALUES('schema','" +
                                       std::to_string(k_run_store_schema) + "');";
            if (Status s = exec(*d, schema.c_str()); !s) {
                exec(*d, "ROLLBACK");
                return s;
            }
        }
        if (Status s = commit(*d); !s) return s;
    }
    if (Status s = migrate(*d, schema_of(*d)); !s) return s;
    if (Status s = mark_orphans(*d); !s) return s;
    return RunStore{d};
}

int run_store_schema_version(RunStore& s) { return schema_of(*s.db); }

Result<int64_t> run_store_begin(RunStore& s, const std::string& name, const std::string& config_json, const RunStart& start) {
    RunStoreDb& d = *s.db;
    Stmt q(d, "INSERT INTO runs(name, created, config, status, corpus, seed, tags, sweep, owner) VALUES(?,?,?,'running',?,?,?,?,?)");
    const std::string created = now_iso(), owner = owner_self();
    if (!q) return db_error(d, "adding a run");
    const nlohmann::json cfg = nlohmann::json::parse(config_json, nullptr, false);
    std::string corpus;
    int64_t seed = 0;
    if (cfg.is_object() && cfg.contains("data") && cfg["data"].contains("corpus") && cfg["data"]["corpus"].is_string())
        corpus = cfg["data"]["corpus"];
    if (cfg.is_object() && cfg.contains("train") && cfg["train"].contains("seed") && cfg["train"]["seed"].is_number())
        seed = cfg["train"]["seed"];
    std::string tags;
    for (const auto& t : start.tags) tags += (tags.empty() ? "" : ",") + t;
    sqlite3_bind_text(q.s, 1, name.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q.s, 2, created.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q.s, 3, config_json.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q.s, 4, corpus.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q.s, 5, seed);
    sqlite3_bind_text(q.s, 6, tags.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q.s, 7, start.sweep.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q.s, 8, owner.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(q.s) != SQLITE_DONE) return db_error(d, "adding a run");
    return (int64_t)sqlite3_last_insert_rowid(d.h);
}

Status run_store_append(RunStore& s, int64_t run, const std::vector<CurvePoint>& points, const std::vector<StepLoads>& loads) {
    if (points.empty()) return Status::ok();
    RunStoreDb& d = *s.db;
    if (Status b = exec(d, "BEGIN IMMEDIATE"); !b) return b;  // take the write lock now: no deadlock with another writer
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
    if (Status l = loads_insert(d, run, loads); !l) {
        exec(d, "ROLLBACK");
        return l;
    }
    Stmt u(d, "UPDATE runs SET steps=?, final_loss=?, wall_s=? WHERE id=?");
    sqlite3_bind_int(u.s, 1, points.back().step);
    sqlite3_bind_double(u.s, 2, points.back().loss);
    sqlite3_bind_double(u.s, 3, points.back().wall_s);
    sqlite3_bind_int64(u.s, 4, run);
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
    if (sqlite3_changes(d.h) == 0)
        return Status::error("run store " + d.path + ": no run " + std::to_string(run) + " (routelab-cli runs list shows the ids)");
    return Status::ok();
}
}  // namespace

Status run_store_end(RunStore& s, int64_t run, RunStatus status, const std::string& message, float val_loss) {
    RunStoreDb& d = *s.db;
    const std::string now = now_iso();
    if (Status r = update_run(s, "UPDATE runs SET status=?, status_message=?, ended=?, val_loss=? WHERE id=?", run,
                              [&](sqlite3_stmt* q) {
                                  sqlite3_bind_text(q, 1, run_status_name(status), -1, SQLITE_STATIC);
                                  sqlite3_bind_text(q, 2, message.c_str(), -1, SQLITE_TRANSIENT);
                                  sqlite3_bind_text(q, 3, now.c_str(), -1, SQLITE_TRANSIENT);
                                  sqlite3_bind_double(q, 4, val_loss);
                              });
        !r)
        return r;
    return store_final_metrics(d, run);
}

Status run_store_reopen(RunStore& s, int64_t run) {
    const std::string owner = owner_self();
    return update_run(s, "UPDATE runs SET status='running', status_message='', ended='', owner=? WHERE id=?", run,
                      [&](sqlite3_stmt* q) { sqlite3_bind_text(q, 1, owner.c_str(), -1, SQLITE_TRANSIENT); });
}

Status run_store_finish(RunStore& s, int64_t run, float val_loss) {
    return run_store_end(s, run, RunStatus::finished, "", val_loss);
}

Status run_store_set_checkpoint(RunStore& s, int64_t run, const std::string& path, int step) {
    RunStoreDb& d = *s.db;
    if (Status r = update_run(s, "UPDATE runs SET checkpoint=? WHERE id=?", run,
                              [&](sqlite3_stmt* q) { sqlite3_bind_text(q, 1, path.c_str(), -1, SQLITE_TRANSIENT); });
        !r)
        return r;
    Stmt q(d, "INSERT INTO checkpoints VALUES(?1, CASE WHEN ?2 >= 0 THEN ?2 ELSE (SELECT steps FROM runs WHERE id=?1) END, ?3, ?4)");
    if (!q) return db_error(d, "recording a checkpoint");
    const std::string now = now_iso();
    sqlite3_bind_int64(q.s, 1, run);
    sqlite3_bind_int(q.s, 2, step);
    sqlite3_bind_text(q.s, 3, path.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q.s, 4, now.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(q.s) != SQLITE_DONE) return db_error(d, "recording a checkpoint");
    return Status::ok();
}

Result<std::vector<std::pair<int, std::string>>> run_store_checkpoints(RunStore& s, int64_t run) {
    RunStoreDb& d = *s.db;
    Stmt q(d, "SELECT step, path FROM checkpoints WHERE run=? ORDER BY rowid");
    if (!q) return db_error(d, "listing checkpoints");
    sqlite3_bind_int64(q.s, 1, run);
    std::vector<std::pair<int, std::string>> out;
    while (sqlite3_step(q.s) == SQLITE_ROW) out.push_back({sqlite3_column_int(q.s, 0), text_col(q.s, 1)});
    return out;
}

Status run_store_rename(RunStore& s, int64_t run, const std::string& name) {
    return update_run(s, "UPDATE runs SET name=? WHERE id=?", run,
                      [&](sqlite3_stmt* q) { sqlite3_bind_text(q, 1, name.c_str(), -1, SQLITE_TRANSIENT); });
}

Status run_store_set_tags(RunStore& s, int64_t run, const std::vector<std::string>& tags) {
    std::string t;
    for (const auto& x : tags) t += (t.empty() ? "" : ",") + x;
    return update_run(s, "UPDATE runs SET tags=? WHERE id=?", run,
                      [&](sqlite3_stmt* q) { sqlite3_bind_text(q, 1, t.c_str(), -1, SQLITE_TRANSIENT); });
}

Status run_store_set_colour(RunStore& s, int64_t run, const std::string& colour) {
    return update_run(s, "UPDATE runs SET colour=? WHERE id=?", run,
                      [&](sqlite3_stmt* q) { sqlite3_bind_text(q, 1, colour.c_str(), -1, SQLITE_TRANSIENT); });
}

Status run_store_delete(RunStore& s, int64_t run) {
    RunStoreDb& d = *s.db;
    if (Status b = exec(d, "BEGIN IMMEDIATE"); !b) return b;
    for (const char* sql : {"DELETE FROM curves WHERE run=?", "DELETE FROM checkpoints WHERE run=?", "DELETE FROM loads WHERE run=?",
                            "DELETE FROM token_sets WHERE run=?", "DELETE FROM runs WHERE id=?"}) {
        Stmt q(d, sql);
        if (!q || sqlite3_bind_int64(q.s, 1, run) != SQLITE_OK || sqlite3_step(q.s) != SQLITE_DONE) {
            Status e = db_error(d, "deleting a run");
            exec(d, "ROLLBACK");
            return e;
        }
    }
    return commit(d);
}

namespace {

const char* k_run_columns =
    "SELECT id, name, created, config, steps, final_loss, val_loss, checkpoint, status, status_message, ended, corpus,"
    " seed, tags, colour, sweep, load_cv, head_cv, dropped, tok_per_s, wall_s FROM runs";

RunRecord read_run(sqlite3_stmt* q) {
    RunRecord r;
    r.id = sqlite3_column_int64(q, 0);
    r.name = text_col(q, 1);
    r.created = text_col(q, 2);
    r.config_json = text_col(q, 3);
    r.steps = sqlite3_column_int(q, 4);
    r.final_loss = (float)sqlite3_column_double(q, 5);
    r.val_loss = (float)sqlite3_column_double(q, 6);
    r.checkpoint = text_col(q, 7);
    const std::string st = text_col(q, 8);
    for (int i = 0; i < (int)std::size(k_status_names); i++)
        if (st == k_status_names[i]) r.status = (RunStatus)i;
    r.status_message = text_col(q, 9);
    r.ended = text_col(q, 10);
    r.corpus = text_col(q, 11);
    r.seed = sqlite3_column_int64(q, 12);
    std::istringstream tags(text_col(q, 13));
    for (std::string t; std::getline(tags, t, ',');)
        if (!t.empty()) r.tags.push_back(t);
    r.colour = text_col(q, 14);
    r.sweep = text_col(q, 15);
    r.load_cv = (float)sqlite3_column_double(q, 16);
    r.head_cv = (float)sqlite3_column_double(q, 17);
    r.dropped = (float)sqlite3_column_double(q, 18);
    r.tok_per_s = (float)sqlite3_column_double(q, 19);
    r.wall_s = (float)sqlite3_column_double(q, 20);
    return r;
}

}  // namespace

Result<std::vector<RunRecord>> run_store_list(RunStore& s) {
    std::vector<RunRecord> out;
    if (Status st = query_rows(*s.db, std::string(k_run_columns) + " ORDER BY id DESC", "listing runs", {},
                               [&](sqlite3_stmt* q) { out.push_back(read_run(q)); });
        !st)
        return st;
    return out;
}

Result<RunRecord> run_store_get(RunStore& s, int64_t run) {
    RunStoreDb& d = *s.db;
    Stmt q(d, (std::string(k_run_columns) + " WHERE id=?").c_str());
    if (!q) return db_error(d, "reading a run");
    sqlite3_bind_int64(q.s, 1, run);
    if (sqlite3_step(q.s) != SQLITE_ROW) return Status::error("run store " + d.path + ": no run " + std::to_string(run) +
                                                              " (routelab-cli runs list shows the ids)");
    return read_run(q.s);
}

Result<std::vector<CurvePoint>> run_store_curve(RunStore& s, int64_t run) {
    std::vector<CurvePoint> out;
    if (Status st = query_rows(*s.db, "SELECT * FROM curves WHERE run=? ORDER BY step", "reading a curve", {run},
                               [&](sqlite3_stmt* q) {
                                   CurvePoint p;  // columns: run, step, then k_curve_columns in order
                                   p.step = sqlite3_column_int(q, 1);
                                   for (int c = 0; c < k_n_curve_values; c++)
                                       p.*k_curve_columns[c].field = (float)sqlite3_column_double(q, c + 2);
                                   out.push_back(p);
                               });
        !st)
        return st;
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
