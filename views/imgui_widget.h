// A QOpenGLWidget that hosts one Dear ImGui context (1.86) and forwards Qt input to it.
// Redraws only when data changed or input arrived, at most `maxFps` times a second: software GL
// is expensive, so nothing free-runs. The look (docs/architecture.md §12.6): DejaVu Sans at 15 px
// for 96 dpi, scaled with the screen's DPI and rasterised at its device pixel ratio, a dark or a
// light theme, and the view rendered at twice its size for a PNG.
#pragma once
#include <QElapsedTimer>
#include <QImage>
#include <QOpenGLWidget>
#include <QString>
#include <QTimer>
#include <deque>
#include <string>
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
    // Input events not yet given to ImGui (tests wait for 0).
    int pendingInput() const { return (int)input_.size(); }
    double lastFrameMs() const { return lastFrameMs_; }
    double worstFrameMs() const { return worstFrameMs_; }  // the slowest frame since the widget was made
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
    // Input as it arrived, applied to ImGui at the start of each frame (1.86 has no input queue of
    // its own). A frame takes events up to the second change of one button or key, so a press and
    // its release that land between two frames are seen in two frames: no quick click is lost.
    struct Input {
        enum Kind { Move, Button, Wheel, Key, Char, Leave } kind = Move;
        float x = 0, y = 0;  // Move, Button: the cursor; Wheel: x unused, y the steps
        int code = 0;        // Button: 0 left, 1 right, 2 middle; Key: KeysDown index; Char: the character
        bool down = false;   // Button, Key
        bool ctrl = false, shift = false;
    };
    void enqueue(const Input& in);
    void applyInput();  // ImGui current; before NewFrame
    void makeImGuiCurrent();
    void feedMouse(QMouseEvent* e, int button, bool down);
    void feedKey(QKeyEvent* e, bool down);
    // (Re)builds the font atlas for the screen's DPI and pixel ratio, and for exportScale when > 0
    // (a second copy of the font for renderImage); GL current. Rebuilds the texture when it exists.
    void buildFonts(int exportScale = 0);
    void applyStyle();
    // One ImGui frame of the view into the bound framebuffer at fbScale device pixels per unit.
    void drawFrame(float fbScale, ImFont* font);
    ImGuiContext* ctx_ = nullptr;
    std::string clipboard_;  // the desktop clipboard's text as ImGui's last paste read it
    std::deque<Input> input_;
    int settle_ = 0;  // frames still to draw after the last input
    std::function<void()> draw_;
    QTimer cap_;
    QElapsedTimer clock_;
    bool dirty_ = true;
    bool again_ = false;
    int frames_ = 0;
    double lastFrameMs_ = 0, worstFrameMs_ = 0;
    bool glReady_ = false;
    bool light_ = false;
    ImFont* font_ = nullptr;        // the views' font at the screen's scale
    ImFont* exportFont_ = nullptr;  // the same at exportScale_ (renderImage)
    int exportScale_ = 0;
    float fontDpi_ = 0, fontDpr_ = 0, uiScale_ = 1;
    QString fontText_;
};
