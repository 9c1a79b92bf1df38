// Input for the window tests, delivered the way the X11 platform plugin delivers the OS's events:
// through QWindowSystemInterface (QTest's QWindow overloads call qt_handleMouseEvent and
// qt_handleKeyEvent), so mouse grabs, popups, focus and double-click detection all apply. No delay
// between a press and its release: the quickest click a hand can make.
#pragma once
#include <QApplication>
#include <QElapsedTimer>
#include <QPointer>
#include <QWheelEvent>
#include <QWidget>
#include <QWindow>
#include <QtTest/QTest>

#include "wait_for.h"
#include "imgui_widget.h"

namespace real {

// The native window that holds w and w's position in it. Every helper re-checks it after each
// step: a press may close (and delete) the window it landed in.
inline QPointer<QWindow> windowOf(QWidget* w, QPoint local, QPoint* inWindow) {
    QWidget* top = w->window();
    *inWindow = w->mapTo(top, local);
    return top->windowHandle();
}

inline void move(QWidget* w, QPoint at) {
    QPoint p;
    if (QPointer<QWindow> win = windowOf(w, at, &p)) QTest::mouseMove(win, p);
}

// A press and its release with nothing processed between them (not even the paint a press asks
// for), where the mouse already is.
inline void quickClick(QWidget* w, QPoint at, Qt::MouseButton b = Qt::LeftButton, Qt::KeyboardModifiers m = {}) {
    static ulong stamp = 1u << 20;  // after QTest's own, apart by more than a double-click interval
    QPoint p;
    QPointer<QWindow> win = windowOf(w, at, &p);
    if (!win) return;
    const QPointF global = win->mapToGlobal(p);
    stamp += 1000;
    qt_handleMouseEvent(win, p, global, b, b, QEvent::MouseButtonPress, m, stamp);
    if (win) qt_handleMouseEvent(win, p, global, Qt::NoButton, b, QEvent::MouseButtonRelease, m, stamp);
}

inline void click(QWidget* w, QPoint at, Qt::MouseButton b = Qt::LeftButton, Qt::KeyboardModifiers m = {}) {
    QPointer<QWidget> guard(w);
    move(w, at);
    if (guard) quickClick(w, at, b, m);
    QCoreApplication::processEvents();
}

inline void doubleClick(QWidget* w, QPoint at) {
    QPoint p;
    if (QPointer<QWindow> win = windowOf(w, at, &p)) QTest::mouseDClick(win, Qt::LeftButton, {}, p);
}

// Press at `from`, moves in `steps`, release at `to`.
inline void drag(QWidget* w, QPoint from, QPoint to, int steps = 4) {
    QPoint a, b;
    QPointer<QWindow> win = windowOf(w, from, &a);
    windowOf(w, to, &b);
    if (win) QTest::mouseMove(win, a);
    if (win) QTest::mousePress(win, Qt::LeftButton, {}, a);
    for (int i = 1; i <= steps && win; i++) QTest::mouseMove(win, a + (b - a) * i / steps);
    if (win) QTest::mouseRelease(win, Qt::LeftButton, {}, b);
}

// One notch (or more) of the wheel, sent to the native window as the platform would.
inline void wheel(QWidget* w, QPoint at, int notches) {
    QPoint p;
    QPointer<QWindow> win = windowOf(w, at, &p);
    if (!win) return;
    QWheelEvent e(QPointF(p), QPointF(win->mapToGlobal(p)), QPoint(), QPoint(0, 120 * notches), Qt::NoButton, Qt::NoModifier,
                  Qt::NoScrollPhase, false);
    QApplication::sendEvent(win, &e);
}

// A key pressed and released, modifiers held (as state; no separate modifier key events). The
// press may close and delete the window: the release then goes nowhere, as on a real desktop.
inline void key(QWidget* w, Qt::Key k, Qt::KeyboardModifiers m = {}) {
    QPointer<QWindow> win = w->window()->windowHandle();
    QString text;
    if (k >= Qt::Key_A && k <= Qt::Key_Z) text = QChar((m & Qt::ShiftModifier ? 'A' : 'a') + (k - Qt::Key_A));
    else if ((k >= Qt::Key_0 && k <= Qt::Key_9) || k == Qt::Key_Space || k == Qt::Key_Period || k == Qt::Key_Minus) text = QChar(k);
    else if (k == Qt::Key_Return) text = "\r";
    if (m & Qt::ControlModifier) text.clear();
    if (win) qt_handleKeyEvent(win, QEvent::KeyPress, k, m, text);
    if (win) qt_handleKeyEvent(win, QEvent::KeyRelease, k, m, text);
}

// Until the view has given ImGui every event and then drawn three more frames (asked for here, so a
// view that is idle still answers).
inline bool settle(ImGuiWidget* v, int ms = 10000) {
    int after = -1;
    return waitFor([&] {
        if (v->pendingInput() > 0) return false;
        if (after < 0) after = v->framesDrawn();
        if (v->framesDrawn() >= after + 3) return true;
        v->markDirty();
        return false;
    }, ms);
}

// A modifier and a key as a fast hand (or xdotool's `key ctrl+a`) gives them: the modifier down (a
// frame may come between), then the key down, the modifier up and the key up with none between.
inline void chord(ImGuiWidget* v, Qt::Key mod, Qt::Key k) {
    QPointer<QWindow> win = v->window()->windowHandle();
    const Qt::KeyboardModifiers m = mod == Qt::Key_Control ? Qt::ControlModifier : Qt::ShiftModifier;
    if (win) qt_handleKeyEvent(win, QEvent::KeyPress, mod, m);
    settle(v);
    if (win) qt_handleKeyEvent(win, QEvent::KeyPress, k, m);
    if (win) qt_handleKeyEvent(win, QEvent::KeyRelease, mod, Qt::NoModifier);
    if (win) qt_handleKeyEvent(win, QEvent::KeyRelease, k, Qt::NoModifier);
}

// Until the view has given ImGui every event and stopped drawing by itself (nothing asked for here:
// what a user sees when the hand stops). False when it still draws after ms.
inline bool quiesce(ImGuiWidget* v, int ms = 10000) {
    int last = -1;
    QElapsedTimer still;
    return waitFor([&] {
        if (v->pendingInput() > 0 || v->framesDrawn() != last) {
            last = v->framesDrawn();
            still.start();
            return false;
        }
        return still.elapsed() > 400;
    }, ms);
}

}  // namespace real
