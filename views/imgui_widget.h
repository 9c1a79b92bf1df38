// A QOpenGLWidget that hosts one Dear ImGui context (1.86) and forwards Qt input to it.
// Redraws only when data changed or input arrived, at most `maxFps` times a second: software GL
// is expensive, so nothing free-runs. The look (docs/architecture.md §14): DejaVu Sans at 15 px
// for 96 dpi, scaled with the screen's DPI and rasterised at its device pixel ratio, a dark or a
// light theme, and the view rendered at twice its size for a PNG.
#pragma once
#include <QElapsedTimer>
#include <QImage>
#include <QOpenGLWidget>
#include <QString>
#include <QTimer>
#include <functional>

struct ImGuiContext;
struct ImFont;

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
    // Dark (the default) or light: ImGui's style and the views' own colours (widgets.h, Look).
    void setLightTheme(bool light);
    bool lightTheme() const { return light_; }
    // The current frame drawn again into an offscreen framebuffer `scale` times the widget's size,
    // with the font rasterised at that scale (sharp text, not an upscaled picture); null when GL is
    // not up yet.
    QImage renderImage(int scale);
    // What the views are written in: "DejaVu Sans 15 px" or "ImGui default font 13 px" (the file missing).
    QString fontDescription() const { return fontText_; }
    // The UI font's file; ROUTELAB_FONT overrides it (tests use a missing one).
    static QString fontPath();

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
    // (Re)builds the font atlas for the screen's DPI and pixel ratio, and for exportScale when > 0
    // (a second copy of the font for renderImage); GL current. Rebuilds the texture when it exists.
    void buildFonts(int exportScale = 0);
    void applyStyle();
    // One ImGui frame of the view into the bound framebuffer at fbScale device pixels per unit.
    void drawFrame(float fbScale, ImFont* font);
    ImGuiContext* ctx_ = nullptr;
    std::function<void()> draw_;
    QTimer cap_;
    QElapsedTimer clock_;
    bool dirty_ = true;
    bool again_ = false;
    int frames_ = 0;
    double lastFrameMs_ = 0;
    bool glReady_ = false;
    bool light_ = false;
    ImFont* font_ = nullptr;        // the views' font at the screen's scale
    ImFont* exportFont_ = nullptr;  // the same at exportScale_ (renderImage)
    int exportScale_ = 0;
    float fontDpi_ = 0, fontDpr_ = 0, uiScale_ = 1;
    QString fontText_;
};
