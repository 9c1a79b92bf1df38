#include "lessons_dock.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QListWidget>
#include <QPushButton>
#include <QTextBrowser>
#include <QVBoxLayout>

LessonsDock::LessonsDock(QWidget* parent) : QDockWidget("Lessons", parent) {
    setObjectName("lessonsDock");
    auto* body = new QWidget(this);
    auto* lay = new QVBoxLayout(body);
    list_ = new QListWidget(body);
    list_->setObjectName("lessonList");
    for (const rl::Lesson& l : rl::lessons())
        list_->addItem(QString::fromStdString(l.name + "  " + l.title));
    list_->setMaximumHeight(150);
    lay->addWidget(list_);
    text_ = new QTextBrowser(body);
    text_->setObjectName("lessonText");
    lay->addWidget(text_, 1);
    progress_ = new QLabel(body);
    lay->addWidget(progress_);
    auto* buttons = new QHBoxLayout();
    runButton_ = new QPushButton("Run", body);
    runButton_->setToolTip("Train the lesson's runs (under a minute) and write the conclusion from their numbers.");
    showButton_ = new QPushButton("Show in the window", body);
    showButton_->setToolTip("Replay the lesson's last run in the window (same config and seed: the same run) and open its view.");
    showButton_->setEnabled(false);
    buttons->addWidget(runButton_);
    buttons->addWidget(showButton_);
    lay->addLayout(buttons);
    setWidget(body);
    connect(list_, &QListWidget::currentRowChanged, this, &LessonsDock::select);
    connect(runButton_, &QPushButton::clicked, this, [this] {
        if (list_->currentRow() >= 0) run(QString::fromStdString(rl::lessons()[list_->currentRow()].name));
    });
    connect(showButton_, &QPushButton::clicked, this, [this] {
        if (lesson_) emit showRequested(last_, view_, lastLookAt(), lastSpotlight());
    });
    poll_.setInterval(250);
    connect(&poll_, &QTimer::timeout, this, [this] {
        if (!lesson_) return;
        const int r = run_;
        progress_->setText(QString("run %1/%2 (%3): step %4/%5")
                               .arg(r + 1)
                               .arg(lesson_->runs.size())
                               .arg(QString::fromStdString(lesson_->runs[std::min<size_t>(r, lesson_->runs.size() - 1)].label))
                               .arg(step_.load())
                               .arg(steps_.load()));
    });
    list_->setCurrentRow(0);
}

LessonsDock::~LessonsDock() {
    if (worker_.joinable()) worker_.join();  // a lesson is under a minute; its results have nowhere to go
}

void LessonsDock::select(int row) {
    if (row < 0 || row >= (int)rl::lessons().size()) return;
    const rl::Lesson& l = rl::lessons()[row];
    QString html = "<h3>" + QString::fromStdString(l.title).toHtmlEscaped() + "</h3><p>" +
                   QString::fromStdString(l.text).toHtmlEscaped() + "</p><p><b>Runs:</b> ";
    for (size_t i = 0; i < l.runs.size(); i++) html += (i ? ", " : "") + QString::fromStdString(l.runs[i].label).toHtmlEscaped();
    html += "</p><p><b>Then look at</b> the " + QString::fromStdString(l.view) + " view: " +
            QString::fromStdString(l.look_at).toHtmlEscaped() + ".</p>";
    if (lesson_ == &l && !conclusion_.isEmpty()) html += "<p><b>Conclusion</b> (your run): " + conclusion_.toHtmlEscaped() + "</p>";
    text_->setHtml(html);
}

void LessonsDock::showOutside(const QString& title, const QString& text, const QString& conclusion) {
    list_->clearSelection();
    text_->setHtml("<h3>" + title.toHtmlEscaped() + "</h3><p>" + text.toHtmlEscaped() + "</p><p><b>Conclusion</b> (from its numbers): " +
                   conclusion.toHtmlEscaped() + "</p>");
}

bool LessonsDock::run(const QString& name) {
    const rl::Lesson* l = rl::lesson_find(name.toStdString());
    if (!l || busy_) return false;
    if (worker_.joinable()) worker_.join();
    for (int i = 0; i < list_->count(); i++)
        if (&rl::lessons()[i] == l) list_->setCurrentRow(i);
    lesson_ = l;
    conclusion_.clear();
    busy_ = true;
    runButton_->setEnabled(false);
    showButton_->setEnabled(false);
    running_ = *l;
    if (testSteps_ > 0)
        for (auto& r : running_.runs) r.sets.push_back("train.steps=" + std::to_string(testSteps_));
    emit aboutToRun();
    poll_.start();
    worker_ = std::thread([this] {
        auto r = rl::lesson_run(running_, [this](int run, int step, int steps) { run_ = run, step_ = step, steps_ = steps; });
        std::vector<rl::LessonResult> results;
        QString error;
        if (r) results = std::move(*r);
        else error = QString::fromStdString(r.status.msg);
        QMetaObject::invokeMethod(this, [this, results = std::move(results), error]() mutable { done(std::move(results), error); },
                                  Qt::QueuedConnection);
    });
    return true;
}

void LessonsDock::done(std::vector<rl::LessonResult> results, QString error) {
    poll_.stop();
    busy_ = false;
    runButton_->setEnabled(true);
    if (!error.isEmpty()) {
        progress_->setText("failed: " + error);
        emit finished(QString::fromStdString(lesson_->name), "failed: " + error);
        return;
    }
    conclusion_ = QString::fromStdString(lesson_->conclude(results));
    last_ = results.back().cfg;
    results_ = std::move(results);
    view_ = QString::fromStdString(lesson_->view);
    QString times;
    for (const auto& r : results_) times += QString("%1 %2 s  ").arg(QString::fromStdString(r.spec.label)).arg(r.seconds, 0, 'f', 1);
    progress_->setText("done: " + times);
    showButton_->setEnabled(true);
    select(list_->currentRow());
    emit finished(QString::fromStdString(lesson_->name), conclusion_);
}
