// The Lessons dock: a lesson runs on a worker thread, its conclusion comes from that run's numbers,
// the window's training is asked to pause first, and Show hands the lesson's last config and view over.
#include <gtest/gtest.h>

#include <QApplication>
#include <QElapsedTimer>
#include <QListWidget>
#include <QMessageBox>
#include <QPushButton>
#include <QTemporaryDir>
#include <QThread>
#include <QTimer>

#include "config/presets.h"
#include "lessons_dock.h"
#include "main_window.h"

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

// Show in the window with edits in the form: asked first (Cancel keeps the form as it was), instead
// of replacing the user's edits unasked; an unedited form is replaced without a question.
TEST(LessonsDock, ShowAsksBeforeReplacingAnEditedForm) {
    QTemporaryDir ws;
    MainWindow w(ws.path());
    w.configDock()->setConfig(*rl::preset_load("tiny"));
    ASSERT_TRUE(w.configDock()->setField("model.d_model", "48"));
    int asked = 0;
    QTimer poll;  // the question is modal: answer it from the event loop it runs
    QObject::connect(&poll, &QTimer::timeout, [&] {
        if (auto* box = qobject_cast<QMessageBox*>(QApplication::activeModalWidget())) {
            asked++;
            box->button(QMessageBox::Cancel)->click();
        }
    });
    poll.start(20);
    auto lesson = *rl::preset_load("seed-moh");
    lesson.train.steps = 2;
    emit w.lessonsDock()->showRequested(lesson, "heads", "the heads", "heads.map");
    EXPECT_EQ(asked, 1);
    EXPECT_EQ(w.configDock()->config()->model.d_model, 48) << "Cancel must keep the edited form";
    EXPECT_EQ(w.runs().currentRunId(), 0) << "and start nothing";
    w.configDock()->setConfig(*rl::preset_load("tiny"));  // no edits: replaced at once
    emit w.lessonsDock()->showRequested(lesson, "heads", "the heads", "heads.map");
    EXPECT_EQ(asked, 1);
    EXPECT_EQ(w.configDock()->config()->name, "seed-moh");
    poll.stop();
}
