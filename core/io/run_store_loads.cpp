// The run store's routing loads (schema 3; issue 25, docs/cluster-cost.md): each step's per-layer
// expert and head shares, and each token's experts on the validation text at the run's end. Rows
// hold little-endian float32 / int16 blobs: a 2,000-step run of 4 layers and 8 experts adds ~0.5 MB.
#include <bit>
#include <cstring>

#include "io/run_store_internal.h"

namespace rl {

using namespace run_store_detail;

static_assert(std::endian::native == std::endian::little, "the loads' blobs are stored as this machine's floats");

namespace run_store_detail {

const char* const k_loads_schema =
    "CREATE TABLE loads(run INTEGER REFERENCES runs(id) ON DELETE CASCADE, step INTEGER, layer INTEGER,"
    " expert BLOB, head BLOB, PRIMARY KEY(run, step, layer));"
    "CREATE TABLE token_sets(run INTEGER REFERENCES runs(id) ON DELETE CASCADE, layer INTEGER, k INTEGER,"
    " experts BLOB, PRIMARY KEY(run, layer));";

Status loads_insert(RunStoreDb& d, int64_t run, const std::vector<StepLoads>& loads) {
    if (loads.empty()) return Status::ok();
    Stmt q(d, "INSERT OR REPLACE INTO loads VALUES(?,?,?,?,?)");
    if (!q) return db_error(d, "storing loads");
    for (const StepLoads& p : loads)
        for (size_t l = 0; l < p.expert.size(); l++) {
            const std::vector<float>& e = p.expert[l];
            const std::vector<float>* h = l < p.head.size() ? &p.head[l] : nullptr;
            if (e.empty() && (!h || h->empty())) continue;  // a dense layer without routed heads
            sqlite3_reset(q.s);
            sqlite3_bind_int64(q.s, 1, run);
            sqlite3_bind_int(q.s, 2, p.step);
            sqlite3_bind_int(q.s, 3, (int)l);
            sqlite3_bind_blob(q.s, 4, e.data(), (int)(e.size() * sizeof(float)), SQLITE_TRANSIENT);
            if (h) sqlite3_bind_blob(q.s, 5, h->data(), (int)(h->size() * sizeof(float)), SQLITE_TRANSIENT);
            else sqlite3_bind_blob(q.s, 5, "", 0, SQLITE_STATIC);
            if (sqlite3_step(q.s) != SQLITE_DONE) return db_error(d, "storing loads");
        }
    return Status::ok();
}

}  // namespace run_store_detail

namespace {
template <class T>
std::vector<T> blob_col(sqlite3_stmt* q, int i) {
    const int n = sqlite3_column_bytes(q, i);
    std::vector<T> v((size_t)n / sizeof(T));
    if (!v.empty()) std::memcpy(v.data(), sqlite3_column_blob(q, i), v.size() * sizeof(T));
    return v;
}
}  // namespace

Result<std::vector<StepLoads>> run_store_loads(RunStore& s, int64_t run, int from_step) {
    std::vector<StepLoads> out;
    const char* sql = "SELECT step, layer, expert, head FROM loads WHERE run=? AND step>=? ORDER BY step, layer";
    if (Status st = query_rows(*s.db, sql, "reading loads", {run, from_step}, [&](sqlite3_stmt* q) {
            const int step = sqlite3_column_int(q, 0), layer = sqlite3_column_int(q, 1);
            if (layer < 0 || layer >= k_stats_layers) return;  // not a row we wrote
            if (out.empty() || out.back().step != step) out.push_back({step, {}, {}});
            StepLoads& p = out.back();
            if ((int)p.expert.size() <= layer) p.expert.resize(layer + 1), p.head.resize(layer + 1);
            p.expert[layer] = blob_col<float>(q, 2);
            p.head[layer] = blob_col<float>(q, 3);
        });
        !st)
        return st;
    return out;
}

Status run_store_set_token_sets(RunStore& s, int64_t run, const std::vector<TokenSets>& sets) {
    RunStoreDb& d = *s.db;
    if (Status b = exec(d, "BEGIN IMMEDIATE"); !b) return b;
    auto fail = [&] {
        Status e = db_error(d, "storing token sets");
        exec(d, "ROLLBACK");
        return e;
    };
    {
        Stmt del(d, "DELETE FROM token_sets WHERE run=?");
        if (!del || sqlite3_bind_int64(del.s, 1, run) != SQLITE_OK || sqlite3_step(del.s) != SQLITE_DONE) return fail();
        Stmt q(d, "INSERT INTO token_sets VALUES(?,?,?,?)");
        if (!q) return fail();
        for (const TokenSets& t : sets) {
            sqlite3_reset(q.s);
            sqlite3_bind_int64(q.s, 1, run);
            sqlite3_bind_int(q.s, 2, t.layer);
            sqlite3_bind_int(q.s, 3, t.k);
            sqlite3_bind_blob(q.s, 4, t.experts.data(), (int)(t.experts.size() * sizeof(int16_t)), SQLITE_TRANSIENT);
            if (sqlite3_step(q.s) != SQLITE_DONE) return fail();
        }
    }
    return commit(d);
}

Result<std::vector<TokenSets>> run_store_token_sets(RunStore& s, int64_t run) {
    std::vector<TokenSets> out;
    if (Status st = query_rows(*s.db, "SELECT layer, k, experts FROM token_sets WHERE run=? ORDER BY layer", "reading token sets",
                               {run}, [&](sqlite3_stmt* q) {
                                   TokenSets t{sqlite3_column_int(q, 0), sqlite3_column_int(q, 1), blob_col<int16_t>(q, 2)};
                                   if (t.k > 0 && t.experts.size() % (size_t)t.k == 0) out.push_back(std::move(t));  // else not ours
                               });
        !st)
        return st;
    return out;
}

}  // namespace rl
