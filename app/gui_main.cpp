// routelab: the desktop window. Scripted runs (names fixed, tests and docs use them):
//   routelab [--preset P | --config F] [--corpus PATH] [--demo-steps N] [--view NAME]
//            [--screenshot FILE] [--quit]
// and, for tests and docs: --workspace DIR (run store and user presets), --probe TEXT, --prompt TEXT
// (generate after the run, before the screenshot), --checkpoint F (open instead of training),
// --save-checkpoint F, --csv F (curves after the run), --overlay-runs (tick every stored run),
// --hover x,y (print the tooltip there).
#include <QApplication>
#include <QElapsedTimer>
#include <QEventLoop>
#include <QStatusBar>
#include <QMouseEvent>
#include <QSurfaceFormat>
#include <QThread>
#include <QTimer>
#include <cstdio>

#include "config/presets.h"
#include "imgui_widget.h"
#include "main_window.h"

int main(int argc, char** argv) {
    QElapsedTimer launch;  // process start -> first training numbers on screen (the "within two seconds")
    launch.start();
    QSurfaceFormat fmt;
    fmt.setVersion(3, 3);
    fmt.setProfile(QSurfaceFormat::CoreProfile);
    QSurfaceFormat::setDefaultFormat(fmt);
    QApplication app(argc, argv);
    QString preset = "default", config, corpus, view = "heads", shot, hover, workspace, probe, prompt, checkpoint, saveCkpt, csv;
    int demo = 0;
    bool quit = false, overlay = false;
    const QStringList args = app.arguments();
    for (int i = 1; i < args.size(); i++) {
        const QString a = args[i];
        auto next = [&]() -> QString {
            if (i + 1 >= args.size()) {
                std::fprintf(stderr, "error: %s needs a value\n", qPrintable(a));
                std::exit(2);
            }
            return args[++i];
        };
        if (a == "--preset") preset = next();
        else if (a == "--config") config = next();
        else if (a == "--corpus") corpus = next();
        else if (a == "--demo-steps") demo = next().toInt();
        else if (a == "--view") view = next();
        else if (a == "--screenshot") shot = next();
        else if (a == "--quit") quit = true;
        else if (a == "--hover") hover = next();  // "x,y" in the view's pixels: prints the tooltip (tests)
        else if (a == "--workspace") workspace = next();
        else if (a == "--probe") probe = next();
        else if (a == "--prompt") prompt = next();
        else if (a == "--checkpoint") checkpoint = next();
        else if (a == "--save-checkpoint") saveCkpt = next();
        else if (a == "--csv") csv = next();
        else if (a == "--overlay-runs") overlay = true;
        else {
            std::fprintf(stderr, "error: unknown argument '%s'\n", qPrintable(a));
            return 2;
        }
    }
    if (!MainWindow::viewNames().contains(view)) {
        std::fprintf(stderr, "error: unknown view '%s' (views: %s)\n", qPrintable(view), qPrintable(MainWindow::viewNames().join(", ")));
        return 2;
    }
    auto cfg = config.isEmpty() ? rl::preset_load(preset.toStdString()) : rl::config_load(config.toStdString());
    if (!cfg) {
        std::fprintf(stderr, "error: %s\n", cfg.status.msg.c_str());
        return 1;
    }
    if (!corpus.isEmpty()) cfg->data.corpus = corpus.toStdString();
    if (demo > 0) cfg->train.steps = demo;
    MainWindow w(workspace);
    w.selectPreset(QString::fromStdString(cfg->name));
    w.configDock()->setConfig(*cfg);
    if (!probe.isEmpty()) w.setProbeText(probe);
    if (!prompt.isEmpty()) std::snprintf(w.viewStates().generate.prompt, sizeof w.viewStates().generate.prompt, "%s", qPrintable(prompt));
    if (!shot.isEmpty()) w.setGeometry(0, 0, 1600, 1000);  // screenshots: the same size whatever QSettings kept
    w.show();
    w.showView(view);
    if (!checkpoint.isEmpty()) {
        if (!w.openCheckpoint(checkpoint)) {
            std::fprintf(stderr, "error: %s\n", qPrintable(w.statusBar()->currentMessage()));
            return 1;
        }
    }
    double windowUpSeconds = launch.nsecsElapsed() / 1e9;
    if (checkpoint.isEmpty() && !w.startRun(*cfg)) {
        std::fprintf(stderr, "error: %s\n", qPrintable(w.statusBar()->currentMessage()));
        return 1;
    }
    if (demo > 0 || !checkpoint.isEmpty()) {
        // After the run (or once the checkpoint is open): optional generation, checkpoint, CSV, then the screenshot.
        auto afterRun = [&](int step) {
            if (!csv.isEmpty() && !w.exportCsv(csv)) std::fprintf(stderr, "error: cannot write '%s'\n", qPrintable(csv));
            if (!saveCkpt.isEmpty()) {
                QEventLoop wait;
                QObject::connect(&w, &MainWindow::checkpointSaved, &wait, &QEventLoop::quit);
                QObject::connect(&w.session(), &Session::failed, &wait, &QEventLoop::quit);
                w.saveCheckpoint(saveCkpt);
                wait.exec();
                std::printf("%s\n", qPrintable(w.statusBar()->currentMessage()));
            }
            if (!prompt.isEmpty()) {
                QEventLoop wait;
                QObject::connect(&w, &MainWindow::generationReady, &wait, &QEventLoop::quit);
                w.requestGenerate();
                wait.exec();
                const auto& g = w.runData().generation;
                std::string text;
                for (const auto& t : g.tokens) text += t.text + " ";
                std::printf("generated: %s%s\n", text.c_str(), w.runData().generationError.c_str());
            }
            if (overlay) w.overlayAllRuns();
            w.showView(view);
            // Give the capped renderer a frame, then grab the whole window.
            QTimer::singleShot(300, &app, [&, step] {
                w.views()->repaint();
                if (!hover.isEmpty()) {  // drive the Qt -> ImGui bridge like a user's mouse would
                    const QPointF at(hover.section(',', 0, 0).toDouble(), hover.section(',', 1, 1).toDouble());
                    QMouseEvent move(QEvent::MouseMove, at, w.views()->mapToGlobal(at), Qt::NoButton, Qt::NoButton, Qt::NoModifier);
                    // ImGui resolves the hovered window a frame after the move: feed the move and draw
                    // until the view reports the hover (a few frames at most).
                    for (int k = 0; k < 20 && w.viewOutbox().hoverText.empty(); k++) {
                        QApplication::sendEvent(w.views(), &move);
                        w.views()->repaint();
                        QApplication::processEvents();
                        QThread::msleep(20);
                    }
                    std::printf("hover: %s\n", w.viewOutbox().hoverText.c_str());
                }
                {  // throughput with the window open, and what a frame costs
                    double tok = 0;
                    const auto& st = w.runData().stats;
                    for (const auto& x : st) tok += x.tok_per_s;
                    std::printf("window run: %d steps, mean %.0f tok/s, %d frames, last frame %.2f ms, first step shown %.2f s after "
                                "Train (%.2f s after launch)\n",
                                step, st.empty() ? 0.0 : tok / st.size(), w.views()->framesDrawn(), w.views()->lastFrameMs(),
                                w.firstStepSeconds(), windowUpSeconds + w.firstStepSeconds());
                }
                if (!shot.isEmpty()) {
                    if (!w.grab().save(shot)) std::fprintf(stderr, "error: cannot write screenshot '%s'\n", qPrintable(shot));
                    else {
                        const QPoint at = w.views()->mapTo(&w, QPoint(0, 0));  // where the ImGui view sits in the PNG
                        std::printf("screenshot %s after %d steps (%d frames drawn), view rect %d,%d,%d,%d\n", qPrintable(shot), step,
                                    w.views()->framesDrawn(), at.x(), at.y(), w.views()->width(), w.views()->height());
                    }
                }
                if (quit) app.quit();
            });
        };
        if (!checkpoint.isEmpty()) QTimer::singleShot(1000, &app, [&] { afterRun(w.lastStep()); });
        else QObject::connect(&w, &MainWindow::runFinished, &app, afterRun);
    }
    return app.exec();
}
