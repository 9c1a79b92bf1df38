// Lessons dock (README "Lessons"): the guided experiments of core/lessons. Pick a lesson, read it,
// Run: its runs train on a worker thread (the window pauses its own training meanwhile, two cores),
// then the conclusion from those numbers appears and Show replays the lesson's last run in the
// window (the same config and seed give the same run, bit for bit) with its view opened.
#pragma once
#include <QDockWidget>
#include <QTimer>
#include <atomic>
#include <thread>
#include <vector>

#include "config/config.h"
#include "lessons/lessons.h"

class QLabel;
class QListWidget;
class QPushButton;
class QTextBrowser;

class LessonsDock : public QDockWidget {
    Q_OBJECT
public:
    explicit LessonsDock(QWidget* parent = nullptr);
    ~LessonsDock() override;
    // Starts the lesson; false when there is no such lesson or one is running.
    bool run(const QString& name);
    bool running() const { return busy_; }
    // Tests: every run of a lesson trains this many steps instead of its own (0 = the lesson's).
    void setStepsForTests(int steps) { testSteps_ = steps; }
    QString conclusion() const { return conclusion_; }
    // A lesson run outside the dock (--lesson real-model: the experiments view's measurements): its title,
    // text and conclusion in the dock's text pane.
    void showOutside(const QString& title, const QString& text, const QString& conclusion);
    // The lesson's last run, as trained (what Show replays), and its view; empty before a lesson ran.
    const rl::Config& lastConfig() const { return last_; }
    QString lastView() const { return view_; }
    // Every run of the last lesson, as trained (the window stores the ones before the replayed last one).
    const std::vector<rl::LessonResult>& lastResults() const { return results_; }
    QString lastName() const { return lesson_ ? QString::fromStdString(lesson_->name) : QString(); }
    // What to look at in that view, and the region the window frames there (views/widgets.h Spotlight).
    QString lastLookAt() const { return lesson_ ? QString::fromStdString(lesson_->look_at) : QString(); }
    QString lastSpotlight() const { return lesson_ ? QString::fromStdString(lesson_->spotlight) : QString(); }

signals:
    void aboutToRun();                                    // the window pauses its training
    void finished(QString name, QString conclusion);      // the conclusion, or "failed: ..."
    void showRequested(rl::Config cfg, QString view, QString lookAt, QString spotlight);

private:
    void select(int row);
    void done(std::vector<rl::LessonResult> results, QString error);
    QListWidget* list_ = nullptr;
    QTextBrowser* text_ = nullptr;
    QPushButton *runButton_ = nullptr, *showButton_ = nullptr;
    QLabel* progress_ = nullptr;
    QTimer poll_;  // only while a lesson runs: the worker's progress to the label
    std::thread worker_;
    std::atomic<bool> busy_{false};
    std::atomic<int> run_{0}, step_{0}, steps_{0};
    const rl::Lesson* lesson_ = nullptr;
    rl::Lesson running_;  // the lesson as run (a copy: the tests' step override)
    int testSteps_ = 0;
    QString conclusion_, view_;
    rl::Config last_;
    std::vector<rl::LessonResult> results_;
};
