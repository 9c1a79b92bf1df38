#include "imgui_widget.h"

#include <QKeyEvent>
#include <QMouseEvent>
#include <QWheelEvent>

#include "imgui.h"
#include "backends/imgui_impl_opengl3.h"

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
    ImGui::StyleColorsDark();
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
}

void ImGuiWidget::resizeGL(int, int) { markDirty(); }

void ImGuiWidget::paintGL() {
    QElapsedTimer t;
    t.start();
    makeImGuiCurrent();
    ImGuiIO& io = ImGui::GetIO();
    io.DisplaySize = ImVec2((float)width(), (float)height());
    const float dpr = (float)devicePixelRatioF();
    io.DisplayFramebufferScale = ImVec2(dpr, dpr);
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
    glViewport(0, 0, (int)(width() * dpr), (int)(height() * dpr));
    glClearColor(0.1f, 0.1f, 0.12f, 1.f);
    glClear(GL_COLOR_BUFFER_BIT);
    ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
    dirty_ = again_;  // an animating view asked for the next frame; otherwise idle until data or input
    again_ = false;
    if (dirty_ && !cap_.isActive()) cap_.start();
    frames_++;
    lastFrameMs_ = t.nsecsElapsed() / 1e6;
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
