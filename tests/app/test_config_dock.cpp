// Offscreen widget tests of the config dock: an invalid value shows its message and blocks
// Retrain; a live lr edit reaches the running trainer and shows in its StepStats.
#include <gtest/gtest.h>

#include <QApplication>
#include <QElapsedTimer>
#include <QLabel>
#include <QComboBox>
#include <QLineEdit>
#include <QSpinBox>
#include <QThread>
#include <cstdlib>

#include "config/presets.h"
#include "config_dock.h"
#include "session.h"

TEST(ConfigDock, InvalidValueShowsItsMessageAndBlocksRetrain) {
    ConfigDock dock;
    dock.setConfig(*rl::preset_load("seed-moh"));
    EXPECT_TRUE(dock.retrainAllowed());
    int flips = 0;
    QObject::connect(&dock, &ConfigDock::validityChanged, [&](bool) { flips++; });
    ASSERT_TRUE(dock.setField("model.n_kv_heads", "3"));
    EXPECT_FALSE(dock.retrainAllowed());
    EXPECT_TRUE(dock.message().contains("'model.n_kv_heads' must divide n_heads")) << dock.message().toStdString();
    ASSERT_TRUE(dock.setField("model.n_kv_heads", "4"));
    EXPECT_TRUE(dock.retrainAllowed());
    EXPECT_TRUE(dock.message().isEmpty());
    EXPECT_EQ(flips, 2);
    // An enum is a drop-down of its allowed values: a typo cannot be entered.
    EXPECT_FALSE(dock.setField("model.attention.heads.gate_scaling", "offical"));
    ASSERT_TRUE(dock.setField("model.attention.heads.gate_scaling", "paper"));
    EXPECT_EQ(dock.config()->model.attention.heads.gate_scaling, rl::GateScaling::paper);
    dock.setField("model.attention.heads.gate_scaling", "official");
    // K = 1 is allowed but warned about.
    dock.setField("model.attention.heads.n_active_routed", "1");
    EXPECT_TRUE(dock.retrainAllowed());
    EXPECT_TRUE(dock.message().startsWith("warning:")) << dock.message().toStdString();
    // Every key of the config has a field.
    auto cfg = dock.config();
    ASSERT_TRUE(cfg.is_ok());
    EXPECT_EQ(cfg->model.attention.heads.n_active_routed, 1);
}

TEST(ConfigDock, LiveLrEditReachesTheTrainer) {
    auto cfg = *rl::preset_load("tiny");
    cfg.train.steps = 100000;
    cfg.train.warmup_steps = 0;
    Session session;
    ASSERT_TRUE(session.start(cfg).is_ok());
    ConfigDock dock;
    dock.setConfig(cfg);
    dock.setLiveSink([&](const rl::LiveCommand& c) { session.send(c); });
    rl::StepStats st;
    QElapsedTimer t;
    t.start();
    float before = 0;
    while (t.elapsed() < 20000 && before == 0) {
        if (session.pollStats(st)) before = st.lr;
        QThread::msleep(1);
    }
    ASSERT_GT(before, 1e-3f);  // tiny's lr is 5e-3
    dock.setField("train.lr", "0.001");  // tiny: 5e-3 -> 1e-3 (min_lr 5e-4 still below it)
    EXPECT_TRUE(dock.retrainAllowed()) << dock.message().toStdString();
    bool seen = false;
    while (t.elapsed() < 20000 && !seen) {
        if (session.pollStats(st) && st.lr < 1.5e-3f) seen = true;
        QThread::msleep(1);
    }
    session.stop();
    EXPECT_TRUE(seen) << "no StepStats with the new lr";
    EXPECT_NEAR(st.lr, 1e-3f, 1e-5f);
}

TEST(ConfigDock, MarksAndSendsExactlyTheCoresLiveKeys) {
    ConfigDock dock;
    dock.setConfig(*rl::preset_load("moh-moe"));
    std::vector<rl::LiveCommand> sent;
    dock.setLiveSink([&](const rl::LiveCommand& c) { sent.push_back(c); });
    for (rl::LiveKey k : rl::live_keys()) {
        sent.clear();
        ASSERT_TRUE(dock.setField(QString::fromStdString(rl::live_key_name(k)), "0.5")) << rl::live_key_name(k);
        ASSERT_EQ(sent.size(), 1u) << rl::live_key_name(k) << ": " << dock.message().toStdString();
        EXPECT_EQ(sent[0].key, k);
        EXPECT_FLOAT_EQ(sent[0].value, 0.5f);
    }
    sent.clear();
    ASSERT_TRUE(dock.setField("model.moe.top_k", "1"));
    EXPECT_TRUE(sent.empty()) << "a key that is not live is not sent";
    int marked = 0;
    for (QLabel* l : dock.findChildren<QLabel*>())
        if (l->text().endsWith(" (live)")) marked++;
    EXPECT_EQ(marked, (int)rl::live_keys().size());
}

int main(int argc, char** argv) {
    setenv("QT_QPA_PLATFORM", "offscreen", 1);
    QApplication app(argc, argv);
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}

// Enum keys are drop-downs of exactly the config's allowed values, integers are spin boxes, and
// labels say which block a key belongs to (heads.kind, moe.kind and window.kind are three keys).
TEST(ConfigDock, EnumsAreDropDownsIntegersSpinBoxesAndLabelsNameTheirBlock) {
    ConfigDock dock;
    dock.setConfig(*rl::preset_load("moh-moe"));
    auto* routing = dock.findChild<QComboBox*>("model.moe.routing");
    ASSERT_NE(routing, nullptr);
    QStringList items;
    for (int i = 0; i < routing->count(); i++) items << routing->itemText(i);
    EXPECT_EQ(items, (QStringList{"topk", "top1_capacity", "noisy_topk", "expert_choice"}));
    for (const char* k : {"model.attention.heads.kind", "model.moe.kind", "model.attention.window.kind", "model.attention.positional",
                          "model.moe.score_function", "data.tokenizer"})
        EXPECT_NE(dock.findChild<QComboBox*>(k), nullptr) << k;
    auto* heads = dock.findChild<QSpinBox*>("model.n_heads");
    ASSERT_NE(heads, nullptr);
    EXPECT_EQ(heads->value(), 8);
    ASSERT_TRUE(dock.setField("model.moe.routing", "expert_choice"));
    EXPECT_EQ(dock.config()->model.moe.routing, rl::MoeRouting::expert_choice);
    QStringList labels;
    for (QLabel* l : dock.findChildren<QLabel*>()) labels << l->text();
    for (const char* want : {"heads.kind", "moe.kind", "window.kind", "moe.n_heads", "n_heads"})
        EXPECT_TRUE(labels.contains(want)) << want << " in " << labels.join(", ").toStdString();
    EXPECT_FALSE(labels.contains("kind")) << "no bare 'kind'";
}

// The form shows what training its config holds, live, and a config too large for this machine is
// refused like an invalid value: the message names the estimate and the keys to lower, Train and
// Retrain are blocked, and shrinking it back lets them go again (train/memory.h).
TEST(ConfigDock, MemoryEstimateIsLiveAndTooLargeBlocksTrain) {
    ConfigDock dock;
    bool valid = true;
    QObject::connect(&dock, &ConfigDock::validityChanged, [&](bool ok) { valid = ok; });
    dock.setConfig(*rl::preset_load("tiny"));
    EXPECT_TRUE(dock.retrainAllowed());
    EXPECT_TRUE(dock.memoryText().startsWith("memory to train: ")) << dock.memoryText().toStdString();
    EXPECT_TRUE(dock.memoryText().contains(" MiB of ")) << dock.memoryText().toStdString();
    const QString small = dock.memoryText();
    ASSERT_TRUE(dock.setField("model.d_model", "8192"));
    ASSERT_TRUE(dock.setField("model.head_dim", "1024"));
    ASSERT_TRUE(dock.setField("model.ffn.d_ff", "65536"));
    EXPECT_FALSE(dock.retrainAllowed());
    EXPECT_FALSE(valid);
    EXPECT_TRUE(dock.message().startsWith("this config needs ")) << dock.message().toStdString();
    EXPECT_TRUE(dock.message().contains("lower model.d_model")) << dock.message().toStdString();
    EXPECT_TRUE(dock.memoryText().contains(" GiB of ")) << dock.memoryText().toStdString();
    ASSERT_TRUE(dock.setField("model.ffn.d_ff", "64"));  // back to tiny's
    ASSERT_TRUE(dock.setField("model.head_dim", "8"));
    ASSERT_TRUE(dock.setField("model.d_model", "32"));
    EXPECT_TRUE(dock.retrainAllowed()) << dock.message().toStdString();
    EXPECT_TRUE(valid);
    // The estimate is back to the small one; the memory available beside it moves with the machine.
    EXPECT_EQ(dock.memoryText().section(" of ", 0, 0), small.section(" of ", 0, 0)) << dock.memoryText().toStdString();
}

// An opened model folder's settings (terabytes to train at the form's batch) are shown without the
// training-memory refusal; an edit makes the form a run to train, and the check is back.
TEST(ConfigDock, ModelFolderSettingsAreNotRefusedForTrainingMemory) {
    ConfigDock dock;
    bool valid = true;
    QObject::connect(&dock, &ConfigDock::validityChanged, [&](bool ok) { valid = ok; });
    rl::Config big = *rl::preset_load("tiny");
    big.model.d_model = 8192, big.model.head_dim = 1024, big.model.ffn.d_ff = 65536;
    dock.setModelConfig(big);
    EXPECT_TRUE(valid);
    EXPECT_TRUE(dock.message().isEmpty()) << dock.message().toStdString();
    EXPECT_TRUE(dock.memoryText().startsWith("an opened model folder")) << dock.memoryText().toStdString();
    ASSERT_TRUE(dock.setField("model.n_layers", "3"));
    EXPECT_FALSE(valid);
    EXPECT_TRUE(dock.message().startsWith("this config needs ")) << dock.message().toStdString();
    dock.setConfig(big);  // the same settings from a file: the check applies
    EXPECT_FALSE(dock.retrainAllowed());
}
