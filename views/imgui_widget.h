// A QOpenGLWidget that hosts one Dear ImGui context (1.86) and forwards Qt input to it.
// Redraws only when data changed or input arrived, at most `maxFps` times a second: software GL
// is expensive, so nothing free-runs.
#pragma once
#include <QElapsedTimer>
#include <QOpenGLWidget>
#include <QTimer>
#include <functional>

struct ImGuiContext;

class ImGuiWidget : public QOpenGLWidget {
    Q_OBJECT
public:
    explicit ImGuiWidget(QWidget* parent = nullptr, int maxFps = 15);
    ~ImGuiWidget() override;
    // Called inside each ImGui frame, with this widget's context current.
    void setDrawFunction(std::function<void()> fn) { draw_ = std::move(fn); }
    // New data: schedule a repaint (coalesced by the fps cap).
    void markDirty();
    // From inside a draw: one more frame after this one (an animation in progress), still capped.
    void requestAnotherFrame() { again_ = true; }
    int framesDrawn() const { return frames_; }
    double lastFrameMs() const { return lastFrameMs_; }

protected:
    void initializeGL() override;
    void paintGL() override;
    void resizeGL(int w, int h) override;
    void mouseMoveEvent(QMouseEvent* e) override;
    void mousePressEvent(QMouseEvent* e) override;
    void mouseReleaseEvent(QMouseEvent* e) override;
    void wheelEvent(QWheelEvent* e) override;
    void keyPressEvent(QKeyEvent* e) override;
    void keyReleaseEvent(QKeyEvent* e) override;
    void leaveEvent(QEvent* e) override;

private:
    void makeImGuiCurrent();
    void feedMouse(QMouseEvent* e, bool down);
    ImGuiContext* ctx_ = nullptr;
    std::function<void()> draw_;
    QTimer cap_;
    QElapsedTimer clock_;
    bool dirty_ = true;
    bool again_ = false;
    int frames_ = 0;
    double lastFrameMs_ = 0;
    bool glReady_ = false;
};
