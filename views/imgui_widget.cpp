#include "imgui_widget.h"

#include <QFile>
#include <QFileInfo>
#include <QKeyEvent>
#include <QMouseEvent>
#include <QOpenGLFramebufferObject>
#include <QScreen>
#include <QWheelEvent>
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "imgui.h"
#include "backends/imgui_impl_opengl3.h"
#include "widgets.h"

namespace {
constexpr float k_fontPx = 15.f;  // the views' text at 96 dpi
constexpr const char* k_fontFile = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";  // Debian's fonts-dejavu-core
// Latin-1, Greek, general punctuation (dashes, quotes, ellipsis), arrows, minus, <= and >=.
const ImWchar k_ranges[] = {0x0020, 0x00FF, 0x0370, 0x03FF, 0x2010, 0x205E, 0x2190, 0x2199, 0x2212, 0x2212, 0x2264, 0x2265, 0};
}  // namespace

QString ImGuiWidget::fontPath() {
    const QByteArray env = qgetenv("ROUTELAB_FONT");
    return env.isEmpty() ? QString(k_fontFile) : QString::fromLocal8Bit(env);
}

ImGuiWidget::ImGuiWidget(QWidget* parent, int maxFps) : QOpenGLWidget(parent) {
    setMouseTracking(true);
    setFocusPolicy(Qt::StrongFocus);
    IMGUI_CHECKVERSION();
    ImGuiContext* previous = ImGui::GetCurrentContext();
    ctx_ = ImGui::CreateContext();
    ImGui::SetCurrentContext(ctx_);
    ImGuiIO& io = ImGui::GetIO();
    io.IniFilename = nullptr;  // window state lives in QSettings, not imgui.ini
    // 1.86 has no AddKeyEvent: KeysDown[] indexed by our own codes, mapped through KeyMap.
    io.KeyMap[ImGuiKey_Tab] = Qt::Key_Tab & 0x1ff;
    io.KeyMap[ImGuiKey_LeftArrow] = Qt::Key_Left & 0x1ff;
    io.KeyMap[ImGuiKey_RightArrow] = Qt::Key_Right & 0x1ff;
    io.KeyMap[ImGuiKey_UpArrow] = Qt::Key_Up & 0x1ff;
    io.KeyMap[ImGuiKey_DownArrow] = Qt::Key_Down & 0x1ff;
    io.KeyMap[ImGuiKey_Backspace] = Qt::Key_Backspace & 0x1ff;
    io.KeyMap[ImGuiKey_Delete] = Qt::Key_Delete & 0x1ff;
    io.KeyMap[ImGuiKey_Enter] = Qt::Key_Return & 0x1ff;
    io.KeyMap[ImGuiKey_Escape] = Qt::Key_Escape & 0x1ff;
    applyStyle();
    ImGui::SetCurrentContext(previous);
    // The cap: a repaint at most every 1000/maxFps ms, and only when something changed.
    cap_.setInterval(1000 / std::max(1, maxFps));
    connect(&cap_, &QTimer::timeout, this, [this] {
        if (dirty_) update();
        else cap_.stop();
    });
    clock_.start();
}

ImGuiWidget::~ImGuiWidget() {
    makeCurrent();
    makeImGuiCurrent();
    if (glReady_) ImGui_ImplOpenGL3_Shutdown();
    ImGui::DestroyContext(ctx_);
    doneCurrent();
}

void ImGuiWidget::makeImGuiCurrent() { ImGui::SetCurrentContext(ctx_); }

void ImGuiWidget::markDirty() {
    dirty_ = true;
    if (!cap_.isActive()) {
        update();
        cap_.start();
    }
}

void ImGuiWidget::initializeGL() {
    makeImGuiCurrent();
    ImGui_ImplOpenGL3_Init("#version 130");
    glReady_ = true;
    buildFonts();
}

void ImGuiWidget::resizeGL(int, int) { markDirty(); }

void ImGuiWidget::applyStyle() {
    ImGuiStyle style;
    if (light_) ImGui::StyleColorsLight(&style);
    else ImGui::StyleColorsDark(&style);
    style.ScaleAllSizes(uiScale_);
    ImGui::GetStyle() = style;
}

void ImGuiWidget::setLightTheme(bool light) {
    ImGuiContext* previous = ImGui::GetCurrentContext();
    light_ = light;
    makeImGuiCurrent();
    applyStyle();
    setViewTheme(light);  // the views' own colours (one palette for the process: the window has one view widget)
    ImGui::SetCurrentContext(previous);
    markDirty();
}

void ImGuiWidget::buildFonts(int exportScale) {
    const QScreen* sc = screen();
    const float dpi = sc ? (float)sc->logicalDotsPerInch() : 96.f, dpr = (float)devicePixelRatioF();
    if (fontText_.size() && dpi == fontDpi_ && dpr == fontDpr_ && (exportScale <= 0 || exportScale == exportScale_)) return;
    if (exportScale > 0) exportScale_ = exportScale;
    fontDpi_ = dpi, fontDpr_ = dpr;
    uiScale_ = std::clamp(dpi / 96.f, 0.5f, 4.f);
    applyStyle();
    ImGuiIO& io = ImGui::GetIO();
    // The atlas's texture goes with the old fonts and is made again below. Not DestroyDeviceObjects:
    // 1.86 keeps its vertex buffers' sizes across it, and the next frame's uploads then fail.
    // Before the first frame there is no texture: ImGui_ImplOpenGL3_NewFrame makes it.
    const bool hadTexture = glReady_ && io.Fonts->TexID != 0;
    if (hadTexture) ImGui_ImplOpenGL3_DestroyFontsTexture();
    io.Fonts->Clear();
    io.FontDefault = nullptr;
    font_ = exportFont_ = nullptr;
    const float px = std::round(k_fontPx * uiScale_);  // in the view's units (logical pixels)
    const QString path = fontPath();
    const QByteArray file = QFile::encodeName(path);
    // Each copy is rasterised at the pixels it lands on and scaled back to the view's units.
    auto add = [&](float scale) -> ImFont* {
        ImFontConfig cfg;
        cfg.OversampleH = 2;
        ImFont* f = io.Fonts->AddFontFromFileTTF(file.constData(), px * scale, &cfg, k_ranges);
        if (f) f->Scale = 1.f / scale;
        return f;
    };
    const QFileInfo info(path);
    if (info.isFile() && info.isReadable()) {
        font_ = add(dpr);
        if (font_ && exportScale_ > 0) exportFont_ = add((float)exportScale_);
    }
    if (font_) {
        fontText_ = QString("%1 %2 px").arg(info.completeBaseName() == "DejaVuSans" ? "DejaVu Sans" : info.completeBaseName()).arg(px);
    } else {
        static bool warned = false;  // once a process, not once a rebuild
        if (!warned) std::fprintf(stderr, "warning: font %s not found; the views use ImGui's default font\n", qPrintable(path));
        warned = true;
        auto fallback = [&](float scale) {
            ImFontConfig cfg;
            cfg.SizePixels = 13.f * uiScale_ * scale;
            ImFont* f = io.Fonts->AddFontDefault(&cfg);
            f->Scale = 1.f / scale;
            return f;
        };
        font_ = fallback(dpr);
        if (exportScale_ > 0) exportFont_ = fallback((float)exportScale_);
        fontText_ = QString("ImGui default font %1 px").arg(std::round(13.f * uiScale_));
    }
    io.FontDefault = font_;
    if (hadTexture) ImGui_ImplOpenGL3_CreateFontsTexture();
}

void ImGuiWidget::drawFrame(float fbScale, ImFont* font) {
    ImGuiIO& io = ImGui::GetIO();
    io.DisplaySize = ImVec2((float)width(), (float)height());
    io.DisplayFramebufferScale = ImVec2(fbScale, fbScale);
    io.FontDefault = font;
    io.DeltaTime = std::max(1e-3f, (float)clock_.restart() / 1000.f);
    ImGui_ImplOpenGL3_NewFrame();
    ImGui::NewFrame();
    ImGui::SetNextWindowPos(ImVec2(0, 0));
    ImGui::SetNextWindowSize(io.DisplaySize);
    ImGui::Begin("##view", nullptr,
                 ImGuiWindowFlags_NoTitleBar | ImGuiWindowFlags_NoResize | ImGuiWindowFlags_NoMove |
                     ImGuiWindowFlags_NoCollapse | ImGuiWindowFlags_NoBringToFrontOnFocus);
    if (draw_) draw_();
    ImGui::End();
    ImGui::Render();
    glViewport(0, 0, (int)(width() * fbScale), (int)(height() * fbScale));
    if (light_) glClearColor(0.94f, 0.94f, 0.94f, 1.f);
    else glClearColor(0.1f, 0.1f, 0.12f, 1.f);
    glClear(GL_COLOR_BUFFER_BIT);
    ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
    io.FontDefault = font_;
}

void ImGuiWidget::paintGL() {
    QElapsedTimer t;
    t.start();
    makeImGuiCurrent();
    buildFonts();  // a no-op unless the screen's DPI or pixel ratio changed
    drawFrame((float)devicePixelRatioF(), font_);
    dirty_ = again_;  // an animating view asked for the next frame; otherwise idle until data or input
    again_ = false;
    if (dirty_ && !cap_.isActive()) cap_.start();
    frames_++;
    lastFrameMs_ = t.nsecsElapsed() / 1e6;
}

QImage ImGuiWidget::renderImage(int scale) {
    if (!glReady_ || scale < 1 || width() <= 0 || height() <= 0) return {};
    makeCurrent();
    ImGuiContext* previous = ImGui::GetCurrentContext();
    makeImGuiCurrent();
    buildFonts(scale);
    QImage img;
    {
        QOpenGLFramebufferObject fbo(width() * scale, height() * scale);
        if (fbo.isValid() && fbo.bind()) {
            drawFrame((float)scale, exportFont_ ? exportFont_ : font_);
            img = fbo.toImage().convertToFormat(QImage::Format_RGB32);
            fbo.release();
        }
    }
    ImGui::SetCurrentContext(previous);
    doneCurrent();
    markDirty();  // the screen's frame again, on the screen's font
    return img;
}

void ImGuiWidget::feedMouse(QMouseEvent* e, bool down) {
    makeImGuiCurrent();
    ImGuiIO& io = ImGui::GetIO();
    io.MousePos = ImVec2((float)e->position().x(), (float)e->position().y());
    const int b = e->button() == Qt::LeftButton ? 0 : e->button() == Qt::RightButton ? 1
                  : e->button() == Qt::MiddleButton ? 2 : -1;
    if (b >= 0) io.MouseDown[b] = down;
    // Modifiers as they are now: a Ctrl released outside the view must not leave Ctrl+click on
    // (which turns an ImGui slider into a text field).
    io.KeyCtrl = e->modifiers() & Qt::ControlModifier;
    io.KeyShift = e->modifiers() & Qt::ShiftModifier;
    markDirty();
}

void ImGuiWidget::mouseMoveEvent(QMouseEvent* e) { feedMouse(e, e->buttons() & Qt::LeftButton); }
void ImGuiWidget::mousePressEvent(QMouseEvent* e) { feedMouse(e, true); }
void ImGuiWidget::mouseReleaseEvent(QMouseEvent* e) { feedMouse(e, false); }

void ImGuiWidget::wheelEvent(QWheelEvent* e) {
    makeImGuiCurrent();
    ImGui::GetIO().MouseWheel += e->angleDelta().y() / 120.f;
    markDirty();
}

void ImGuiWidget::keyPressEvent(QKeyEvent* e) {
    makeImGuiCurrent();
    ImGuiIO& io = ImGui::GetIO();
    io.KeysDown[e->key() & 0x1ff] = true;
    io.KeyCtrl = e->modifiers() & Qt::ControlModifier;
    io.KeyShift = e->modifiers() & Qt::ShiftModifier;
    for (QChar c : e->text())
        if (c.isPrint()) io.AddInputCharacter(c.unicode());
    markDirty();
}

void ImGuiWidget::keyReleaseEvent(QKeyEvent* e) {
    makeImGuiCurrent();
    ImGuiIO& io = ImGui::GetIO();
    io.KeysDown[e->key() & 0x1ff] = false;
    io.KeyCtrl = (e->modifiers() & Qt::ControlModifier) && e->key() != Qt::Key_Control;
    io.KeyShift = (e->modifiers() & Qt::ShiftModifier) && e->key() != Qt::Key_Shift;
    markDirty();
}

void ImGuiWidget::leaveEvent(QEvent*) {
    makeImGuiCurrent();
    ImGui::GetIO().MousePos = ImVec2(-FLT_MAX, -FLT_MAX);
    markDirty();
}
