// routelab: the desktop window. Start-up only: the OpenGL format the views need, the application,
// the command line; the window and what a scripted run does are in scripted_run.cpp (its options
// are listed in scripted_run.h). Without options the window opens on MainWindow::k_firstRunPreset
// and trains it.
#include <QApplication>
#include <QElapsedTimer>
#include <QSurfaceFormat>

#include "scripted_run.h"

int main(int argc, char** argv) {
    QElapsedTimer launch;  // process start -> first training numbers on screen (the "within two seconds")
    launch.start();
    QSurfaceFormat fmt;
    fmt.setVersion(3, 3);
    fmt.setProfile(QSurfaceFormat::CoreProfile);
    QSurfaceFormat::setDefaultFormat(fmt);
    QApplication app(argc, argv);
    Script s;
    if (!parseArguments(app.arguments(), s)) return 2;
    return runScript(app, s, launch);
}
