// The app tests' view of a workspace: the tiny preset with a number of steps, and a run as the
// window stored it (read back through the run store, as a later session would).
#pragma once
#include <gtest/gtest.h>

#include <QDir>
#include <QString>

#include "config/presets.h"
#include "io/run_store.h"

inline rl::Config tiny(int steps) {
    auto c = *rl::preset_load("tiny");
    c.train.steps = steps;
    return c;
}

inline rl::RunRecord stored(const QString& ws, int64_t id) {
    auto store = rl::run_store_open(QDir(ws).filePath("runs.sqlite").toStdString());
    EXPECT_TRUE(store) << store.status.msg;
    auto r = rl::run_store_get(*store, id);
    EXPECT_TRUE(r) << r.status.msg;
    return r ? *r : rl::RunRecord{};
}
