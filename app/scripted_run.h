// The window's scripted runs (names fixed, tests and docs use them):
//   routelab [--preset P | --config F] [--corpus PATH] [--demo-steps N] [--view NAME]
//            [--screenshot FILE] [--quit]
// and, for tests and docs: --workspace DIR (run store and user presets), --probe TEXT, --prompt TEXT
// (generate after the run, before the screenshot), --checkpoint F (open instead of training),
// --model DIR (a Hugging Face model folder, opened to inspect: the views once its probe and counts
// are in), --save-checkpoint F, --csv F (curves after the run), --overlay-runs (tick every stored run),
// --hover x,y (print the tooltip there), --sweep F (run every point of a sweep file, then the view:
// tuning unless --view says otherwise), --highlight-run ID (the tuning view highlights that run),
// --lesson NAME (run a lesson, print its conclusion, replay its last run and show its view; --lesson
// real-model [--model DIR]: the folder, or a stand-in trained here, through the experiments view's
// analysis and top-k sweep, its conclusion printed),
// --inject-nan-at STEP (tests: that step's loss is NaN; the run fails there, exit code 1),
// --wall-time and --band (the Runs dock's curve toggles: x by seconds of training, min/max band),
// --theme dark|light (View > Theme, kept for the next launch), --screenshot-2x FILE (File > Export
// view as PNG (2x): the view alone at twice its size), --experiment compare,sweep,calibrate,analyse
// (after the run or once the model folder is open: the experiments view's requests in that order, each
// awaited and its numbers printed) with --top-k K, --held-out FILE, --tokens N and --domain NAME=FILE
// (repeated) for them; --tuning SWEEP[,lines|pareto|importance] (the tuning view's sweep and plot). Without --preset or --config the window opens
// on MainWindow::k_firstRunPreset (moh-moe: it routes heads and experts) and trains it.
#pragma once
#include <QElapsedTimer>
#include <QString>

#include "main_window.h"

class QApplication;

// What a scripted run was asked to do.
struct Script {
    QString preset = MainWindow::k_firstRunPreset, config, corpus, view = "heads", shot, hover, workspace, probe, prompt, checkpoint,
            saveCkpt, csv, sweep, theme, shot2x, lesson, model, experiments, heldOut,
            cluster,  // the cluster view's EP[,GPUs a node[,capacity factor]]
            tuning;   // the tuning view's sweep filter and plot: SWEEP[,lines|pareto|importance]
    QStringList domains;
    int expTopK = 0, expTokens = 0;
    int demo = 0, injectNanAt = 0;
    int exitCode = 0;  // a scripted run that failed (--inject-nan-at) quits with 1
    qint64 highlight = 0;
    bool quit = false, overlay = false, viewGiven = false, wallTime = false, band = false;
};


// Reads the arguments; false once it has said what is wrong with them.
bool parseArguments(const QStringList& args, Script& s);
// Builds the window the script asks for, starts it (a run, a checkpoint, a lesson or a sweep), runs
// the event loop and returns the exit code.
int runScript(QApplication& app, Script& s, const QElapsedTimer& launch);
