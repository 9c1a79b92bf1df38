// Every interactive element the README names, pointed at by real input (tests/gui/real_input.h) in
// a window that trains: tokens in the heads, experts and routing views, attention thumbnails
// (quick clicks), tuning rows, lines and the sweep filter, the curves. Each hover must answer (a
// tooltip, the state it moves) and none may trip ImGui (an assert aborts the test).
#include <gtest/gtest.h>

#include "window_fixture.h"

class Hover : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        win = new TestWindow;
        win->open(6);
    }
    static void TearDownTestSuite() {
        delete win;
        win = nullptr;
    }
    static TestWindow* win;
    MainWindow& w() { return *win->w; }
    ImGuiWidget* v() { return win->w->views(); }
    void hover(const ViewTarget& t) {
        real::move(v(), TestWindow::centre(t));
        real::settle(v());
    }
    // Each target backwards, then forwards: every step moves the choice away from the one drawn
    // highlighted, whichever it was.
    template <class F>
    static void bothWays(const std::vector<ViewTarget>& ts, F each) {
        for (size_t i = ts.size(); i-- > 0;) each(ts[i]);
        for (const ViewTarget& t : ts) each(t);
    }
};
TestWindow* Hover::win = nullptr;

TEST_F(Hover, RoutingTokensFollowTheMouse) {
    win->show("routing");
    const auto ts = win->targets("routing.token");
    ASSERT_GE(ts.size(), 4u);
    bothWays(ts, [&](const ViewTarget& t) {
        hover(t);
        EXPECT_EQ(w().viewStates().routing.token, t.index);
    });
}

TEST_F(Hover, HeadsCellsExplainThemselves) {
    win->show("heads");
    const auto ts = win->targets("heads.cell");
    ASSERT_GE(ts.size(), 4u);
    for (const ViewTarget& t : ts) {
        hover(t);
        EXPECT_NE(w().viewOutbox().hoverText.find("(#" + std::to_string(t.index) + ")"), std::string::npos) << w().viewOutbox().hoverText;
    }
}

TEST_F(Hover, ExpertsTokensExplainThemselves) {
    win->show("experts");
    const auto ts = win->targets("experts.token");
    ASSERT_GE(ts.size(), 4u);
    for (const ViewTarget& t : ts) {
        hover(t);
        EXPECT_EQ(w().viewOutbox().hoverText.rfind("token '" + w().runs().data().probe.tokens[t.index].text + "'", 0), 0u)
            << w().viewOutbox().hoverText;
    }
}

TEST_F(Hover, AttentionThumbnailsTakeQuickClicks) {
    win->show("attention");
    const auto ts = win->targets("attention.thumb");
    ASSERT_GE(ts.size(), 2u);
    bothWays(ts, [&](const ViewTarget& t) {
        real::click(v(), TestWindow::centre(t));  // no delay between press and release
        real::settle(v());
        EXPECT_EQ(w().viewStates().attention.head, t.index);
    });
}

TEST_F(Hover, CurvesAnswerWithTheirValues) {
    win->show("curves");
    const auto ts = win->targets("curves.plot");
    ASSERT_GE(ts.size(), 2u);
    for (const ViewTarget& t : ts) {
        hover(t);
        EXPECT_NE(w().viewOutbox().hoverText.find(" at step "), std::string::npos) << w().viewOutbox().hoverText;
    }
}

TEST_F(Hover, TuningRowsLinesAndTheSweepFilter) {
    win->show("tuning");
    const auto rows = win->targets("tuning.row");
    ASSERT_GE(rows.size(), 3u);  // the sweep's two points and the run training now
    for (const ViewTarget& t : rows) {
        hover(t);
        EXPECT_EQ(w().viewStates().tuning.hovered, t.index);
    }
    const auto lines = win->targets("tuning.line");
    ASSERT_GE(lines.size(), 2u);  // the finished runs have a validation loss
    for (const ViewTarget& t : lines) {
        hover(t);
        EXPECT_NE(w().viewStates().tuning.hovered, 0);  // the nearest line: this one, or one that crosses it there
        EXPECT_NE(w().viewOutbox().hoverText.find("val loss"), std::string::npos) << w().viewOutbox().hoverText;
    }
    const auto filter = win->targets("tuning.filter");
    ASSERT_EQ(filter.size(), 1u);
    real::click(v(), TestWindow::centre(filter[0]));
    real::quiesce(v());  // no further input: the list must show from the click alone
    std::vector<ViewTarget> sweeps;
    for (const ViewTarget& t : w().viewOutbox().targets)
        if (t.kind == "tuning.sweep") sweeps.push_back(t);
    ASSERT_EQ(sweeps.size(), 2u) << "the filter did not open: (all runs) and the sweep 'gui' expected";
    real::click(v(), TestWindow::centre(sweeps[1]));
    real::settle(v());
    EXPECT_EQ(w().viewStates().tuning.sweep, "gui");
    EXPECT_EQ(win->targets("tuning.row").size(), 2u);  // only the sweep's runs
}
