// Offscreen tests of tuning in the window (docs/architecture.md §11): each run's status in the store
// as the window ends it (finished, replaced, closed, failed), Continue in the same row and from a
// checkpoint after a restart, the sweep queue, the Runs dock's edits and the comparison table.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include <QApplication>
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QTemporaryDir>
#include <QAction>
#include <QDialog>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QStatusBar>
#include <QTableWidget>
#include <QThread>
#include <QTimer>
#include <QTreeWidget>

#include "config/presets.h"
#include "infer/generate.h"
#include "io/checkpoint.h"
#include "io/resume.h"
#include "main_window.h"
#include "sweep_dialog.h"
#include "stored_run.h"
#include "wait_for.h"
#include "run_groups.h"
#include "run_table.h"
#include "tuning_plots.h"

namespace {

std::vector<rl::RunRecord> storedRuns(const QString& ws) {
    auto store = rl::run_store_open(QDir(ws).filePath("runs.sqlite").toStdString());
    auto l = rl::run_store_list(*store);
    return l ? *l : std::vector<rl::RunRecord>{};
}

std::vector<rl::CurvePoint> storedCurve(const QString& ws, int64_t id) {
    auto store = rl::run_store_open(QDir(ws).filePath("runs.sqlite").toStdString());
    auto c = rl::run_store_curve(*store, id);
    return c ? *c : std::vector<rl::CurvePoint>{};
}

// Continue as the window's dialogs do it: the run controller's, its refusal in the status bar.
bool continueRun(MainWindow& w, int n) {
    const rl::Status s = w.runs().continueRun(n);
    if (!s) w.statusBar()->showMessage(QString::fromStdString(s.msg));
    return s.is_ok();
}
bool continueFromCheckpoint(MainWindow& w, qint64 id, int n) {
    const rl::Status s = w.runs().continueFromCheckpoint(id, n);
    if (!s) w.statusBar()->showMessage(QString::fromStdString(s.msg));
    return s.is_ok();
}

// "... at step N": N, or -1.
int stepIn(const std::string& message) {
    const auto p = message.rfind("at step ");
    return p == std::string::npos ? -1 : std::atoi(message.c_str() + p + 8);
}

}  // namespace

// Replaced by another Train: interrupted at the step it reached; a run to its last step: finished;
// the window closed while training: interrupted, saying so.
TEST(Window, RunStatusFollowsHowTheRunEnded) {
    QTemporaryDir ws;
    int64_t replaced = 0, finished = 0, closed = 0;
    {
        MainWindow w(ws.path());
        ASSERT_TRUE(w.startRun(tiny(100000))) << w.statusMessage().toStdString();
        replaced = w.runs().currentRunId();
        ASSERT_TRUE(waitFor([&] { return w.runs().lastStep() >= 3; }));
        EXPECT_EQ(stored(ws.path(), replaced).status, rl::RunStatus::running);
        bool done = false;
        QObject::connect(&w.runs(), &RunController::runFinished, [&] { done = true; });
        ASSERT_TRUE(w.startRun(tiny(6)));
        finished = w.runs().currentRunId();
        ASSERT_NE(finished, replaced);
        const rl::RunRecord r = stored(ws.path(), replaced);
        EXPECT_EQ(r.status, rl::RunStatus::interrupted);
        EXPECT_EQ(r.status_message.rfind("replaced by a new run at step ", 0), 0u) << r.status_message;
        EXPECT_EQ(stepIn(r.status_message), r.steps) << "the message names the last stored step";
        EXPECT_GE(r.steps, 3);
        EXPECT_FALSE(r.ended.empty());
        ASSERT_TRUE(waitFor([&] { return done; }));
        const rl::RunRecord f = stored(ws.path(), finished);
        EXPECT_EQ(f.status, rl::RunStatus::finished);
        EXPECT_EQ(f.steps, 6);
        EXPECT_GT(f.val_loss, 0.f);
        EXPECT_TRUE(f.status_message.empty());
        ASSERT_TRUE(w.startRun(tiny(100000)));
        closed = w.runs().currentRunId();
        ASSERT_TRUE(waitFor([&] { return w.runs().lastStep() >= 2; }));
        EXPECT_EQ(stored(ws.path(), finished).status, rl::RunStatus::finished) << "a finished run is not interrupted by the next";
        w.close();
    }
    const rl::RunRecord c = stored(ws.path(), closed);
    EXPECT_EQ(c.status, rl::RunStatus::interrupted);
    EXPECT_EQ(c.status_message.rfind("the window was closed at step ", 0), 0u) << c.status_message;
    EXPECT_EQ(stepIn(c.status_message), c.steps);
    EXPECT_GE(c.steps, 2);
    // A window destroyed without a close (scripted runs, tests) ends its run the same way.
    int64_t dropped = 0;
    {
        MainWindow w(ws.path());
        ASSERT_TRUE(w.startRun(tiny(100000)));
        dropped = w.runs().currentRunId();
        ASSERT_TRUE(waitFor([&] { return w.runs().lastStep() >= 1; }));
    }
    EXPECT_EQ(stored(ws.path(), dropped).status, rl::RunStatus::interrupted);
}

// A NaN loss (--inject-nan-at): the step is not applied, the run is stored failed naming the step,
// the window says so, and the weights of the step before are saved as the run's checkpoint, finite,
// loadable and able to generate.
TEST(Window, NonFiniteStepFailsTheRunAndKeepsTheLastGoodWeights) {
    QTemporaryDir ws;
    MainWindow w(ws.path());
    w.runs().session().setInjectNanAt(5);
    QString said, saved;
    QObject::connect(&w.runs(), &RunController::runFailed, [&](const QString& m) { said = m; });
    QObject::connect(&w.runs(), &RunController::checkpointSaved, [&](const QString& p) { saved = p; });
    ASSERT_TRUE(w.startRun(tiny(100000)));
    const int64_t id = w.runs().currentRunId();
    ASSERT_TRUE(waitFor([&] { return !said.isEmpty() && !saved.isEmpty(); }));
    EXPECT_TRUE(said.startsWith("step 5: the loss is NaN; training stopped with the weights of step 4, saved to ")) << said.toStdString();
    EXPECT_TRUE(w.statusMessage().startsWith("step 5: the loss is NaN")) << w.statusMessage().toStdString();
    EXPECT_EQ(w.runs().lastStep(), 4) << "the refused step never reached the window";
    const rl::RunRecord r = stored(ws.path(), id);
    EXPECT_EQ(r.status, rl::RunStatus::failed);
    EXPECT_EQ(r.status_message, said.toStdString());
    EXPECT_EQ(r.steps, 4);
    EXPECT_EQ(r.checkpoint, saved.toStdString());
    auto ck = rl::checkpoint_load(saved.toStdString());
    ASSERT_TRUE(ck) << ck.status.msg;
    EXPECT_EQ((*ck)->info.step, 4);
    for (float v : (*ck)->model.params.data) ASSERT_TRUE(std::isfinite(v)) << "a weight of the saved checkpoint is not finite";
    rl::SampleOptions o;
    o.temperature = 0;
    const rl::GenerationReport g = rl::generate_report((*ck)->model, (*ck)->tok, "The", 5, o, 0.f);
    EXPECT_TRUE(g.error.empty()) << g.error;
    EXPECT_FALSE(g.new_text.empty());
    w.close();
    EXPECT_EQ(stored(ws.path(), id).status, rl::RunStatus::failed) << "closing does not overwrite how it ended";
}

TEST(Window, ContinueTrainsMoreStepsInTheSameRow) {
    QTemporaryDir ws;
    MainWindow w(ws.path());
    int finishedAt = 0;
    QObject::connect(&w.runs(), &RunController::runFinished, [&](int step) { finishedAt = step; });
    EXPECT_FALSE(continueRun(w, 5)) << "nothing has finished yet";
    ASSERT_TRUE(w.startRun(tiny(6)));
    const int64_t id = w.runs().currentRunId();
    ASSERT_TRUE(waitFor([&] { return finishedAt == 6; }));
    ASSERT_EQ(stored(ws.path(), id).status, rl::RunStatus::finished);
    ASSERT_TRUE(continueRun(w, 4)) << w.statusMessage().toStdString();
    EXPECT_EQ(stored(ws.path(), id).status, rl::RunStatus::running);
    EXPECT_FALSE(continueRun(w, 4)) << "only a finished run continues";
    ASSERT_TRUE(waitFor([&] { return finishedAt == 10; }));
    EXPECT_EQ(w.runs().currentRunId(), id);
    const rl::RunRecord r = stored(ws.path(), id);
    EXPECT_EQ(r.status, rl::RunStatus::finished);
    EXPECT_EQ(r.steps, 10);
    EXPECT_GT(r.val_loss, 0.f);
    const auto curve = storedCurve(ws.path(), id);
    ASSERT_EQ(curve.size(), 10u);
    for (int i = 0; i < 10; i++) EXPECT_EQ(curve[i].step, i + 1);
    EXPECT_GT(curve[9].wall_s, curve[5].wall_s);
    EXPECT_EQ(storedRuns(ws.path()).size(), 1u) << "no second row";
    EXPECT_EQ(w.runs().data().curve.size(), 10u);
}

TEST(Window, ContinueFromCheckpointAfterARestartIsExact) {
    QTemporaryDir ws;
    auto cfg = tiny(8);
    cfg.model.attention.positional = rl::PosKind::rope;  // CoPE's table gradient depends on the thread count
    int64_t straight = 0, later = 0;
    const QString ckA = QDir(ws.path()).filePath("a.safetensors"), ckB = QDir(ws.path()).filePath("b.safetensors");
    {
        MainWindow w(ws.path());
        int finishedAt = 0;
        QString saved;
        QObject::connect(&w.runs(), &RunController::runFinished, [&](int step) { finishedAt = step; });
        QObject::connect(&w.runs(), &RunController::checkpointSaved, [&](const QString& p) { saved = p; });
        ASSERT_TRUE(w.startRun(cfg));
        straight = w.runs().currentRunId();
        ASSERT_TRUE(waitFor([&] { return finishedAt == 8; }));
        w.runs().saveCheckpoint(ckA);
        ASSERT_TRUE(waitFor([&] { return saved == ckA; })) << w.statusMessage().toStdString();
        EXPECT_TRUE(QFile::exists(QString::fromStdString(rl::run_state_path(ckA.toStdString(), 8)))) << "the companion state";
        ASSERT_TRUE(continueRun(w, 5));
        ASSERT_TRUE(waitFor([&] { return finishedAt == 13; }));
        finishedAt = 0;
        ASSERT_TRUE(w.startRun(cfg));
        later = w.runs().currentRunId();
        ASSERT_TRUE(waitFor([&] { return finishedAt == 8; }));
        w.runs().saveCheckpoint(ckB);
        ASSERT_TRUE(waitFor([&] { return saved == ckB; }));
        auto store = rl::run_store_open(QDir(ws.path()).filePath("runs.sqlite").toStdString());
        auto cks = rl::run_store_checkpoints(*store, later);
        ASSERT_TRUE(cks && cks->size() == 1u);
        EXPECT_EQ((*cks)[0].first, 8) << "recorded with its step";
        EXPECT_EQ((*cks)[0].second, ckB.toStdString());
    }
    const auto reference = storedCurve(ws.path(), straight);
    ASSERT_EQ(reference.size(), 13u);
    MainWindow w(ws.path());  // the restart
    int finishedAt = 0;
    QObject::connect(&w.runs(), &RunController::runFinished, [&](int step) { finishedAt = step; });
    ASSERT_TRUE(continueFromCheckpoint(w, later, 5)) << w.statusMessage().toStdString();
    EXPECT_TRUE(w.statusMessage().contains("exact")) << w.statusMessage().toStdString();
    EXPECT_FALSE(w.statusMessage().contains("not exact")) << w.statusMessage().toStdString();
    EXPECT_EQ(w.runs().currentRunId(), later) << "the checkpoint is its last step: the same row";
    EXPECT_EQ(stored(ws.path(), later).status, rl::RunStatus::running);
    ASSERT_TRUE(waitFor([&] { return finishedAt == 13; }));
    const auto resumed = storedCurve(ws.path(), later);
    ASSERT_EQ(resumed.size(), 13u);
    for (int i = 0; i < 13; i++) EXPECT_EQ(resumed[i].loss, reference[i].loss) << "step " << i + 1;
    EXPECT_EQ(stored(ws.path(), later).status, rl::RunStatus::finished);

    // The first run went on past its checkpoint (to 13): continuing from step 8 is a new row.
    finishedAt = 0;
    ASSERT_TRUE(continueFromCheckpoint(w, straight, 2)) << w.statusMessage().toStdString();
    const int64_t branch = w.runs().currentRunId();
    EXPECT_NE(branch, straight);
    EXPECT_NE(stored(ws.path(), branch).name.find("(from #" + std::to_string(straight) + " at step 8)"), std::string::npos);
    ASSERT_TRUE(waitFor([&] { return finishedAt == 10; }));
    const auto b = storedCurve(ws.path(), branch);
    ASSERT_EQ(b.size(), 10u) << "the steps up to the checkpoint, then its own";
    for (int i = 0; i < 10; i++) EXPECT_EQ(b[i].loss, reference[i].loss) << "step " << i + 1;
    EXPECT_EQ(storedCurve(ws.path(), straight).size(), 13u) << "the original row is untouched";
    // Without the companion the message says the optimizer starts fresh.
    ASSERT_TRUE(QFile::remove(QString::fromStdString(rl::run_state_path(ckB.toStdString(), 8))));
    ASSERT_TRUE(continueFromCheckpoint(w, later, 1)) << w.statusMessage().toStdString();
    EXPECT_TRUE(w.statusMessage().contains("not exact, fresh optimizer")) << w.statusMessage().toStdString();
    EXPECT_FALSE(continueFromCheckpoint(w, 12345, 1));
}

TEST(Window, SweepRunsEveryPointAndStoresTheInvalidOneFailed) {
    QTemporaryDir ws;
    MainWindow w(ws.path());
    int finished = -1, failed = -1;
    QObject::connect(&w.sweeps(), &SweepRunner::finished, [&](int f, int x) { finished = f, failed = x; });
    EXPECT_FALSE(w.sweeps().start("{\"grid\": {\"train.lr\": []}}", "bad"));
    EXPECT_TRUE(w.statusMessage().contains("empty list")) << w.statusMessage().toStdString();
    const QString json = R"({"name": "kv3", "preset": "tiny", "set": {"train.steps": 4},
                             "grid": {"model.n_kv_heads": [1, 3, 2]}})";
    ASSERT_TRUE(w.sweeps().start(json, "unused")) << w.statusMessage().toStdString();
    EXPECT_TRUE(w.sweeps().active());
    auto* progress = w.findChild<QLabel*>("sweepProgress");
    ASSERT_NE(progress, nullptr);
    EXPECT_TRUE(progress->text().contains("sweep kv3: run 1/3")) << progress->text().toStdString();
    ASSERT_TRUE(waitFor([&] { return finished >= 0; }));
    EXPECT_EQ(finished, 2);
    EXPECT_EQ(failed, 1);
    EXPECT_FALSE(w.sweeps().active());
    EXPECT_TRUE(w.statusMessage().contains("sweep kv3 done")) << w.statusMessage().toStdString();
    std::vector<rl::RunRecord> runs = storedRuns(ws.path());
    ASSERT_EQ(runs.size(), 3u);
    std::reverse(runs.begin(), runs.end());  // oldest first: the points' order
    const char* kv[] = {"n_kv_heads=1", "n_kv_heads=3", "n_kv_heads=2"};
    const rl::RunStatus want[] = {rl::RunStatus::finished, rl::RunStatus::failed, rl::RunStatus::finished};
    for (int i = 0; i < 3; i++) {
        EXPECT_EQ(runs[i].sweep, "kv3");
        EXPECT_NE(runs[i].name.find(kv[i]), std::string::npos) << runs[i].name;
        EXPECT_EQ(runs[i].status, want[i]) << runs[i].name;
    }
    EXPECT_NE(runs[1].status_message.find("n_kv_heads"), std::string::npos) << runs[1].status_message;
    EXPECT_EQ(runs[0].steps, 4);
    EXPECT_EQ(runs[2].steps, 4);
    EXPECT_GT(runs[2].val_loss, 0.f);
    // The tuning view's copy of the list is the store's.
    EXPECT_EQ(w.runs().data().runs.size(), 3u);
}

TEST(Window, SweepGoesOnAfterAFailedRunAndStops) {
    QTemporaryDir ws;
    MainWindow w(ws.path());
    int finished = -1, failed = -1;
    QObject::connect(&w.sweeps(), &SweepRunner::finished, [&](int f, int x) { finished = f, failed = x; });
    ASSERT_TRUE(w.sweeps().start(R"({"name": "f", "preset": "tiny", "grid": {"train.steps": [100000, 3]}})", "f"));
    const int64_t first = w.runs().currentRunId();
    ASSERT_TRUE(waitFor([&] { return w.runs().lastStep() >= 2; }));
    emit w.runs().session().failed("step 2: the loss is NaN", 1);  // what Session sends on a non-finite step
    ASSERT_TRUE(waitFor([&] { return finished >= 0; }));
    EXPECT_EQ(finished, 1);
    EXPECT_EQ(failed, 1);
    EXPECT_EQ(stored(ws.path(), first).status, rl::RunStatus::failed);
    EXPECT_EQ(stored(ws.path(), w.runs().currentRunId()).status, rl::RunStatus::finished);

    ASSERT_TRUE(w.sweeps().start(R"({"name": "g", "preset": "tiny", "grid": {"train.steps": [100000, 3]}})", "g"));
    const int64_t point = w.runs().currentRunId();
    ASSERT_TRUE(waitFor([&] { return w.runs().lastStep() >= 1; }));
    w.sweeps().stop();
    EXPECT_FALSE(w.sweeps().active());
    const rl::RunRecord r = stored(ws.path(), point);
    EXPECT_EQ(r.status, rl::RunStatus::interrupted);
    EXPECT_EQ(r.status_message.rfind("the sweep was stopped at step ", 0), 0u) << r.status_message;
    EXPECT_EQ(storedRuns(ws.path()).size(), 3u) << "the second point of g never started";
}

// Successive halving in the window: each run pauses at its rung (saved with its training state, its
// row interrupted), the kept ones go on from their checkpoints in their rows, the others are stored
// pruned; the survivor ends with the validation loss of one unbroken window run of its config.
TEST(Window, HalvingSweepPausesAtRungsAndItsSurvivorIsTheUnbrokenRun) {
    QTemporaryDir ws;
    MainWindow w(ws.path());
    int finished = -1, paused = 0;
    QObject::connect(&w.sweeps(), &SweepRunner::finished, [&](int f, int) { finished = f; });
    QObject::connect(&w.runs(), &RunController::runPaused, [&] { paused++; });
    ASSERT_TRUE(w.sweeps().start(R"({"name": "h", "preset": "tiny", "method": "halving", "min_steps": 10, "max_steps": 40,
        "eta": 2, "seeds": 2, "set": {"train.eval_every": 25}, "grid": {"train.lr": [0.001, 0.003, 0.01, 0.002]}})", "h"))
        << w.statusMessage().toStdString();
    ASSERT_TRUE(waitFor([&] { return finished >= 0; }));
    EXPECT_EQ(paused, 8 + 4) << "every run at rung 1 (10 steps), the kept two points' at rung 2 (20)";
    std::map<rl::RunStatus, int> by;
    float survivor = -1;
    for (const auto& r : storedRuns(ws.path())) {
        by[r.status]++;
        if (r.status == rl::RunStatus::pruned) EXPECT_EQ(r.status_message.rfind("pruned at rung", 0), 0u) << r.status_message;
        if (r.name == "h lr=0.01 seed=1234") {
            EXPECT_EQ(r.status, rl::RunStatus::finished);
            EXPECT_EQ(r.steps, 40);
            EXPECT_EQ(rl::run_store_curve(*rl::run_store_open(QDir(ws.path()).filePath("runs.sqlite").toStdString()), r.id)->size(), 40u)
                << "one row, every step";
            survivor = r.val_loss;
        }
    }
    EXPECT_EQ(by[rl::RunStatus::pruned], 6);
    EXPECT_EQ(by[rl::RunStatus::finished], 2);
    ASSERT_GT(survivor, 0) << "lr 0.01 learns fastest in 40 steps of tiny";
    rl::Config c = *rl::preset_load("tiny");
    c.train.steps = 40, c.train.eval_every = 25, c.train.lr = 0.01f;
    float straight = -1;
    QObject::connect(&w.runs(), &RunController::runFinished, [&] { straight = stored(ws.path(), w.runs().currentRunId()).val_loss; });
    ASSERT_TRUE(w.runs().startRun(c));
    ASSERT_TRUE(waitFor([&] { return straight >= 0; }));
    EXPECT_FLOAT_EQ(survivor, straight) << "continued exactly at each rung";
}

// The Sweep dialog's JSON: the form's config as the base, the picked keys as the grid, values checked.
TEST(Window, SweepFromTheFormBuildsTheGrid) {
    QTemporaryDir ws;
    MainWindow w(ws.path());
    w.selectPreset("tiny");
    const rl::Config form = *w.configDock()->config();
    auto sweepFromForm = [&](const QString& name, const QList<QPair<QString, QString>>& kv, QString* err) {
        return ::sweepFromForm(form, w.workspace(), name, kv, err);
    };
    QString err;
    EXPECT_TRUE(sweepFromForm("s", {{"train.lr", "0.001, fast"}}, &err).isEmpty());
    EXPECT_TRUE(err.contains("'fast' is not a number")) << err.toStdString();
    EXPECT_TRUE(sweepFromForm("s", {{"model.nope", "1"}}, &err).isEmpty());
    const QString json = sweepFromForm("lr-norm", {{"train.lr", "0.001, 0.003"}, {"model.norm", "rmsnorm, layernorm"}}, &err);
    ASSERT_FALSE(json.isEmpty()) << err.toStdString();
    auto sw = rl::sweep_parse(json.toStdString(), "x");
    ASSERT_TRUE(sw) << sw.status.msg;
    EXPECT_EQ(sw->name, "lr-norm");
    ASSERT_EQ(sw->points.size(), 4u);
    EXPECT_EQ(sw->points[1].label, "train.lr=0.001 model.norm=\"layernorm\"");
    auto base = rl::config_load(sw->config_path);
    ASSERT_TRUE(base) << base.status.msg;
    EXPECT_EQ(base->name, "tiny") << "the form's config is the base";
    EXPECT_TRUE(QFile::exists(QDir(ws.path()).filePath("sweeps/lr-norm.json")));
    // The search choices: TPE over a log range and a list, 3 seeds, two objectives, a constraint.
    SweepSearchChoice how;
    how.method = "tpe", how.seeds = 3, how.points = 12, how.objective2 = "tok_per_s", how.constraint = "dropped<=0.01";
    EXPECT_TRUE(::sweepFromForm(form, w.workspace(), "t", {{"train.lr", "1e-4..1e-2 log"}}, &err, how).isEmpty()) << "no space in the constraint";
    how.constraint = "dropped <= 0.01";
    const QString tpe = ::sweepFromForm(form, w.workspace(), "t", {{"train.lr", "1e-4..1e-2 log"}, {"model.norm", "rmsnorm, layernorm"}}, &err, how);
    ASSERT_FALSE(tpe.isEmpty()) << err.toStdString();
    auto t = rl::sweep_parse(tpe.toStdString(), "x");
    ASSERT_TRUE(t) << t.status.msg << "\n" << tpe.toStdString();
    EXPECT_EQ(t->method, rl::SweepMethod::tpe);
    EXPECT_EQ(t->trials, 12);
    EXPECT_EQ(t->seeds, 3);
    ASSERT_EQ(t->params.size(), 2u);
    EXPECT_TRUE(t->params[0].log);
    EXPECT_EQ(t->params[1].kind, rl::TuneParam::Kind::choice);
    ASSERT_EQ(t->objectives.size(), 2u);
    EXPECT_TRUE(t->objectives[1].maximise);
    ASSERT_EQ(t->constraints.size(), 1u);
    how.method = "grid";
    EXPECT_TRUE(::sweepFromForm(form, w.workspace(), "g", {{"train.lr", "1e-4..1e-2"}}, &err, how).isEmpty());
    EXPECT_TRUE(err.contains("a range (MIN..MAX) needs random")) << err.toStdString();
    how.method = "halving", how.points = 9;
    const QString h = ::sweepFromForm(form, w.workspace(), "h", {{"train.lr", "1e-4..1e-2 log"}}, &err, how);
    auto hs = rl::sweep_parse(h.toStdString(), "x");
    ASSERT_TRUE(hs) << hs.status.msg;
    EXPECT_EQ(hs->points.size(), 9u);
    EXPECT_EQ(hs->min_steps, std::max(1, form.train.steps / 9)) << "a ninth of the form's steps";
}

// The tuning view's rows: a sweep's seeds of one config grouped (mean, spread), the Pareto front of two
// objectives under a constraint, and the importance of the keys, from stored records.
TEST(Views, SeedsGroupAndTheFrontAndImportanceComeFromTheMeans) {
    auto cfg = rl::preset_load("tiny");
    ASSERT_TRUE(cfg);
    std::vector<rl::RunRecord> runs;
    int64_t id = 1;
    // 12 configs (lr index i) x 2 seeds: val loss 2 + 0.1 i (+0.02 on seed 2), tok/s 1000 + 100 i; dropped 0.05 for i = 11.
    for (int i = 0; i < 12; i++)
        for (int seed = 0; seed < 2; seed++) {
            rl::Config c = *cfg;
            c.train.lr = 0.001f * (i + 1), c.train.seed = 1234 + seed;
            rl::RunRecord r;
            r.id = id++, r.sweep = "s", r.config_json = rl::config_to_json(c), r.status = rl::RunStatus::finished, r.steps = 10;
            r.seed = c.train.seed;  // as the store keeps it
            r.name = "s lr=" + std::to_string(i) + " seed=" + std::to_string(1234 + seed);
            r.val_loss = 2 + 0.1f * i + 0.02f * seed, r.tok_per_s = 1000 + 100 * i, r.dropped = i == 11 ? 0.05f : 0;
            runs.push_back(r);
        }
    const RunGroups g = runGroups(runs);
    ASSERT_EQ(g.rows.size(), 12u);
    EXPECT_NEAR(g.rows[3].val_loss, 2.31, 1e-5) << "the mean of the two seeds";
    EXPECT_EQ(g.rows[3].name, "s lr=3 (2 seeds)");
    ASSERT_TRUE(g.spread.count(g.rows[3].id));
    EXPECT_NEAR(g.spread.at(g.rows[3].id).hi[0] - g.spread.at(g.rows[3].id).lo[0], 0.02, 1e-5);
    TuningState s;  // tok/s maximised across, val loss minimised up, dropped <= 0.01
    const ParetoFront pf = paretoFront(g.rows, s);
    ASSERT_TRUE(pf.ok) << pf.error;
    EXPECT_EQ(pf.front.size(), 11u) << "every feasible config trades loss for speed; the fastest drops too much";
    EXPECT_GT(pf.violation[11], 0);
    std::snprintf(s.constraint, sizeof s.constraint, "speed <= 1");
    EXPECT_FALSE(paretoFront(g.rows, s).ok);
    // A grouped row beside an ungrouped run of another seed: the seed differs in the table, and grouping drops it.
    std::vector<rl::RunRecord> mixed = g.rows;
    rl::Config other = *cfg;
    other.train.seed = 4321;
    mixed.push_back(runs.front());
    mixed.back().id = 999, mixed.back().sweep = "", mixed.back().config_json = rl::config_to_json(other);
    RunTable withSeed = runTable(mixed);
    ASSERT_NE(std::find(withSeed.keys.begin(), withSeed.keys.end(), "train.seed"), withSeed.keys.end());
    const size_t lrAt = std::find(withSeed.keys.begin(), withSeed.keys.end(), "train.lr") - withSeed.keys.begin();
    const std::string lr3 = withSeed.text[3][lrAt];
    dropTableKey(withSeed, "train.seed");
    EXPECT_EQ(std::find(withSeed.keys.begin(), withSeed.keys.end(), "train.seed"), withSeed.keys.end());
    ASSERT_EQ(withSeed.text[3].size(), withSeed.keys.size());
    ASSERT_EQ(withSeed.number[3].size(), withSeed.keys.size());
    const size_t lrNow = std::find(withSeed.keys.begin(), withSeed.keys.end(), "train.lr") - withSeed.keys.begin();
    EXPECT_EQ(withSeed.text[3][lrNow], lr3) << "the other columns keep their values";
    std::vector<std::string> keys;
    const RunTable t = runTable(g.rows);
    const std::vector<double> imp = keyImportance(g.rows, t, keys);
    ASSERT_EQ(keys, std::vector<std::string>{"train.lr"}) << "the seed is not a key of the grouped rows";
    ASSERT_EQ(imp.size(), 1u);
    EXPECT_NEAR(imp[0], 1.0, 1e-9);
    // Two configs pruned at a rung, their loss from step 3 far above the finished ones: the axes fit the finished.
    std::vector<rl::RunRecord> withPruned = g.rows;
    for (int k = 0; k < 2; k++) {
        rl::RunRecord p = g.rows[k];
        p.id = 1000 + k, p.status = rl::RunStatus::pruned, p.steps = 3, p.val_loss = 3.5f, p.tok_per_s = 5000;
        withPruned.push_back(p);
    }
    const auto [ax, ay] = scatterAxes(withPruned, s);
    EXPECT_LT(ay.hi, 3.3) << "a pruned run's rung loss does not stretch the loss axis";
    EXPECT_LT(ay.lo, 2.0);
    EXPECT_LT(ax.hi, 5000) << "nor its speed the speed axis";
    for (size_t k = 1; k < withPruned.size(); k++) withPruned[k].status = rl::RunStatus::pruned;
    EXPECT_GT(scatterAxes(withPruned, s).second.hi, 3.5) << "with fewer than two unpruned rows the axes fit all";
    runs.back().status = rl::RunStatus::pruned;
    EXPECT_EQ(runGroups(runs).rows.back().status, rl::RunStatus::pruned) << "a config with a pruned seed reads pruned";
    runs.back().status = rl::RunStatus::failed;
    EXPECT_EQ(runGroups(runs).rows.back().status, rl::RunStatus::failed) << "and one with a failed seed failed";
    runs.push_back(runs.front());  // the same config and seed again (a sweep name run twice): another row
    runs.back().id = id++;
    EXPECT_EQ(runGroups(runs).rows.size(), 13u);
}

// Run > Sweep...: values typed into the dialog's table start the sweep over the form's config.
TEST(Window, SweepDialogStartsTheSweep) {
    QTemporaryDir ws;
    MainWindow w(ws.path());
    w.selectPreset("tiny");
    ASSERT_TRUE(w.configDock()->setField("train.steps", "3"));
    QAction* sweep = nullptr;
    for (QAction* a : w.findChildren<QAction*>())
        if (a->text() == "Sweep...") sweep = a;
    ASSERT_NE(sweep, nullptr);
    int points = 0, cells = 0;
    QString shown;
    QTimer::singleShot(0, [&] {  // inside the dialog's own event loop
        auto* dlg = qobject_cast<QDialog*>(QApplication::activeModalWidget());
        ASSERT_NE(dlg, nullptr);
        dlg->findChild<QLineEdit*>("sweepName")->setText("dlg");
        auto* table = dlg->findChild<QTableWidget*>();
        for (int r = 0; r < table->rowCount(); r++) {
            const QString key = table->item(r, 0)->text();
            if (key == "train.lr") table->item(r, 2)->setText("0.001, 0.01"), cells++;
            if (key == "model.norm") table->item(r, 2)->setText("rmsnorm,layernorm"), cells++;
            EXPECT_NE(key, "data.corpus") << "a path is not swept";
        }
        for (QLabel* l : dlg->findChildren<QLabel*>())
            if (l->text().contains("points over")) shown = l->text();
        for (int r = 0; r < table->rowCount(); r++)  // a range in a grid: said as it is typed, not only on Run sweep
            if (table->item(r, 0)->text() == "train.lr") {
                table->item(r, 2)->setText("0.001..0.01");
                bool said = false;
                for (QLabel* l : dlg->findChildren<QLabel*>()) said |= l->text().contains("a grid takes lists");
                EXPECT_TRUE(said);
                table->item(r, 2)->setText("0.001, 0.01");
            }
        for (QPushButton* b : dlg->findChildren<QPushButton*>())
            if (b->text() == "Run sweep") b->click();
    });
    QObject::connect(&w.runs(), &RunController::runFinished, [&] { points++; });
    sweep->trigger();
    EXPECT_EQ(cells, 2);
    EXPECT_EQ(shown.toStdString(), "4 points over norm x lr") << "keys in the form's order";
    ASSERT_TRUE(w.sweeps().active()) << w.statusMessage().toStdString();
    int done = -1;
    QObject::connect(&w.sweeps(), &SweepRunner::finished, [&](int f, int) { done = f; });
    ASSERT_TRUE(waitFor([&] { return done >= 0; }));
    EXPECT_EQ(done, 4);
    EXPECT_EQ(points, 4);
    const auto runs = storedRuns(ws.path());
    ASSERT_EQ(runs.size(), 4u);
    for (const auto& r : runs) EXPECT_EQ(r.sweep, "dlg");
    EXPECT_EQ(runs[0].steps, 3) << "the form's train.steps";
}

// Rename, tags, colour (the overlay takes it) and the filter, from the Runs dock's API.
TEST(Window, RunsDockEditsReachTheStore) {
    QTemporaryDir ws;
    int64_t a = 0, b = 0;
    {
        auto store = rl::run_store_open(QDir(ws.path()).filePath("runs.sqlite").toStdString());
        ASSERT_TRUE(store);
        a = *rl::run_store_begin(*store, "alpha", rl::config_to_json(tiny(5)));
        b = *rl::run_store_begin(*store, "beta", rl::config_to_json(tiny(5)), rl::RunStart{"lr-sweep", {}});
        std::vector<rl::CurvePoint> pts;
        for (int i = 1; i <= 5; i++) pts.push_back({i, 3.f});
        ASSERT_TRUE(rl::run_store_append(*store, a, pts));
        ASSERT_TRUE(rl::run_store_finish(*store, a, 2.5f));
        ASSERT_TRUE(rl::run_store_end(*store, b, rl::RunStatus::failed, "config: bad"));
    }
    MainWindow w(ws.path());
    auto* list = w.findChild<QTreeWidget*>("runsList");
    ASSERT_EQ(list->topLevelItemCount(), 2);
    QTreeWidgetItem* itB = list->topLevelItem(0);  // newest first
    EXPECT_EQ(itB->text(1), "failed");
    EXPECT_EQ(itB->toolTip(1), "config: bad");
    EXPECT_EQ(itB->text(7), "lr-sweep");
    ASSERT_TRUE(w.runsDock()->renameRun(a, "alpha-2"));
    ASSERT_TRUE(w.runsDock()->setRunTags(a, " good , baseline,"));
    ASSERT_TRUE(w.runsDock()->setRunColour(a, QColor("#ff0000")));
    const rl::RunRecord r = stored(ws.path(), a);
    EXPECT_EQ(r.name, "alpha-2");
    EXPECT_EQ(r.tags, (std::vector<std::string>{"good", "baseline"}));
    EXPECT_EQ(r.colour, "#ff0000");
    QTreeWidgetItem* itA = list->topLevelItem(1);
    EXPECT_TRUE(itA->text(0).contains("alpha-2"));
    EXPECT_EQ(itA->text(8), "good, baseline");
    w.runsDock()->setOverlayTicked(a, true);
    ASSERT_EQ(w.runs().data().overlays.size(), 1u);
    EXPECT_EQ(w.runs().data().overlays[0].colour, 0xff0000ffu) << "the run's colour (ImU32, red in the low byte)";
    EXPECT_EQ(w.runs().data().overlays[0].id, a);
    w.runsDock()->setFilter("BASE");  // a tag, any case
    EXPECT_FALSE(itA->isHidden());
    EXPECT_TRUE(itB->isHidden());
    w.runsDock()->setFilter("failed");  // a status
    EXPECT_TRUE(itA->isHidden());
    EXPECT_FALSE(itB->isHidden());
    w.runsDock()->setFilter("lr-sw");  // a sweep
    EXPECT_FALSE(itB->isHidden());
    w.runsDock()->setFilter("");
    EXPECT_FALSE(itA->isHidden());
    // A run written by another process (a CLI) shows up at the next refresh; ticks and selection stay.
    itA->setSelected(true);
    {
        auto store = rl::run_store_open(QDir(ws.path()).filePath("runs.sqlite").toStdString());
        ASSERT_TRUE(rl::run_store_begin(*store, "from-cli", rl::config_to_json(tiny(5))));
    }
    w.runsDock()->refresh();
    ASSERT_EQ(list->topLevelItemCount(), 3);
    EXPECT_TRUE(list->topLevelItem(0)->text(0).contains("from-cli"));
    EXPECT_TRUE(itA->isSelected());
    EXPECT_EQ(itA->checkState(0), Qt::Checked);
    EXPECT_EQ(w.runs().data().runs.size(), 3u);
}

// The comparison table of selected runs: status, metrics and only the keys that differ, as CSV and Markdown.
TEST(Window, ComparisonTableHasTheKeysThatDiffer) {
    QTemporaryDir ws;
    QList<qint64> ids;
    {
        auto store = rl::run_store_open(QDir(ws.path()).filePath("runs.sqlite").toStdString());
        const float lrs[] = {0.001f, 0.003f, 0.003f};
        const float aux[] = {0.01f, 0.01f, 0.1f};
        for (int i = 0; i < 3; i++) {
            auto c = tiny(5);
            c.train.lr = lrs[i];
            c.model.moe.aux_weight = aux[i];
            auto id = rl::run_store_begin(*store, "run" + std::to_string(i), rl::config_to_json(c), rl::RunStart{"s", {}});
            ASSERT_TRUE(id);
            std::vector<rl::CurvePoint> pts;
            for (int k = 1; k <= 5; k++) pts.push_back({k, 3.f + i});
            ASSERT_TRUE(rl::run_store_append(*store, *id, pts));
            ASSERT_TRUE(rl::run_store_finish(*store, *id, 2.f + i));
            ids << *id;
        }
    }
    MainWindow w(ws.path());
    const QString csv = w.runsDock()->comparisonTable(ids, false);
    const QStringList lines = csv.split('\n', Qt::SkipEmptyParts);
    ASSERT_EQ(lines.size(), 4);
    EXPECT_EQ(lines[0], "id,name,status,steps,final_loss,val_loss,load_cv,head_cv,dropped,tok_per_s,model.moe.aux_weight,train.lr");
    EXPECT_EQ(lines[1].section(',', 0, 9), QString("%1,run0,finished,5,3,2,,,,0").arg(ids[0]));
    EXPECT_TRUE(lines[1].endsWith(",0.01,0.001")) << lines[1].toStdString();
    EXPECT_TRUE(lines[3].endsWith(",0.1,0.003")) << lines[3].toStdString();
    EXPECT_FALSE(csv.contains("d_model")) << "a key all runs share is no column";
    const QString md = w.runsDock()->comparisonTable(ids, true);
    EXPECT_TRUE(md.startsWith("| id | name | status | steps |")) << md.toStdString();
    EXPECT_TRUE(md.contains("| model.moe.aux_weight | train.lr |"));
    EXPECT_TRUE(md.contains("\n| --- |"));
    // tiny has no routers: their balance metrics are blank, not the 0 the store keeps; tok/s was never measured (0)
    EXPECT_TRUE(md.contains("| run2 | finished | 5 | 5 | 4 | - | - | - | 0 |")) << md.toStdString();
    const QString mdFile = QDir(ws.path()).filePath("table.markdown"), csvFile = QDir(ws.path()).filePath("t.csv");
    ASSERT_TRUE(w.runsDock()->exportComparison(ids, mdFile));
    ASSERT_TRUE(w.runsDock()->exportComparison(ids.mid(0, 2), csvFile));
    QFile m(mdFile), c(csvFile);
    ASSERT_TRUE(m.open(QIODevice::ReadOnly) && c.open(QIODevice::ReadOnly));
    EXPECT_EQ(QString::fromUtf8(m.readAll()), md);
    const QString two = QString::fromUtf8(c.readAll());
    EXPECT_TRUE(two.contains(",train.lr\n")) << "between runs 0 and 1 only the lr differs: " << two.toStdString();
    EXPECT_FALSE(two.contains("aux_weight"));
}

// The table the tuning view and the export share.
TEST(Views, RunTableKeepsOnlyDifferingKeys) {
    std::vector<rl::RunRecord> runs(2);
    runs[0].config_json = R"({"name": "a", "model": {"norm": "rmsnorm", "d": 1}, "train": {"lr": 0.0010000000474974513}})";
    runs[1].config_json = R"({"name": "b", "model": {"norm": "layernorm", "d": 1}, "train": {"lr": 0.003}, "extra": true})";
    const RunTable t = runTable(runs);
    ASSERT_EQ(t.keys, (std::vector<std::string>{"extra", "model.norm", "train.lr"}));
    EXPECT_EQ(t.numeric, (std::vector<bool>{false, false, true}));
    EXPECT_EQ(t.text[0][2], "0.001") << "floats as people write them";
    EXPECT_EQ(t.text[0][0], "") << "absent";
    EXPECT_EQ(t.text[1][0], "true");
    EXPECT_EQ(t.text[1][1], "layernorm");
    EXPECT_DOUBLE_EQ(t.number[1][2], 0.003);
    EXPECT_TRUE(std::isnan(t.number[0][1]));
    EXPECT_TRUE(runTable({runs[0]}).keys.empty()) << "one run differs from nothing";
    rl::RunRecord empty;
    empty.config_json = "{}";  // the CLI's failed point without a config
    EXPECT_EQ(runTable({runs[0], runs[1], empty}).keys, t.keys) << "a run without a config makes no key differ";
    EXPECT_EQ(t.routedExperts, (std::vector<bool>{false, false})) << "moe.kind left out: dense";
    runs[1].config_json = R"({"model": {"moe": {"kind": "moe"}, "attention": {"heads": {"kind": "moh"}}}})";
    const RunTable r = runTable(runs);
    EXPECT_EQ(r.routedExperts, (std::vector<bool>{false, true}));
    EXPECT_EQ(r.routedHeads, (std::vector<bool>{false, true}));
}
