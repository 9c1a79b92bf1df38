// The app tests' wait: processes queued signals (the trainer thread's results, the window's timers)
// until pred() is true or the timeout, for every test file that waits on the window.
#pragma once
#include <QCoreApplication>
#include <QElapsedTimer>
#include <QThread>

// pred() is evaluated once per round (it may consume); generous default: ThreadSanitizer builds run
// these ~30x slower.
template <class P>
bool waitFor(P pred, int ms = 300000) {
    QElapsedTimer t;
    t.start();
    while (t.elapsed() < ms) {
        if (pred()) return true;
        QCoreApplication::processEvents(QEventLoop::AllEvents, 20);
        QThread::msleep(2);
    }
    return false;
}
