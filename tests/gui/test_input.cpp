// Input that never drops an event (views/imgui_widget.cpp): a press and its release delivered with
// no frame between them still click; so do two quick clicks in a row, and a key tapped.
#include <gtest/gtest.h>

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
