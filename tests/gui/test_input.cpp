// Input that never drops an event (views/imgui_widget.cpp): a press and its release delivered with
// no frame between them still click; so do two quick clicks in a row, and a key tapped.
#include <gtest/gtest.h>

#include <QClipboard>
#include <QGuiApplication>

#include "imgui.h"
#include "real_input.h"

namespace {

struct ButtonView {
    ImGuiWidget view;
    int clicks = 0, enters = 0;
    ImVec2 lo, hi;
    ButtonView() {
        view.resize(400, 200);
        view.setDrawFunction([this] {
            if (ImGui::Button("press me", ImVec2(200, 60))) clicks++;
            lo = ImGui::GetItemRectMin(), hi = ImGui::GetItemRectMax();
            if (ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Enter))) enters++;
        });
        view.show();
    }
    QPoint centre() const { return QPoint((int)(lo.x + hi.x) / 2, (int)(lo.y + hi.y) / 2); }
};

}  // namespace

TEST(Input, QuickClickLandsWithNoFrameBetweenPressAndRelease) {
    ButtonView b;
    ASSERT_TRUE(waitFor([&] { return b.view.framesDrawn() > 0 && b.hi.x > 0; }, 20000));
    real::move(&b.view, b.centre());
    ASSERT_TRUE(real::quiesce(&b.view));
    real::quickClick(&b.view, b.centre());  // press and release in one go: no frame can be drawn between them
    EXPECT_EQ(b.view.pendingInput(), 2) << "the press and the release should both wait for the next frame";
    ASSERT_TRUE(real::quiesce(&b.view));
    EXPECT_EQ(b.clicks, 1);
    real::click(&b.view, b.centre());
    real::click(&b.view, b.centre());  // two more, back to back
    ASSERT_TRUE(real::quiesce(&b.view));
    EXPECT_EQ(b.clicks, 3);
}

TEST(Input, QuickKeyTapLands) {
    ButtonView b;
    ASSERT_TRUE(waitFor([&] { return b.view.framesDrawn() > 0; }, 20000));
    b.view.setFocus();
    b.view.activateWindow();
    ASSERT_TRUE(waitFor([&] { return b.view.hasFocus(); }, 5000));
    real::key(&b.view, Qt::Key_Return);
    ASSERT_TRUE(real::quiesce(&b.view));
    EXPECT_EQ(b.enters, 1);
}

// A text field edits as text fields do: Ctrl+A selects all, Home and End move, Ctrl+C copies to the
// desktop's clipboard and Ctrl+V pastes from it (the tuning view's constraint and tag fields).
TEST(Input, TextFieldTakesSelectAllHomeEndAndTheClipboard) {
    ImGuiWidget view;
    char text[64] = "";
    ImVec2 lo, hi;
    view.resize(400, 120);
    view.setDrawFunction([&] {
        ImGui::InputText("field", text, sizeof text);
        lo = ImGui::GetItemRectMin(), hi = ImGui::GetItemRectMax();
    });
    view.show();
    ASSERT_TRUE(waitFor([&] { return view.framesDrawn() > 0 && hi.x > 0; }, 20000));
    view.setFocus();
    view.activateWindow();
    ASSERT_TRUE(waitFor([&] { return view.hasFocus(); }, 5000));
    real::click(&view, QPoint((int)(lo.x + 20), (int)(lo.y + hi.y) / 2));
    auto type = [&](std::initializer_list<Qt::Key> keys, Qt::KeyboardModifiers m = {}) {
        for (Qt::Key k : keys) real::key(&view, k, m);
        ASSERT_TRUE(real::quiesce(&view));
    };
    type({Qt::Key_A, Qt::Key_B, Qt::Key_C});
    ASSERT_STREQ(text, "abc");
    type({Qt::Key_A}, Qt::ControlModifier);
    type({Qt::Key_Backspace});
    EXPECT_STREQ(text, "") << "Ctrl+A selected all";
    type({Qt::Key_Q, Qt::Key_W});
    real::chord(&view, Qt::Key_Control, Qt::Key_A);  // Ctrl let go before A: still Ctrl+A
    type({Qt::Key_Backspace});
    EXPECT_STREQ(text, "") << "a quick Ctrl+A selected all";
    type({Qt::Key_X, Qt::Key_Y, Qt::Key_Home, Qt::Key_Z});
    EXPECT_STREQ(text, "zxy") << "Home went to the start";
    type({Qt::Key_End, Qt::Key_W});
    EXPECT_STREQ(text, "zxyw") << "End went to the end";
    type({Qt::Key_A, Qt::Key_C}, Qt::ControlModifier);
    EXPECT_EQ(QGuiApplication::clipboard()->text().toStdString(), "zxyw") << "Ctrl+C reached the desktop clipboard";
    QGuiApplication::clipboard()->setText("dropped <= 0.01");
    type({Qt::Key_A, Qt::Key_V}, Qt::ControlModifier);
    EXPECT_STREQ(text, "dropped <= 0.01") << "Ctrl+V pasted over the selection";
}
