// One real window for a test suite: a workspace of its own, a small sweep stored (the tuning view's
// rows and lines) and then moh-moe training for as long as the suite runs.
#pragma once
#include <gtest/gtest.h>

#include <QDir>
#include <QTemporaryDir>
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "config/presets.h"
#include "main_window.h"
#include "real_input.h"

struct TestWindow {
    QTemporaryDir dir;
    std::unique_ptr<MainWindow> w;

    // sweepSteps > 0: a 2-point sweep of that many steps first.
    void open(int sweepSteps) {
        ASSERT_TRUE(dir.isValid());
        w = std::make_unique<MainWindow>(dir.path());
        w->setGeometry(0, 0, 1600, 1000);
        w->show();
        if (sweepSteps > 0) {
            bool done = false;
            QObject::connect(&w->sweeps(), &SweepRunner::finished, [&done] { done = true; });
            const QString json = R"({"name": "gui", "preset": "moh-moe", "grid": {"model.moe.aux_weight": [0.001, 0.01]}})";
            ASSERT_TRUE(w->sweeps().start(json, "gui", {}, [sweepSteps](rl::Config& c) { c.train.steps = sweepSteps; }))
                << w->statusMessage().toStdString();
            ASSERT_TRUE(waitFor([&] { return done; }));
        }
        auto cfg = *rl::preset_load("moh-moe");
        cfg.train.steps = 100000;  // trains for the whole suite
        ASSERT_TRUE(w->startRun(cfg)) << w->statusMessage().toStdString();
        ASSERT_TRUE(waitFor([&] { return !w->runs().data().probe.tokens.empty() && w->runs().data().curve.size() > 3; }));
    }

    // The view's targets of one kind, after it has drawn a settled frame.
    std::vector<ViewTarget> targets(const std::string& kind) {
        real::settle(w->views());
        std::vector<ViewTarget> out;
        for (const ViewTarget& t : w->viewOutbox().targets)
            if (t.kind == kind) out.push_back(t);
        return out;
    }

    void show(const char* view) {
        w->showView(view);
        real::settle(w->views());
    }

    static QPoint centre(const ViewTarget& t) { return QPoint((int)(t.x + t.w / 2), (int)(t.y + t.h / 2)); }
};
