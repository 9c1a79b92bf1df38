// The Lessons dock: a lesson runs on a worker thread, its conclusion comes from that run's numbers,
// the window's training is asked to pause first, and Show hands the lesson's last config and view over.
#include <gtest/gtest.h>

#include <QApplication>
#include <QElapsedTimer>
#include <QListWidget>
#include <QThread>

#include "lessons_dock.h"

TEST(LessonsDock, RunsALessonAndConcludesFromItsRun) {
    LessonsDock dock;
    auto* list = dock.findChild<QListWidget*>("lessonList");
    ASSERT_NE(list, nullptr);
    EXPECT_EQ(list->count(), (int)rl::lessons().size());
    dock.setStepsForTests(15);
    int paused = 0;
    QString name, conclusion;
    QObject::connect(&dock, &LessonsDock::aboutToRun, [&] { paused++; });
    QObject::connect(&dock, &LessonsDock::finished, [&](const QString& n, const QString& c) { name = n, conclusion = c; });
    EXPECT_FALSE(dock.run("no-such-lesson"));
    ASSERT_TRUE(dock.run("heads"));
    EXPECT_FALSE(dock.run("collapse")) << "one lesson at a time";
    EXPECT_EQ(paused, 1);
    QElapsedTimer t;
    t.start();
    while (conclusion.isEmpty() && t.elapsed() < 120000) {
        QCoreApplication::processEvents(QEventLoop::AllEvents, 50);
        QThread::msleep(5);
    }
    EXPECT_EQ(name, "heads");
    EXPECT_TRUE(conclusion.startsWith("After 15 steps")) << conclusion.toStdString();
    EXPECT_EQ(dock.lastConfig().train.steps, 15);
    EXPECT_EQ(dock.lastView(), "heads");
    rl::Config shown;
    QString view;
    QString spot;
    QObject::connect(&dock, &LessonsDock::showRequested,
                     [&](const rl::Config& c, const QString& v, const QString&, const QString& sp) { shown = c, view = v, spot = sp; });
    emit dock.showRequested(dock.lastConfig(), dock.lastView(), dock.lastLookAt(), dock.lastSpotlight());
    EXPECT_EQ(view, "heads");
    EXPECT_EQ(spot, "heads.map");
    EXPECT_EQ(shown.name, "seed-moh");
}
