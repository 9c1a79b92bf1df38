// Offscreen tests of tuning in the window (docs/architecture.md §13): each run's status in the store
// as the window ends it (finished, replaced, closed, failed), Continue in the same row and from a
// checkpoint after a restart, the sweep queue, the Runs dock's edits and the comparison table.
#include <gtest/gtest.h>

#include <QApplication>
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QTemporaryDir>
#include <QAction>
#include <QDialog>
#include <QLineEdit>
#include <QPushButton>
#include <QTableWidget>
#include <QThread>
#include <QTimer>
#include <QTreeWidget>

#include "config/presets.h"
#include "infer/generate.h"
#include "io/checkpoint.h"
#include "io/resume.h"
#include "main_window.h"
#include "stored_run.h"
#include "wait_for.h"
#include "run_table.h"

namespace {

std::vector<rl::RunRecord> storedRuns(const QString& ws) {
    auto store = rl::run_store_open(QDir(ws).filePath("runs.sqlite").toStdString());
    auto l = rl::run_store_list(*store);
    return l ? *l : std::vector<rl::RunRecord>{};
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
        replaced = w.currentRunId();
        ASSERT_TRUE(waitFor([&] { return w.lastStep() >= 3; }));
        EXPECT_EQ(stored(ws.path(), replaced).status, rl::RunStatus::running);
        bool done = false;
        QObject::connect(&w, &MainWindow::runFinished, [&] { done = true; });
        ASSERT_TRUE(w.startRun(tiny(6)));
        finished = w.currentRunId();
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
        closed = w.currentRunId();
        ASSERT_TRUE(waitFor([&] { return w.lastStep() >= 2; }));
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
        dropped = w.currentRunId();
        ASSERT_TRUE(waitFor([&] { return w.lastStep() >= 1; }));
    }
    EXPECT_EQ(stored(ws.path(), dropped).status, rl::RunStatus::interrupted);
}

// A NaN loss (--inject-nan-at): the step is not applied, the run is stored failed naming the step,
// the window says so, and the weights of the step before are saved as the run's checkpoint, finite,
// loadable and able to generate.
TEST(Window, NonFiniteStepFailsTheRunAndKeepsTheLastGoodWeights) {
    QTemporaryDir ws;
    MainWindow w(ws.path());
    w.session().setInjectNanAt(5);
    QString said, saved;
    QObject::connect(&w, &MainWindow::runFailed, [&](const QString& m) { said = m; });
    QObject::connect(&w, &MainWindow::checkpointSaved, [&](const QString& p) { saved = p; });
    ASSERT_TRUE(w.startRun(tiny(100000)));
    const int64_t id = w.currentRunId();
    ASSERT_TRUE(waitFor([&] { return !said.isEmpty() && !saved.isEmpty(); }));
    EXPECT_TRUE(said.startsWith("step 5: the loss is NaN; training stopped with the weights of step 4, saved to ")) << said.toStdString();
    EXPECT_TRUE(w.statusMessage().startsWith("step 5: the loss is NaN")) << w.statusMessage().toStdString();
    EXPECT_EQ(w.lastStep(), 4) << "the refused step never reached the window";
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

TEST(Window, SweepGoesOnAfterAFailedRunAndStops) {
    QTemporaryDir ws;
    MainWindow w(ws.path());
    int finished = -1, failed = -1;
    QObject::connect(&w, &MainWindow::sweepFinished, [&](int f, int x) { finished = f, failed = x; });
    ASSERT_TRUE(w.startSweep(R"({"name": "f", "preset": "tiny", "grid": {"train.steps": [100000, 3]}})", "f"));
    const int64_t first = w.currentRunId();
    ASSERT_TRUE(waitFor([&] { return w.lastStep() >= 2; }));
    emit w.session().failed("step 2: the loss is NaN", 1);  // what Session sends on a non-finite step
    ASSERT_TRUE(waitFor([&] { return finished >= 0; }));
    EXPECT_EQ(finished, 1);
    EXPECT_EQ(failed, 1);
    EXPECT_EQ(stored(ws.path(), first).status, rl::RunStatus::failed);
    EXPECT_EQ(stored(ws.path(), w.currentRunId()).status, rl::RunStatus::finished);

    ASSERT_TRUE(w.startSweep(R"({"name": "g", "preset": "tiny", "grid": {"train.steps": [100000, 3]}})", "g"));
    const int64_t point = w.currentRunId();
    ASSERT_TRUE(waitFor([&] { return w.lastStep() >= 1; }));
    w.stopSweep();
    EXPECT_FALSE(w.sweepActive());
    const rl::RunRecord r = stored(ws.path(), point);
    EXPECT_EQ(r.status, rl::RunStatus::interrupted);
    EXPECT_EQ(r.status_message.rfind("the sweep was stopped at step ", 0), 0u) << r.status_message;
    EXPECT_EQ(storedRuns(ws.path()).size(), 3u) << "the second point of g never started";
}

// The Sweep dialog's JSON: the form's config as the base, the picked keys as the grid, values checked.
TEST(Window, SweepFromTheFormBuildsTheGrid) {
    QTemporaryDir ws;
    MainWindow w(ws.path());
    w.selectPreset("tiny");
    QString err;
    EXPECT_TRUE(w.sweepFromForm("s", {{"train.lr", "0.001, fast"}}, &err).isEmpty());
    EXPECT_TRUE(err.contains("'fast' is not a number")) << err.toStdString();
    EXPECT_TRUE(w.sweepFromForm("s", {{"model.nope", "1"}}, &err).isEmpty());
    const QString json = w.sweepFromForm("lr-norm", {{"train.lr", "0.001, 0.003"}, {"model.norm", "rmsnorm, layernorm"}}, &err);
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
        for (QPushButton* b : dlg->findChildren<QPushButton*>())
            if (b->text() == "Run sweep") b->click();
    });
    QObject::connect(&w, &MainWindow::runFinished, [&] { points++; });
    sweep->trigger();
    EXPECT_EQ(cells, 2);
    EXPECT_EQ(shown.toStdString(), "4 points over norm x lr") << "keys in the form's order";
    ASSERT_TRUE(w.sweepActive()) << w.statusMessage().toStdString();
    int done = -1;
    QObject::connect(&w, &MainWindow::sweepFinished, [&](int f, int) { done = f; });
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
    ASSERT_TRUE(w.renameRun(a, "alpha-2"));
    ASSERT_TRUE(w.setRunTags(a, " good , baseline,"));
    ASSERT_TRUE(w.setRunColour(a, QColor("#ff0000")));
    const rl::RunRecord r = stored(ws.path(), a);
    EXPECT_EQ(r.name, "alpha-2");
    EXPECT_EQ(r.tags, (std::vector<std::string>{"good", "baseline"}));
    EXPECT_EQ(r.colour, "#ff0000");
    QTreeWidgetItem* itA = list->topLevelItem(1);
    EXPECT_TRUE(itA->text(0).contains("alpha-2"));
    EXPECT_EQ(itA->text(8), "good, baseline");
    w.setOverlayTicked(a, true);
    ASSERT_EQ(w.runData().overlays.size(), 1u);
    EXPECT_EQ(w.runData().overlays[0].colour, 0xff0000ffu) << "the run's colour (ImU32, red in the low byte)";
    EXPECT_EQ(w.runData().overlays[0].id, a);
    w.setRunsFilter("BASE");  // a tag, any case
    EXPECT_FALSE(itA->isHidden());
    EXPECT_TRUE(itB->isHidden());
    w.setRunsFilter("failed");  // a status
    EXPECT_TRUE(itA->isHidden());
    EXPECT_FALSE(itB->isHidden());
    w.setRunsFilter("lr-sw");  // a sweep
    EXPECT_FALSE(itB->isHidden());
    w.setRunsFilter("");
    EXPECT_FALSE(itA->isHidden());
    // A run written by another process (a CLI) shows up at the next refresh; ticks and selection stay.
    itA->setSelected(true);
    {
        auto store = rl::run_store_open(QDir(ws.path()).filePath("runs.sqlite").toStdString());
        ASSERT_TRUE(rl::run_store_begin(*store, "from-cli", rl::config_to_json(tiny(5))));
    }
    w.refreshRuns();
    ASSERT_EQ(list->topLevelItemCount(), 3);
    EXPECT_TRUE(list->topLevelItem(0)->text(0).contains("from-cli"));
    EXPECT_TRUE(itA->isSelected());
    EXPECT_EQ(itA->checkState(0), Qt::Checked);
    EXPECT_EQ(w.runData().runs.size(), 3u);
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
    const QString csv = w.comparisonTable(ids, false);
    const QStringList lines = csv.split('\n', Qt::SkipEmptyParts);
    ASSERT_EQ(lines.size(), 4);
    EXPECT_EQ(lines[0], "id,name,status,steps,final_loss,val_loss,load_cv,head_cv,dropped,tok_per_s,model.moe.aux_weight,train.lr");
    EXPECT_EQ(lines[1].section(',', 0, 9), QString("%1,run0,finished,5,3,2,,,,0").arg(ids[0]));
    EXPECT_TRUE(lines[1].endsWith(",0.01,0.001")) << lines[1].toStdString();
    EXPECT_TRUE(lines[3].endsWith(",0.1,0.003")) << lines[3].toStdString();
    EXPECT_FALSE(csv.contains("d_model")) << "a key all runs share is no column";
    const QString md = w.comparisonTable(ids, true);
    EXPECT_TRUE(md.startsWith("| id | name | status | steps |")) << md.toStdString();
    EXPECT_TRUE(md.contains("| model.moe.aux_weight | train.lr |"));
    EXPECT_TRUE(md.contains("\n| --- |"));
    // tiny has no routers: their balance metrics are blank, not the 0 the store keeps; tok/s was never measured (0)
    EXPECT_TRUE(md.contains("| run2 | finished | 5 | 5 | 4 | - | - | - | 0 |")) << md.toStdString();
    const QString mdFile = QDir(ws.path()).filePath("table.markdown"), csvFile = QDir(ws.path()).filePath("t.csv");
    ASSERT_TRUE(w.exportComparison(ids, mdFile));
    ASSERT_TRUE(w.exportComparison(ids.mid(0, 2), csvFile));
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
