#include "imgui_widget.h"

#include <QClipboard>
#include <QFile>
#include <QFileInfo>
#include <QGuiApplication>
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
    // A text field's editing keys: Home/End, and Ctrl+A/C/V/X/Y/Z (ImGui reads the letters through the
    // map too). Not Space: Qt::Key_Shift & 0x1ff is 0x20, Space's code, so Shift would press it.
    io.KeyMap[ImGuiKey_Home] = Qt::Key_Home & 0x1ff;
    io.KeyMap[ImGuiKey_End] = Qt::Key_End & 0x1ff;
    io.KeyMap[ImGuiKey_PageUp] = Qt::Key_PageUp & 0x1ff;
    io.KeyMap[ImGuiKey_PageDown] = Qt::Key_PageDown & 0x1ff;
    io.KeyMap[ImGuiKey_Insert] = Qt::Key_Insert & 0x1ff;
    io.KeyMap[ImGuiKey_KeyPadEnter] = Qt::Key_Enter & 0x1ff;
    io.KeyMap[ImGuiKey_A] = Qt::Key_A, io.KeyMap[ImGuiKey_C] = Qt::Key_C, io.KeyMap[ImGuiKey_V] = Qt::Key_V;
    io.KeyMap[ImGuiKey_X] = Qt::Key_X, io.KeyMap[ImGuiKey_Y] = Qt::Key_Y, io.KeyMap[ImGuiKey_Z] = Qt::Key_Z;
    // Copy and paste through the desktop's clipboard (ImGui's own, on Linux, stays inside ImGui).
    io.SetClipboardTextFn = [](void*, const char* text) { QGuiApplication::clipboard()->setText(QString::fromUtf8(text)); };
    io.GetClipboardTextFn = [](void* held) -> const char* {
        auto* text = static_cast<std::string*>(held);  // kept until the next paste: ImGui reads it after this returns
        *text = QGuiApplication::clipboard()->text().toStdString();
        return text->c_str();
    };
    io.ClipboardUserData = &clipboard_;
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
    applyInput();
    drawFrame((float)devicePixelRatioF(), font_);
    dirty_ = again_;  // an animating view asked for the next frame; otherwise idle until data or input
    again_ = false;
    if (dirty_ && !cap_.isActive()) cap_.start();
    frames_++;
    lastFrameMs_ = t.nsecsElapsed() / 1e6;
    worstFrameMs_ = std::max(worstFrameMs_, lastFrameMs_);
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

void ImGuiWidget::enqueue(const Input& in) {
    input_.push_back(in);
    markDirty();
}

void ImGuiWidget::applyInput() {
    ImGuiIO& io = ImGui::GetIO();
    bool buttonChanged[5] = {}, keyChanged[512] = {};
    // ImGui settles over frames after input: a popup opened by a click is sized in the next frame
    // and drawn in the one after, a tooltip follows a hover. Two more frames, or a combo opened by a
    // click stays invisible until the mouse moves again.
    if (!input_.empty()) settle_ = 2;
    bool pressed = false;  // a key or button went down this frame
    while (!input_.empty()) {
        const Input& in = input_.front();
        // A second change of the same button or key waits for the next frame: ImGui 1.86 reads
        // MouseDown/KeysDown once a frame, so both changes in one frame would cancel out.
        if (in.kind == Input::Button && buttonChanged[in.code]) break;
        if (in.kind == Input::Key && keyChanged[in.code]) break;
        // So does a change of Ctrl or Shift after a press: ImGui reads KeyCtrl once a frame too, and a
        // quick Ctrl+A comes as Ctrl down, A down, Ctrl up, A up (xdotool, a fast hand), which would
        // leave A pressed without Ctrl.
        const bool carriesMods = in.kind != Input::Wheel && in.kind != Input::Char && in.kind != Input::Leave;
        if (pressed && carriesMods && (in.ctrl != io.KeyCtrl || in.shift != io.KeyShift)) break;
        pressed |= (in.kind == Input::Key || in.kind == Input::Button) && in.down;
        switch (in.kind) {
        case Input::Move: io.MousePos = ImVec2(in.x, in.y); break;
        case Input::Button:
            io.MousePos = ImVec2(in.x, in.y);
            if (io.MouseDown[in.code] != in.down) buttonChanged[in.code] = true;
            io.MouseDown[in.code] = in.down;
            break;
        case Input::Wheel: io.MouseWheel += in.y; break;
        case Input::Key:
            if (io.KeysDown[in.code] != in.down) keyChanged[in.code] = true;
            io.KeysDown[in.code] = in.down;
            break;
        case Input::Char: io.AddInputCharacter((unsigned)in.code); break;
        case Input::Leave: io.MousePos = ImVec2(-FLT_MAX, -FLT_MAX); break;
        }
        // Modifiers as they were with this event: a Ctrl released outside the view must not leave
        // Ctrl+click on (which turns an ImGui slider into a text field).
        if (carriesMods) io.KeyCtrl = in.ctrl, io.KeyShift = in.shift;
        input_.pop_front();
    }
    if (!input_.empty()) again_ = true;  // the rest in the next frame
    else if (settle_ > 0) settle_--, again_ = true;
}

void ImGuiWidget::feedMouse(QMouseEvent* e, int button, bool down) {
    Input in;
    in.kind = button >= 0 ? Input::Button : Input::Move;
    in.x = (float)e->position().x(), in.y = (float)e->position().y();
    in.code = button, in.down = down;
    in.ctrl = e->modifiers() & Qt::ControlModifier;
    in.shift = e->modifiers() & Qt::ShiftModifier;
    enqueue(in);
}

namespace {
int imguiButton(Qt::MouseButton b) {
    return b == Qt::LeftButton ? 0 : b == Qt::RightButton ? 1 : b == Qt::MiddleButton ? 2 : -1;
}
}  // namespace

void ImGuiWidget::mouseMoveEvent(QMouseEvent* e) { feedMouse(e, -1, false); }
void ImGuiWidget::mousePressEvent(QMouseEvent* e) {
    if (imguiButton(e->button()) >= 0) feedMouse(e, imguiButton(e->button()), true);
}
void ImGuiWidget::mouseReleaseEvent(QMouseEvent* e) {
    if (imguiButton(e->button()) >= 0) feedMouse(e, imguiButton(e->button()), false);
}
void ImGuiWidget::wheelEvent(QWheelEvent* e) {
    Input in;
    in.kind = Input::Wheel;
    in.y = e->angleDelta().y() / 120.f;
    enqueue(in);
}

void ImGuiWidget::keyPressEvent(QKeyEvent* e) { feedKey(e, true); }
void ImGuiWidget::keyReleaseEvent(QKeyEvent* e) { feedKey(e, false); }

void ImGuiWidget::feedKey(QKeyEvent* e, bool down) {
    Input in;
    in.kind = Input::Key;
    in.code = e->key() & 0x1ff, in.down = down;
    in.ctrl = (e->modifiers() & Qt::ControlModifier) && !(!down && e->key() == Qt::Key_Control);
    in.shift = (e->modifiers() & Qt::ShiftModifier) && !(!down && e->key() == Qt::Key_Shift);
    // X's auto-repeat sends release + press pairs while a key is held: ImGui repeats held keys itself.
    if (!e->isAutoRepeat()) enqueue(in);
    if (!down) return;
    for (QChar c : e->text()) {
        if (!c.isPrint()) continue;
        Input ch;
        ch.kind = Input::Char;
        ch.code = c.unicode();
        enqueue(ch);
    }
}

void ImGuiWidget::leaveEvent(QEvent*) {
    Input in;
    in.kind = Input::Leave;
    enqueue(in);
}
