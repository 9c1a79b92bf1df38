// End to end: the real window under Xvfb. Trains a few steps, screenshots each view, checks the
// view area has rendered content (not blank or black; varied colours in heatmaps), and hovers a
// heatmap cell through the Qt -> ImGui bridge to read its tooltip.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <QImage>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>

namespace {

std::string run(const std::string& args, int* code) {
    const std::string cmd = "xvfb-run -a -s '-screen 0 1600x1000x24' " + std::string(ROUTELAB_GUI_BIN) + " " + args + " 2>&1";
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int st = pclose(p);
    *code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

std::string shot_path(const std::string& view) {
    return (std::filesystem::temp_directory_path() / ("routelab_e2e_" + view + "_" + std::to_string(getpid()) + ".png")).string();
}

}  // namespace

class GuiView : public ::testing::TestWithParam<const char*> {};

TEST_P(GuiView, RendersContent) {
    const std::string view = GetParam(), png = shot_path(view);
    int code = 0;
    const std::string out = run("--preset moh-moe --demo-steps 20 --view " + view + " --screenshot " + png + " --quit", &code);
    ASSERT_EQ(code, 0) << out;
    QImage img(QString::fromStdString(png));
    ASSERT_FALSE(img.isNull()) << out;
    // The view area: below the toolbar and tabs, above the status bar.
    const int y0 = 80, y1 = img.height() - 40;
    std::set<QRgb> colours;
    long bright = 0, total = 0;
    for (int y = y0; y < y1; y += 2)
        for (int x = 0; x < img.width(); x += 2) {
            const QRgb c = img.pixel(x, y);
            colours.insert(c & 0xF8F8F8);  // bucket near-identical shades
            bright += qGray(c) > 60;
            total++;
        }
    std::printf("[e2e] view %s: %zu colours, %.1f%% bright pixels\n", view.c_str(), colours.size(), 100.0 * bright / total);
    EXPECT_GE(colours.size(), 8u) << "a view of one or two colours is blank";
    EXPECT_GT(bright, total / 200) << "almost all black";
    std::filesystem::remove(png);
}
INSTANTIATE_TEST_SUITE_P(Views, GuiView, ::testing::Values("heads", "experts", "curves", "speedup"));

TEST(GuiHover, HeatmapTooltipThroughTheBridge) {
    int code = 0;
    // A cell of layer 0: label column 110 px, cells start below the header (see views.cpp).
    const std::string out = run("--preset seed-moh --demo-steps 10 --view heads --hover 160,140 --quit", &code);
    ASSERT_EQ(code, 0) << out;
    const auto pos = out.find("hover: token '");
    ASSERT_NE(pos, std::string::npos) << out;
    EXPECT_NE(out.find(" head ", pos), std::string::npos) << out;
    EXPECT_NE(out.find(" gate ", pos), std::string::npos) << out;
    EXPECT_NE(out.find(" rank ", pos), std::string::npos) << out;
}
