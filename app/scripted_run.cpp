// The window's scripted runs (scripted_run.h): set-up, the run, and what is printed and saved after it.
#include <QApplication>
#include <QElapsedTimer>
#include <QEventLoop>
#include <QStatusBar>
#include <QMouseEvent>
#include <QSurfaceFormat>
#include <QThread>
#include <QTimer>
#include <algorithm>
#include <array>
#include <cstdio>

#include "config/presets.h"
#include "imgui_widget.h"
#include "lessons/real_model.h"
#include "lessons_dock.h"
#include "main_window.h"
#include "scripted_run.h"

namespace {


// Asks the trainer thread for the checkpoint and waits until it is written (or the run failed).
void saveCheckpointAndWait(MainWindow& w, const QString& path) {
    QEventLoop wait;
    QObject::connect(&w.runs(), &RunController::checkpointSaved, &wait, &QEventLoop::quit);
    QObject::connect(&w.runs(), &RunController::checkpointFailed, &wait, &QEventLoop::quit);
    QObject::connect(&w.runs(), &RunController::runFailed, &wait, &QEventLoop::quit);
    w.runs().saveCheckpoint(path);
    wait.exec();
    std::printf("%s\n", qPrintable(w.statusMessage()));
}

// Generates from the generate view's prompt and prints the tokens.
void generateAndPrint(MainWindow& w) {
    QEventLoop wait;
    QObject::connect(&w.runs(), &RunController::generationReady, &wait, &QEventLoop::quit);
    w.requestGenerate();
    wait.exec();
    const auto& g = w.runs().data().generation;
    std::string text;
    for (const auto& t : g.tokens) text += t.text + " ";
    std::printf("generated: %s%s\n", text.c_str(), w.runs().data().generationError.c_str());
}

// Drives the Qt -> ImGui bridge like a user's mouse would, and prints the tooltip at "x,y".
void hoverAndPrint(MainWindow& w, const QString& xy) {
    const QPointF at(xy.section(',', 0, 0).toDouble(), xy.section(',', 1, 1).toDouble());
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

// The experiments view's requests in order (--experiment), each awaited; its numbers printed.
void runExperiments(MainWindow& w, const Script& s) {
    ExperimentsState& e = w.viewStates().experiments;
    e.topK = s.expTopK;
    if (s.expTokens > 0) e.tokens = e.domainTokens = s.expTokens;
    std::snprintf(e.textFile, sizeof e.textFile, "%s", qPrintable(s.heldOut));
    std::snprintf(e.domains, sizeof e.domains, "%s", qPrintable(s.domains.join('\n')));
    if (s.lesson == rl::k_real_model_lesson)  // the lesson's 1, K/2, K, 2K, not 1..E
        e.sweepKs = rl::real_model_lesson_ks(w.runs().session().config(), w.runs().session().config().model);
    for (const QString& kind : s.experiments.split(',', Qt::SkipEmptyParts)) {
        const std::array<rl::ExperimentKind, 4> kinds{rl::ExperimentKind::compare, rl::ExperimentKind::sweep,
                                                       rl::ExperimentKind::calibrate, rl::ExperimentKind::analyse};
        const auto k = std::find_if(kinds.begin(), kinds.end(), [&](auto x) { return kind == rl::experiment_kind_name(x); });
        if (k == kinds.end()) {
            std::fprintf(stderr, "error: unknown experiment '%s' (compare, sweep, calibrate, analyse)\n", qPrintable(kind));
            continue;
        }
        QEventLoop wait;
        QObject::connect(&w.runs(), &RunController::arrived, &wait, [&] {
            if (w.runs().data().experimentRunning == 0) wait.quit();
        });
        w.runExperiment(*k);
        if (w.runs().data().experimentRunning) wait.exec();
        const rl::ExperimentResult& r = w.runs().data().experiments[(size_t)*k];
        std::printf("experiment %s: %s%s\n", qPrintable(kind), r.error.empty() ? "" : "error: ", r.error.c_str());
        if (*k == rl::ExperimentKind::compare && r.error.empty())
            std::printf("  %s: perplexity %.4f (unchanged %.4f), active params %.0f (unchanged %.0f)\n", r.what.c_str(),
                        r.changed.perplexity, r.base.perplexity, r.changed.active_params, r.base.active_params);
        for (size_t i = 0; i < r.sweep.size(); i++)
            std::printf("  top-k %d: perplexity %.4f, active params %.0f, %.2f s\n", r.ks[i], r.sweep[i].perplexity,
                        r.sweep[i].active_params, r.sweep[i].forward_s);
        for (const auto& p : r.calibration.passes)
            std::printf("  pass %d: load CV %.3f, perplexity %.4f\n", p.pass, p.load_cv, p.perplexity);
        for (const auto& l : r.analysis.layers)
            std::printf("  layer %d: NMI(first expert; domain) %.3f (random router %.3f)\n", l.layer, l.nmi_domain,
                        l.nmi_domain_random_router);
    }
}

// --lesson real-model: the conclusion from the experiments view's analysis and sweep.
void printRealModelConclusion(MainWindow& w) {
    const auto& ex = w.runs().data().experiments;
    const rl::ExperimentResult &an = ex[(size_t)rl::ExperimentKind::analyse], &sw = ex[(size_t)rl::ExperimentKind::sweep];
    if (!an.error.empty() || !sw.error.empty()) {
        std::printf("lesson real-model: failed: %s%s\n", an.error.c_str(), sw.error.c_str());
        return;
    }
    rl::RealModelFindings f;
    f.analysis = an.analysis;
    f.model_top_k = sw.model_top_k;
    f.ks = sw.ks;
    f.sweep = sw.sweep;
    const std::string c = rl::real_model_lesson_conclude(f);
    std::printf("lesson real-model: %s\n", c.c_str());
    w.lessonsDock()->showOutside("What a real model's experts do", rl::real_model_lesson_text(), QString::fromStdString(c));
}

// Throughput with the window open, and what a frame costs.
void printWindowRun(MainWindow& w, int step, double windowUpSeconds) {
    double tok = 0;
    const auto& st = w.runs().data().stats;
    for (const auto& x : st) tok += x.tok_per_s;
    std::printf("window run: %d steps, mean %.0f tok/s, %d frames, last frame %.2f ms, first step shown %.2f s after "
                "Train (%.2f s after launch)\n",
                step, st.empty() ? 0.0 : tok / st.size(), w.views()->framesDrawn(), w.views()->lastFrameMs(), w.runs().firstStepSeconds(),
                windowUpSeconds + w.runs().firstStepSeconds());
}

// The speedup view's figures (a routed run's end): forward FLOP model and measured per component, the
// rounds' quartiles, the machine's other load and what the view flags.
void printCost(MainWindow& w) {
    const RunData& r = w.runs().data();
    if (!r.hasCost) return;
    std::printf("speedup (forward, dense/routed, %d threads, other processes %.1f cores):", r.cost.threads, r.cost.others_busy);
    for (const auto& c : r.cost.forward.components)
        std::printf(" %s FLOP %.2fx measured %.2fx [%.2f..%.2f];", c.name.c_str(), c.speedup_flops(), c.speedup_measured(), c.ratio_q1,
                    c.ratio_q3);
    const std::string doubts = rl::cost_doubts(r.cost);
    std::printf("\nspeedup check: %s\n", doubts.empty() ? "sound" : ("measured under load: re-measure\n" + doubts).c_str());
}

// The workspace and the runs its store lists, newest first (tests: the window finds the CLI's runs).
void printRuns(MainWindow& w) {
    std::printf("workspace %s:", qPrintable(w.workspace()));
    for (const auto& r : w.runs().data().runs) std::printf(" #%lld %s (%s);", (long long)r.id, r.name.c_str(), rl::run_status_name(r.status));
    std::printf("\n");
}

// What the probe text's routing shows (tests: a first run routes heads and experts): head gates on
// and off over every layer, token and head, and the experts each token takes.
void printProbe(MainWindow& w) {
    const rl::ProbeSnapshot& p = w.runs().data().probe;
    long on = 0, off = 0;
    for (const auto& L : p.layers)
        for (const auto& row : L.head_gates)
            for (float g : row) (g == 0.f ? off : on)++;
    std::printf("probe: %zu tokens, %zu layers, head gates %ld on / %ld off, experts top-%d of %d\n", p.tokens.size(), p.layers.size(), on,
                off, p.expert_top_k, p.n_experts);
}

void saveScreenshot(MainWindow& w, const QString& path, int step) {
    if (!w.grab().save(path)) {
        std::fprintf(stderr, "error: cannot write screenshot '%s'\n", qPrintable(path));
        return;
    }
    const QPoint at = w.views()->mapTo(&w, QPoint(0, 0));  // where the ImGui view sits in the PNG
    std::printf("screenshot %s after %d steps (%d frames drawn), view rect %d,%d,%d,%d\n", qPrintable(path), step, w.views()->framesDrawn(),
                at.x(), at.y(), w.views()->width(), w.views()->height());
    if (const ViewOutbox& o = w.viewOutbox(); !o.spotlit.empty())  // a lesson's frame, in the PNG's pixels
        std::printf("spotlight %s %d,%d,%d,%d\n", o.spotlit.c_str(), at.x() + (int)o.spotlitRect[0], at.y() + (int)o.spotlitRect[1],
                    (int)o.spotlitRect[2], (int)o.spotlitRect[3]);
}

// The view alone at twice its size (File > Export view as PNG (2x)).
void saveScreenshot2x(MainWindow& w, const QString& path) {
    QSize size;
    if (!w.exports().exportView2x(path, &size)) {
        std::fprintf(stderr, "error: %s\n", qPrintable(w.statusMessage()));
        return;
    }
    std::printf("view png %s %dx%d (the view is %dx%d)\n", qPrintable(path), size.width(), size.height(), w.views()->width(),
                w.views()->height());
}

// After the run (or once the checkpoint is open): optional CSV, checkpoint and generation, then
// the view asked for, the hover, the numbers and the screenshot.
void afterRun(QApplication& app, MainWindow& w, const Script& s, int step, double windowUpSeconds) {
    if (!s.csv.isEmpty() && !w.exports().exportCsv(s.csv)) std::fprintf(stderr, "error: cannot write '%s'\n", qPrintable(s.csv));
    if (!s.saveCkpt.isEmpty()) saveCheckpointAndWait(w, s.saveCkpt);
    if (!s.prompt.isEmpty()) generateAndPrint(w);
    if (s.overlay) w.runsDock()->overlayAll();
    if (!s.experiments.isEmpty()) runExperiments(w, s);
    if (s.lesson == rl::k_real_model_lesson) printRealModelConclusion(w);
    w.showView(s.view);
    // Give the capped renderer a frame, then grab the whole window.
    QTimer::singleShot(300, &app, [&app, &w, &s, step, windowUpSeconds] {
        w.views()->repaint();
        if (!s.hover.isEmpty()) hoverAndPrint(w, s.hover);
        printWindowRun(w, step, windowUpSeconds);
        if (!w.prepareStages().isEmpty()) std::printf("prepared: %s\n", qPrintable(w.prepareStages().join("; ")));
        printProbe(w);
        printRuns(w);
        printCost(w);
        std::printf("look: theme %s, font %s\n", qPrintable(w.theme()), qPrintable(w.views()->fontDescription()));
        if (!s.shot.isEmpty()) saveScreenshot(w, s.shot, step);
        if (!s.shot2x.isEmpty()) saveScreenshot2x(w, s.shot2x);
        if (s.quit) app.exit(s.exitCode);
    });
}

// The window's config (the preset or file, then --corpus and --demo-steps), named in the picker
// and put in the form, and the window set up as the script says. False after the message.
bool setUpWindow(MainWindow& w, const Script& s, rl::Config& cfg) {
    auto loaded = s.config.isEmpty() ? rl::preset_load(s.preset.toStdString()) : rl::config_load(s.config.toStdString());
    if (!loaded) {
        std::fprintf(stderr, "error: %s\n", loaded.status.msg.c_str());
        return false;
    }
    cfg = *loaded;
    if (!s.corpus.isEmpty()) cfg.data.corpus = s.corpus.toStdString();
    if (s.demo > 0) cfg.train.steps = s.demo;
    w.selectPreset(QString::fromStdString(cfg.name));
    w.configDock()->setConfig(cfg);
    if (!s.probe.isEmpty()) w.setProbeText(s.probe);
    GenerateState& g = w.viewStates().generate;
    if (!s.prompt.isEmpty()) std::snprintf(g.prompt, sizeof g.prompt, "%s", qPrintable(s.prompt));
    w.viewStates().tuning.pinned = s.highlight;
    const QStringList tu = s.tuning.split(',');  // SWEEP[,lines|pareto|importance]
    if (!s.tuning.isEmpty()) w.viewStates().tuning.sweep = tu[0].toStdString();
    if (tu.size() > 1) w.viewStates().tuning.plot = tu[1] == "pareto" ? 1 : tu[1] == "importance" ? 2 : 0;
    const QStringList cl = s.cluster.split(',', Qt::SkipEmptyParts);  // EP[,GPUs a node[,capacity factor]]
    ClusterSettings& c = w.viewStates().cluster.set;
    if (cl.size() > 0) c.ep = std::max(1, cl[0].toInt());
    if (cl.size() > 1) c.gpusPerNode = std::clamp(cl[1].toInt(), 1, 16);
    if (cl.size() > 2) c.capacityFactor = std::clamp(cl[2].toFloat(), 0.f, 4.f);
    w.runsDock()->setCurveOptions(s.wallTime, s.band);
    if (!s.theme.isEmpty()) w.setTheme(s.theme);  // as View > Theme does: kept for the next launch
    if (!s.shot.isEmpty() || !s.shot2x.isEmpty()) w.setGeometry(0, 0, 1600, 1000);  // screenshots: the same size whatever QSettings kept
    w.show();
    w.showView(s.view);
    return true;
}

// The lesson's runs (on the dock's thread), its conclusion printed, then its last run again in the
// window (the same run: same config and seed), its view and the screenshot.
int runLesson(QApplication& app, MainWindow& w, Script& s, double windowUpSeconds) {
    LessonsDock* l = w.lessonsDock();
    if (s.demo > 0) l->setStepsForTests(s.demo);  // --demo-steps: every run of the lesson this long
    if (!l->run(s.lesson)) {
        std::fprintf(stderr, "error: no lesson '%s' (routelab-cli lesson list names them)\n", qPrintable(s.lesson));
        return 2;
    }
    QObject::connect(l, &LessonsDock::finished, &app, [&app, &w, &s, l, windowUpSeconds](const QString& name, const QString& c) {
        std::printf("lesson %s: %s\n", qPrintable(name), qPrintable(c));
        if (c.startsWith("failed")) return app.exit(1);
        if (!s.viewGiven) s.view = l->lastView();
        QObject::connect(&w.runs(), &RunController::runFinished, &app,
                         [&app, &w, &s, windowUpSeconds](int step) { afterRun(app, w, s, step, windowUpSeconds); });
        emit l->showRequested(l->lastConfig(), l->lastView(), l->lastLookAt(), l->lastSpotlight());
    });
    return app.exec();
}

// Every point to its end (--demo-steps and --corpus apply to the base, before each point's own
// keys), then the view, the hover and the screenshot.
int runSweep(QApplication& app, MainWindow& w, Script& s, double windowUpSeconds) {
    QObject::connect(&w.sweeps(), &SweepRunner::finished, &app, [&app, &w, &s, windowUpSeconds](int finished, int failed) {
        std::printf("sweep: %d finished, %d failed\n", finished, failed);
        afterRun(app, w, s, w.runs().lastStep(), windowUpSeconds);
    });
    const bool ok = w.sweeps().startFile(s.sweep, [&s](rl::Config& c) {
        if (!s.corpus.isEmpty()) c.data.corpus = s.corpus.toStdString();
        if (s.demo > 0) c.train.steps = s.demo;
    });
    if (!ok) {
        std::fprintf(stderr, "error: %s\n", qPrintable(w.statusMessage()));
        return 1;
    }
    return app.exec();
}

// A run of the config (or the checkpoint, opened already), then afterRun.
int runTraining(QApplication& app, MainWindow& w, Script& s, const rl::Config& cfg, double windowUpSeconds) {
    if (s.injectNanAt > 0) {
        // The run fails at that step: say so, then the view and the screenshot as after a finished run.
        w.runs().session().setInjectNanAt(s.injectNanAt);
        QObject::connect(&w.runs(), &RunController::runFailed, &app, [&app, &w, &s, windowUpSeconds](const QString& m) {
            std::printf("run failed: %s\n", qPrintable(m));
            s.exitCode = 1;
            // The last good weights are being written by the trainer thread: give it a moment.
            QTimer::singleShot(500, &app, [&app, &w, &s, windowUpSeconds] { afterRun(app, w, s, w.runs().lastStep(), windowUpSeconds); });
        });
    }
    if (s.checkpoint.isEmpty() && !w.startRun(cfg)) {
        std::fprintf(stderr, "error: %s\n", qPrintable(w.statusMessage()));
        if (s.shot.isEmpty()) return 1;
        QTimer::singleShot(300, &app, [&app, &w, &s] {  // the window as the user sees the refusal (the form's message, the status bar)
            saveScreenshot(w, s.shot, 0);
            app.exit(1);
        });
        return app.exec();
    }
    if (s.demo > 0 || !s.checkpoint.isEmpty()) {
        // By value: this block ends long before the run does.
        auto finish = [&app, &w, &s, windowUpSeconds](int step) { afterRun(app, w, s, step, windowUpSeconds); };
        if (!s.checkpoint.isEmpty()) QTimer::singleShot(1000, &app, [&w, finish] { finish(w.runs().lastStep()); });
        else QObject::connect(&w.runs(), &RunController::runFinished, &app, finish);
    }
    return app.exec();
}

}  // namespace

// Reads the arguments; false once it has said what is wrong with them.
bool parseArguments(const QStringList& args, Script& s) {
    for (int i = 1; i < args.size(); i++) {
        const QString a = args[i];
        auto next = [&]() -> QString {
            if (i + 1 >= args.size()) {
                std::fprintf(stderr, "error: %s needs a value\n", qPrintable(a));
                std::exit(2);
            }
            return args[++i];
        };
        if (a == "--preset") s.preset = next();
        else if (a == "--config") s.config = next();
        else if (a == "--corpus") s.corpus = next();
        else if (a == "--demo-steps") s.demo = next().toInt();
        else if (a == "--view") s.view = next(), s.viewGiven = true;
        else if (a == "--screenshot") s.shot = next();
        else if (a == "--quit") s.quit = true;
        else if (a == "--hover") s.hover = next();  // "x,y" in the view's pixels: prints the tooltip (tests)
        else if (a == "--workspace") s.workspace = next();
        else if (a == "--probe") s.probe = next();
        else if (a == "--prompt") s.prompt = next();
        else if (a == "--checkpoint") s.checkpoint = next();
        else if (a == "--model") s.model = next();
        else if (a == "--save-checkpoint") s.saveCkpt = next();
        else if (a == "--csv") s.csv = next();
        else if (a == "--overlay-runs") s.overlay = true;
        else if (a == "--sweep") s.sweep = next();
        else if (a == "--lesson") s.lesson = next();
        else if (a == "--inject-nan-at") s.injectNanAt = next().toInt();
        else if (a == "--highlight-run") s.highlight = next().toLongLong();
        else if (a == "--wall-time") s.wallTime = true;
        else if (a == "--band") s.band = true;
        else if (a == "--theme") s.theme = next();
        else if (a == "--screenshot-2x") s.shot2x = next();
        else if (a == "--experiment") s.experiments = next();
        else if (a == "--domain") s.domains << next();
        else if (a == "--top-k") s.expTopK = next().toInt();
        else if (a == "--held-out") s.heldOut = next();
        else if (a == "--tokens") s.expTokens = next().toInt();
        else if (a == "--cluster") s.cluster = next();
        else if (a == "--tuning") s.tuning = next();
        else {
            std::fprintf(stderr, "error: unknown argument '%s'\n", qPrintable(a));
            return false;
        }
    }
    if (!s.sweep.isEmpty() && !s.viewGiven) s.view = "tuning";  // a sweep's result is the ranking
    if (!s.theme.isEmpty() && s.theme != "dark" && s.theme != "light") {
        std::fprintf(stderr, "error: unknown theme '%s' (themes: dark, light)\n", qPrintable(s.theme));
        return false;
    }
    if (!MainWindow::viewNames().contains(s.view)) {
        std::fprintf(stderr, "error: unknown view '%s' (views: %s)\n", qPrintable(s.view), qPrintable(MainWindow::viewNames().join(", ")));
        return false;
    }
    return true;
}

int runScript(QApplication& app, Script& s, const QElapsedTimer& launch) {
    const bool realModel = s.lesson == rl::k_real_model_lesson;
    if (realModel) {  // the model folder, or the stand-in trained here; then the analysis and the sweep
        std::printf("# What a real model's experts do\n\n%s\n\n", rl::real_model_lesson_text());
        if (s.model.isEmpty()) {
            std::printf("%s\n\n", rl::real_model_lesson_without_model());
            s.preset = rl::k_real_model_stand_in, s.config.clear();
            s.demo = rl::k_real_model_stand_in_steps;
        }
        s.experiments = "analyse,sweep";
        if (s.expTokens == 0) s.expTokens = 4000;
        if (!s.viewGiven) s.view = "experiments";
    }
    MainWindow w(s.workspace);
    rl::Config cfg;
    if (!setUpWindow(w, s, cfg)) return 1;
    if (!s.checkpoint.isEmpty() && !w.openCheckpoint(s.checkpoint)) {
        std::fprintf(stderr, "error: %s\n", qPrintable(w.statusMessage()));
        return 1;
    }
    if (!s.model.isEmpty()) {  // the views once the folder's probe and counts are in
        QObject::connect(&w.runs(), &RunController::modelInspected, &app,
                         [&app, &w, &s] { afterRun(app, w, s, 0, 0); }, Qt::SingleShotConnection);
        if (!w.openModel(s.model)) {
            std::fprintf(stderr, "error: %s\n", qPrintable(w.statusMessage()));
            return 1;
        }
        return app.exec();
    }
    const double windowUpSeconds = launch.nsecsElapsed() / 1e9;
    if (!s.lesson.isEmpty() && !realModel) return runLesson(app, w, s, windowUpSeconds);
    if (!s.sweep.isEmpty()) return runSweep(app, w, s, windowUpSeconds);
    return runTraining(app, w, s, cfg, windowUpSeconds);
}
