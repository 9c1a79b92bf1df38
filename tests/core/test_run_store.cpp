// Run store: runs, curves and final metrics survive a reopen; CSV round-trips; config diffs name the
// changed keys; a file that is not a run store is refused with a message instead of being overwritten.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <sqlite3.h>

#include "config/presets.h"
#include "io/run_store.h"

namespace fs = std::filesystem;
using namespace rl;

namespace {

fs::path temp_path(const std::string& name) {
    fs::path p = fs::temp_directory_path() / ("routelab_test_" + std::to_string(::getpid()) + "_" + name);
    fs::remove_all(p);
    return p;
}

StepStats make_stats(int step) {
    StepStats s;
    s.step = step;
    s.loss = 5.f / step;
    s.ce = 4.f / step;
    s.lr = 1e-3f;
    s.tok_per_s = 1000.f + step;
    s.n_layers = 2;
    s.layers[0].n_experts = 4;
    s.layers[0].load_cv = 0.2f;
    s.layers[0].dropped_frac = 0.1f;
    s.layers[1].n_experts = 4;
    s.layers[1].load_cv = 0.4f;
    s.layers[1].dropped_frac = 0.3f;
    return s;
}

}  // namespace

TEST(RunStore, RunsAndCurvesSurviveReopen) {
    const fs::path db = temp_path("runs.sqlite");
    int64_t id = 0;
    {
        auto s = run_store_open(db.string());
        ASSERT_TRUE(s) << s.status.msg;
        auto r = run_store_begin(*s, "moe-top2-8", "{\"model\":{\"n_layers\":2}}");
        ASSERT_TRUE(r) << r.status.msg;
        id = *r;
        std::vector<CurvePoint> pts;
        for (int i = 1; i <= 10; i++) pts.push_back(curve_point(make_stats(i)));
        ASSERT_TRUE(run_store_append(*s, id, {pts.begin(), pts.begin() + 4}));
        ASSERT_TRUE(run_store_append(*s, id, {pts.begin() + 4, pts.end()}));
        ASSERT_TRUE(run_store_finish(*s, id, 1.25f));
        ASSERT_TRUE(run_store_set_checkpoint(*s, id, "/tmp/x.safetensors"));
        ASSERT_TRUE(run_store_begin(*s, "second", "{}"));
    }
    auto s = run_store_open(db.string());
    ASSERT_TRUE(s) << s.status.msg;
    auto runs = run_store_list(*s);
    ASSERT_TRUE(runs);
    ASSERT_EQ(runs->size(), 2u);
    EXPECT_EQ((*runs)[0].name, "second");  // newest first
    const RunRecord& r = (*runs)[1];
    EXPECT_EQ(r.id, id);
    EXPECT_EQ(r.name, "moe-top2-8");
    EXPECT_EQ(r.steps, 10);
    EXPECT_FLOAT_EQ(r.final_loss, 0.5f);
    EXPECT_FLOAT_EQ(r.val_loss, 1.25f);
    EXPECT_EQ(r.checkpoint, "/tmp/x.safetensors");
    EXPECT_EQ(r.created.size(), 20u);  // 2026-01-01T00:00:00Z
    auto c = run_store_curve(*s, id);
    ASSERT_TRUE(c);
    ASSERT_EQ(c->size(), 10u);
    EXPECT_EQ((*c)[2].step, 3);
    EXPECT_FLOAT_EQ((*c)[2].loss, 5.f / 3);
    EXPECT_FLOAT_EQ((*c)[2].load_cv, 0.3f);   // mean over the two MoE layers
    EXPECT_FLOAT_EQ((*c)[2].dropped, 0.2f);
    EXPECT_FLOAT_EQ((*c)[2].head_cv, 0.f);    // no MoH layer
    ASSERT_TRUE(run_store_delete(*s, id));
    EXPECT_EQ(run_store_list(*s)->size(), 1u);
    EXPECT_TRUE(run_store_curve(*s, id)->empty());
    fs::remove(db);
}

// Schema 3: each step's expert and head shares (normalised from the step's head rates), stored with the
// curve in one transaction, read back from a step on; token sets replaced whole; both gone with the run.
TEST(RunStore, LoadsAndTokenSetsSurviveReopen) {
    const fs::path db = temp_path("loads.sqlite");
    int64_t id = 0;
    {
        auto s = run_store_open(db.string());
        ASSERT_TRUE(s) << s.status.msg;
        id = *run_store_begin(*s, "loads", "{}");
        std::vector<CurvePoint> pts;
        std::vector<StepLoads> loads;
        for (int i = 1; i <= 6; i++) {
            StepStats st = make_stats(i);
            for (int e = 0; e < 4; e++) st.layers[0].expert_load[e] = (e + i) / (10.f + 4 * i);
            st.layers[1].n_experts = 0;  // layer 1: routed heads only
            st.layers[1].n_routed_heads = 2;
            st.layers[1].head_f[0] = 0.9f, st.layers[1].head_f[1] = 0.3f;
            pts.push_back(curve_point(st));
            loads.push_back(step_loads(st));
        }
        EXPECT_FLOAT_EQ(loads[0].head[1][0], 0.75f);  // 0.9 / (0.9 + 0.3)
        EXPECT_TRUE(loads[0].head[0].empty());
        ASSERT_TRUE(run_store_append(*s, id, pts, loads));
        ASSERT_TRUE(run_store_set_token_sets(*s, id, {{0, 2, {0, 1, 3, -1}}, {2, 2, {1, 2}}}));
        ASSERT_TRUE(run_store_set_token_sets(*s, id, {{0, 2, {0, 1, 3, 2}}}));  // replaces the earlier sets
    }
    auto s = run_store_open(db.string());
    ASSERT_TRUE(s) << s.status.msg;
    auto all = run_store_loads(*s, id);
    ASSERT_TRUE(all) << all.status.msg;
    ASSERT_EQ(all->size(), 6u);
    auto late = run_store_loads(*s, id, 5);
    ASSERT_EQ(late->size(), 2u);
    const StepLoads& p = (*late)[0];
    EXPECT_EQ(p.step, 5);
    ASSERT_EQ(p.expert.size(), 2u);
    ASSERT_EQ(p.expert[0].size(), 4u);
    for (int e = 0; e < 4; e++) EXPECT_FLOAT_EQ(p.expert[0][e], (e + 5) / 30.f);
    EXPECT_TRUE(p.expert[1].empty());
    ASSERT_EQ(p.head[1].size(), 2u);
    EXPECT_FLOAT_EQ(p.head[1][1], 0.25f);
    auto sets = run_store_token_sets(*s, id);
    ASSERT_TRUE(sets);
    ASSERT_EQ(sets->size(), 1u);
    EXPECT_EQ((*sets)[0].k, 2);
    EXPECT_EQ((*sets)[0].experts, (std::vector<int16_t>{0, 1, 3, 2}));
    ASSERT_TRUE(run_store_delete(*s, id));
    EXPECT_TRUE(run_store_loads(*s, id)->empty());
    EXPECT_TRUE(run_store_token_sets(*s, id)->empty());
    fs::remove(db);
}

// A schema-2 store (made by RouteLab before the loads were kept) opens upgraded: its run and curve as
// they were, no loads, and new runs store theirs.
TEST(RunStore, SchemaTwoStoreOpensUpgradedWithItsRuns) {
    const fs::path db = temp_path("v2.sqlite");
    fs::copy_file(fs::path(ROUTELAB_SOURCE_DIR) / "tests/data/runs-v2.sqlite", db);
    auto s = run_store_open(db.string());
    ASSERT_TRUE(s) << s.status.msg;
    EXPECT_EQ(run_store_schema_version(*s), 3);
    auto runs = run_store_list(*s);
    ASSERT_TRUE(runs && runs->size() == 1u);
    EXPECT_EQ((*runs)[0].name, "fuzz-seed");
    EXPECT_EQ((*runs)[0].status, RunStatus::finished);
    EXPECT_EQ(run_store_curve(*s, (*runs)[0].id)->size(), 3u);
    EXPECT_TRUE(run_store_loads(*s, (*runs)[0].id)->empty());
    const int64_t id = *run_store_begin(*s, "new", "{}");
    StepStats st = make_stats(1);
    st.layers[0].expert_load[0] = 1;
    ASSERT_TRUE(run_store_append(*s, id, {curve_point(st)}, {step_loads(st)}));
    EXPECT_EQ(run_store_loads(*s, id)->size(), 1u);
    fs::remove(db);
}

TEST(RunStore, CsvHasHeaderAndEveryValue) {
    std::vector<CurvePoint> pts = {curve_point(make_stats(1)), curve_point(make_stats(2))};
    std::istringstream in(curve_to_csv(pts));
    std::string header, row;
    std::getline(in, header);
    EXPECT_EQ(header, "step,loss,ce,moh_balance,moe_aux,zloss,lr,grad_norm,tok_per_s,head_cv,load_cv,dropped,entropy,wall_s");
    std::getline(in, row);
    std::getline(in, row);  // step 2
    std::vector<float> v;
    std::stringstream rs(row);
    for (std::string cell; std::getline(rs, cell, ',');) v.push_back(std::stof(cell));
    ASSERT_EQ(v.size(), curve_columns().size());
    for (size_t c = 0; c < v.size(); c++) EXPECT_FLOAT_EQ(v[c], curve_value(pts[1], (int)c)) << curve_columns()[c];
}

// Each column comes back into its own field, and the table's columns carry curve_columns() names.
TEST(RunStore, EveryCurveColumnIsStoredUnderItsName) {
    const fs::path db = temp_path("columns.sqlite");
    auto s = run_store_open(db.string());
    ASSERT_TRUE(s) << s.status.msg;
    auto id = run_store_begin(*s, "columns", "{}");
    ASSERT_TRUE(id);
    const CurvePoint p{7, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f, 6.5f, 7.5f, 8.5f, 9.5f, 10.5f, 11.5f, 12.5f, 13.5f};
    const int n = (int)curve_columns().size();
    for (int c = 1; c < n; c++) ASSERT_FLOAT_EQ(curve_value(p, c), c + 0.5f) << "fixture covers " << curve_columns()[c];
    ASSERT_TRUE(run_store_append(*s, *id, {p}));
    auto back = run_store_curve(*s, *id);
    ASSERT_TRUE(back && back->size() == 1u);
    for (int c = 0; c < n; c++) EXPECT_FLOAT_EQ(curve_value((*back)[0], c), curve_value(p, c)) << curve_columns()[c];
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open(db.string().c_str(), &h), SQLITE_OK);
    for (int c = 0; c < n; c++) {
        sqlite3_stmt* q = nullptr;
        const std::string sql = "SELECT " + curve_columns()[c] + " FROM curves";
        ASSERT_EQ(sqlite3_prepare_v2(h, sql.c_str(), -1, &q, nullptr), SQLITE_OK) << sql;
        ASSERT_EQ(sqlite3_step(q), SQLITE_ROW) << sql;
        EXPECT_FLOAT_EQ((float)sqlite3_column_double(q, 0), curve_value(p, c)) << sql;
        sqlite3_finalize(q);
    }
    sqlite3_close(h);
    fs::remove(db);
}

TEST(RunStore, ConfigDiffNamesChangedKeys) {
    auto a = preset_load("seed-baseline"), b = preset_load("seed-moh");
    ASSERT_TRUE(a && b);
    auto d = config_diff(config_to_json(*a), config_to_json(*b));
    bool kind = false;
    for (const auto& x : d) {
        EXPECT_NE(x.a, x.b) << x.key;
        if (x.key == "model.attention.heads.kind") kind = x.a == "\"all\"" || x.b == "\"moh\"";
    }
    EXPECT_TRUE(kind) << "heads.kind differs between seed-baseline and seed-moh";
    EXPECT_TRUE(config_diff(config_to_json(*a), config_to_json(*a)).empty());
    auto e = config_diff("{\"x\":{\"y\":1},\"x-z\":2}", "{\"x\":{\"y\":2}}");
    ASSERT_EQ(e.size(), 2u);
    EXPECT_EQ(e[0].key, "x-z");
    EXPECT_EQ(e[0].b, "(absent)");
    EXPECT_EQ(e[1].key, "x.y");
}

TEST(RunStore, RefusesFilesThatAreNotRunStores) {
    const fs::path junk = temp_path("junk.sqlite");
    std::ofstream(junk) << "this is a text file, not a database, and it must not be overwritten\n";
    auto s = run_store_open(junk.string());
    ASSERT_FALSE(s);
    EXPECT_NE(s.status.msg.find("not a SQLite database"), std::string::npos) << s.status.msg;
    std::ifstream in(junk);
    std::string first;
    std::getline(in, first);
    EXPECT_EQ(first, "this is a text file, not a database, and it must not be overwritten");

    const fs::path other = temp_path("other.sqlite");
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open(other.string().c_str(), &h), SQLITE_OK);
    sqlite3_exec(h, "CREATE TABLE photos(id INTEGER)", nullptr, nullptr, nullptr);
    sqlite3_close(h);
    auto o = run_store_open(other.string());
    ASSERT_FALSE(o);
    EXPECT_NE(o.status.msg.find("not a RouteLab run store"), std::string::npos) << o.status.msg;

    auto n = run_store_open("/nonexistent-dir-routelab/runs.sqlite");
    ASSERT_FALSE(n);
    EXPECT_NE(n.status.msg.find("writable"), std::string::npos) << n.status.msg;
    fs::remove(junk);
    fs::remove(other);
}

// Another process holding the database (a second window on the same workspace): the write fails
// with a message, and once the lock is gone the store writes again (no transaction left open).
TEST(RunStore, LockedDatabaseFailsCleanlyAndRecovers) {
    const fs::path db = temp_path("locked.sqlite");
    auto s = run_store_open(db.string());
    ASSERT_TRUE(s) << s.status.msg;
    auto id = run_store_begin(*s, "r", "{}");
    ASSERT_TRUE(id);
    sqlite3* other = nullptr;
    ASSERT_EQ(sqlite3_open(db.string().c_str(), &other), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(other, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
    Status st = run_store_append(*s, *id, {curve_point(make_stats(1))});  // waits out the 2 s busy timeout
    EXPECT_FALSE(st);
    EXPECT_NE(st.msg.find("locked"), std::string::npos) << st.msg;
    sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(other);
    ASSERT_TRUE(run_store_append(*s, *id, {curve_point(make_stats(1)), curve_point(make_stats(2))}));
    ASSERT_TRUE(run_store_finish(*s, *id, 2.f));
    auto runs = run_store_list(*s);
    ASSERT_TRUE(runs);
    EXPECT_EQ((*runs)[0].steps, 2);
    EXPECT_EQ(run_store_curve(*s, *id)->size(), 2u);
    fs::remove(db);
}
