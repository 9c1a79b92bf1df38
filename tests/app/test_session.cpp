// The session protocol offscreen: requests served on the trainer thread after the last step
// (generation, probe text) and errors that come back as messages. Also built, with the config dock's
// tests, as routelab_session_tests in sanitizer builds (scripts/tsan.sh runs them under ThreadSanitizer
// without compiling the whole window).
#include <gtest/gtest.h>

#include <QApplication>
#include <QElapsedTimer>
#include <QFile>
#include <QTemporaryDir>
#include <QThread>

#include "backend/device.h"
#include "config/presets.h"
#include "session.h"
#include "train/corpus.h"
#include "wait_for.h"

TEST(Session, ServesGenerationAndProbeTextAfterTheLastStep) {
    auto cfg = *rl::preset_load("seed-moh");
    cfg.train.steps = 8;
    Session s;
    bool finished = false, generated = false;
    float val = 0;
    QObject::connect(&s, &Session::finished, [&](int, float v) { finished = true, val = v; });
    QObject::connect(&s, &Session::generated, [&] { generated = true; });
    ASSERT_TRUE(s.start(cfg).is_ok());
    ASSERT_TRUE(waitFor([&] { return finished; }));
    EXPECT_GT(val, 0.f);
    EXPECT_FALSE(s.running());
    EXPECT_TRUE(s.active());  // the thread stays up to serve requests
    GenerateRequest r;
    r.prompt = "User: What is";
    r.maxNew = 12;
    r.sample.temperature = 0;  // greedy: deterministic
    s.requestGenerate(r);
    ASSERT_TRUE(waitFor([&] { return generated; }));
    GenerateResult g = s.takeGeneration();
    EXPECT_TRUE(g.error.empty()) << g.error;
    EXPECT_EQ(g.promptTokens, 4);  // User : What is
    EXPECT_GT(g.probe.tokens.size(), 4u);
    EXPECT_EQ(g.probe.layers.size(), 3u);
    EXPECT_EQ(g.probe.layers[0].head_gates.size(), g.probe.tokens.size());  // every token has its routing
    EXPECT_EQ(g.text.rfind("User: What is", 0), 0u) << g.text;
    // A new probe text is served while idle: the next snapshot shows it.
    while (s.acquireProbe()) {
    }
    s.setProbeText("Paris is in France .");
    ASSERT_TRUE(waitFor([&] { return s.acquireProbe(); }));
    ASSERT_FALSE(s.probe().tokens.empty());
    EXPECT_EQ(s.probe().tokens[0].text, "Paris");
    s.stop();
    EXPECT_FALSE(s.active());
}

TEST(Session, GenerationRefusedWithAReasonForExpertChoice) {
    auto cfg = *rl::preset_load("moe-top2-8");
    cfg.model.moe.routing = rl::MoeRouting::expert_choice;
    cfg.train.steps = 2;
    Session s;
    bool finished = false, generated = false;
    QObject::connect(&s, &Session::finished, [&] { finished = true; });
    QObject::connect(&s, &Session::generated, [&] { generated = true; });
    ASSERT_TRUE(s.start(cfg).is_ok());
    ASSERT_TRUE(waitFor([&] { return finished; }));
    s.requestGenerate({"User:", {}, 5});
    ASSERT_TRUE(waitFor([&] { return generated; }));
    EXPECT_NE(s.takeGeneration().error.find("not causal"), std::string::npos);
}

TEST(Session, BadCheckpointIsAMessage) {
    Session s;
    QTemporaryDir dir;
    const QString junk = dir.filePath("junk.safetensors");
    QFile f(junk);
    ASSERT_TRUE(f.open(QIODevice::WriteOnly));
    f.write("not a checkpoint");
    f.close();
    rl::Status st = s.startFromCheckpoint(junk.toStdString());
    EXPECT_FALSE(st);
    EXPECT_NE(st.msg.find("junk.safetensors"), std::string::npos) << st.msg;
    EXPECT_FALSE(s.active());
}
