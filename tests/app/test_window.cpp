// Offscreen tests of the window's Qt parts: a form saved as a preset that loads back, runs, sweeps,
// checkpoints and the docks (the session protocol alone: test_session.cpp).
#include <gtest/gtest.h>

#include <QApplication>
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QTemporaryDir>
#include <QThread>
#include <QTimer>
#include <QTreeWidget>

#include "backend/device.h"
#include "config/presets.h"
#include "main_window.h"
#include "wait_for.h"
#include "session.h"
#include "train/corpus.h"


TEST(Window, FormSavedAsPresetLoadsBack) {
    QTemporaryDir ws;
    MainWindow w(ws.path());
    w.selectPreset("seed-moh");
    ASSERT_TRUE(w.configDock()->setField("model.attention.heads.beta", "0.05"));
    EXPECT_FALSE(w.savePresetAs("bad name!"));
    EXPECT_TRUE(w.statusMessage().contains("letters, digits")) << w.statusMessage().toStdString();
    ASSERT_TRUE(w.savePresetAs("my-moh")) << w.statusMessage().toStdString();
    EXPECT_TRUE(QFile::exists(QDir(ws.path()).filePath("presets/my-moh.json")));
    ASSERT_TRUE(w.presetNames().contains("my-moh (yours)"));
    w.selectPreset("default");  // the form changes...
    EXPECT_NE(w.configDock()->config()->name, "my-moh");
    w.selectPreset("my-moh (yours)");  // ...and the saved preset brings the edit back
    auto cfg = w.configDock()->config();
    ASSERT_TRUE(cfg.is_ok()) << cfg.status.msg;
    EXPECT_EQ(cfg->name, "my-moh");
    EXPECT_FLOAT_EQ(cfg->model.attention.heads.beta, 0.05f);
    // A second window on the same workspace lists it too.
    MainWindow w2(ws.path());
    EXPECT_TRUE(w2.presetNames().contains("my-moh (yours)"));
}

// Runs stored in the workspace appear in the Runs dock; ticking one overlays its curve in the views' data.
TEST(Window, TickedRunIsOverlaid) {
    QTemporaryDir ws;
    {
        auto store = rl::run_store_open(QDir(ws.path()).filePath("runs.sqlite").toStdString());
        ASSERT_TRUE(store);
        auto id = rl::run_store_begin(*store, "earlier-run", rl::config_to_json(*rl::preset_load("seed-moh")));
        ASSERT_TRUE(id);
        std::vector<rl::CurvePoint> pts;
        for (int i = 1; i <= 25; i++) pts.push_back({i, 4.f - 0.1f * i});
        ASSERT_TRUE(rl::run_store_append(*store, *id, pts));
    }
    MainWindow w(ws.path());
    auto* list = w.findChild<QTreeWidget*>("runsList");
    ASSERT_NE(list, nullptr);
    ASSERT_EQ(list->topLevelItemCount(), 1);
    QTreeWidgetItem* it = list->topLevelItem(0);
    EXPECT_TRUE(it->text(0).contains("earlier-run"));
    EXPECT_EQ(it->text(2), "25");  // steps (after run, status)
    EXPECT_TRUE(w.runs().data().overlays.empty());
    it->setCheckState(0, Qt::Checked);
    ASSERT_EQ(w.runs().data().overlays.size(), 1u);
    EXPECT_EQ(w.runs().data().overlays[0].curve.size(), 25u);
    EXPECT_FLOAT_EQ(w.runs().data().overlays[0].curve[9].loss, 3.f);
    it->setCheckState(0, Qt::Unchecked);
    EXPECT_TRUE(w.runs().data().overlays.empty());
}

// Retrain with a config that cannot build a run (missing corpus): the message says what to fix and
// the run in progress keeps training.
TEST(Window, FailedRetrainLeavesTheRunGoing) {
    QTemporaryDir ws;
    MainWindow w(ws.path());
    auto cfg = *rl::preset_load("tiny");
    cfg.train.steps = 100000;
    ASSERT_TRUE(w.startRun(cfg)) << w.statusMessage().toStdString();
    ASSERT_TRUE(waitFor([&] { return w.runs().lastStep() > 0; }));  // the window polls on its timer inside waitFor
    auto bad = cfg;
    bad.data.corpus = "/nonexistent/corpus.txt";
    EXPECT_FALSE(w.startRun(bad));
    EXPECT_TRUE(w.statusMessage().contains("/nonexistent/corpus.txt")) << w.statusMessage().toStdString();
    EXPECT_TRUE(w.runs().session().running());
    const int before = w.runs().lastStep();
    ASSERT_TRUE(waitFor([&] { return w.runs().lastStep() > before; }));  // still training, still polled
    w.runs().session().stop();
}

// train.device: a cuda run this machine cannot give is refused with what to do, the current run goes
// on; auto says once, on the window's first run, where it trains and why.
TEST(Window, DeviceIsNamedAndAutoExplainsItselfOnce) {
    QTemporaryDir ws;
    MainWindow w(ws.path());
    auto cfg = *rl::preset_load("tiny");
    cfg.train.steps = 100000;
    cfg.train.device = rl::DeviceKind::automatic;
    const auto choice = rl::device_select(cfg.train.device);
    ASSERT_TRUE(choice.is_ok());
    ASSERT_TRUE(w.startRun(cfg)) << w.statusMessage().toStdString();
    if (choice->ops == &rl::ops_cpu()) {  // no usable GPU (every machine until CUDA kernels exist)
        EXPECT_TRUE(w.statusMessage().startsWith("training tiny on the CPU (device auto: "))
            << w.statusMessage().toStdString();
        EXPECT_TRUE(w.statusMessage().contains(QString::fromStdString(rl::cuda_probe().error)));
        auto cuda = cfg;
        cuda.train.device = rl::DeviceKind::cuda;
        EXPECT_FALSE(w.startRun(cuda));
        EXPECT_TRUE(w.statusMessage().contains("'train.device' is \"cuda\"")) << w.statusMessage().toStdString();
        EXPECT_TRUE(w.runs().session().running()) << "the run in progress goes on";
    }
    ASSERT_TRUE(w.startRun(cfg)) << w.statusMessage().toStdString();
    EXPECT_FALSE(w.statusMessage().contains("device auto")) << "said once: " << w.statusMessage().toStdString();
    EXPECT_TRUE(w.statusMessage().startsWith("training tiny on the ")) << w.statusMessage().toStdString();
    w.runs().session().stop();
}

// File > Export: the running model's routing as Megatron-Core arguments and a Hugging Face folder,
// through a checkpoint the trainer writes (the window never reads the trainer's model).
TEST(Window, ExportsTheRunsRoutingThroughACheckpoint) {
    QTemporaryDir ws;
    MainWindow w(ws.path());
    auto cfg = *rl::preset_load("tiny");
    cfg.model.moe.kind = rl::FfnRouting::moe;
    cfg.model.moe.n_experts = 4;
    cfg.model.moe.d_ff_expert = 16;
    cfg.model.moe.score_function = rl::ScoreFunction::sigmoid;
    cfg.model.moe.expert_bias = true;
    cfg.train.steps = 100000;
    ASSERT_TRUE(w.startRun(cfg)) << w.statusMessage().toStdString();
    ASSERT_TRUE(waitFor([&] { return w.runs().lastStep() > 0; }));
    QString done;
    QObject::connect(&w.exports(), &Exports::finished, [&](const QString& m) { done = m; });
    const QString args = QDir(ws.path()).filePath("megatron.txt");
    w.exports().exportRouting(args, "megatron");
    ASSERT_TRUE(waitFor([&] { return !done.isEmpty(); })) << w.statusMessage().toStdString();
    EXPECT_TRUE(done.contains("wrote")) << done.toStdString();
    QFile f(args);
    ASSERT_TRUE(f.open(QIODevice::ReadOnly));
    const QString text = f.readAll();
    EXPECT_TRUE(text.contains("--moe-router-enable-expert-bias\n")) << text.toStdString();
    EXPECT_TRUE(text.contains("--moe-router-score-function sigmoid\n")) << text.toStdString();
    done.clear();
    const QString dir = QDir(ws.path()).filePath("hf");
    w.exports().exportRouting(dir, "hf-weights");
    ASSERT_TRUE(waitFor([&] { return !done.isEmpty(); }));
    EXPECT_TRUE(QFile::exists(QDir(dir).filePath("config.json"))) << done.toStdString();
    EXPECT_TRUE(done.contains("weights not written")) << "sigmoid + bias has no exact weight mapping: " << done.toStdString();
    w.runs().session().stop();
}

// A file corpus is tokenized on a thread of its own behind a progress dialog (architecture §8): the
// run starts, the window went through the stages (SentencePiece for a file over 200 KB), and its
// event loop kept running meanwhile (a timer fired during the preparation).
TEST(Window, FileCorpusIsPreparedBehindAProgressDialog) {
    QTemporaryDir ws;
    const QString path = ws.filePath("corpus.txt");
    {
        QFile f(path);
        ASSERT_TRUE(f.open(QIODevice::WriteOnly));
        qint64 bytes = 0;
        for (unsigned seed = 1; bytes < 260000; seed++)
            for (const rl::Document& d : rl::corpus_embedded(200, seed)) bytes += f.write((d.text + "\n").c_str());
    }
    MainWindow w(ws.path());
    auto cfg = *rl::preset_load("tiny");
    cfg.data.corpus = path.toStdString();
    cfg.train.steps = 3;
    int ticks = 0;
    QTimer tick;
    QObject::connect(&tick, &QTimer::timeout, [&] { ticks++; });
    tick.start(20);
    ASSERT_TRUE(w.startRun(cfg)) << w.statusMessage().toStdString();
    tick.stop();
    const QStringList& stages = w.prepareStages();
    ASSERT_GE(stages.size(), 4) << stages.join("; ").toStdString();
    EXPECT_TRUE(stages[1].startsWith("training the bpe tokenizer")) << stages.join("; ").toStdString();
    EXPECT_EQ(stages.back(), "building the model");
    EXPECT_GT(ticks, 0) << "the window's event loop stood still while the text was tokenized";
    ASSERT_TRUE(waitFor([&] { return w.runs().lastStep() >= 3; }));
    w.runs().session().stop();
    // The embedded corpus is prepared at once, with no dialog and no stages.
    cfg.data.corpus = "embedded";
    ASSERT_TRUE(w.startRun(cfg));
    EXPECT_TRUE(w.prepareStages().isEmpty());
    w.runs().session().stop();
}
