// End to end: the real window under Xvfb. Trains a few steps (a small sweep for the tuning view),
// screenshots every view, checks the
// ImGui view's own region has rendered content (not blank or black; varied colours in heatmaps),
// hovers cells through the Qt -> ImGui bridge to read tooltips, generates text, saves and reopens
// a checkpoint, exports the curves as CSV and finds the run in the workspace's run store; the first
// run without a preset routes heads and experts, the 2x PNG export, the theme kept across launches
// and the font (docs/architecture.md §12.6).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <QImage>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>
#include <string>

#include "io/resume.h"
#include "io/run_store.h"

namespace fs = std::filesystem;

namespace {

// A workspace of its own per test process: the user's run store is never touched.
std::string workspace() {
    static const fs::path w = fs::temp_directory_path() / ("routelab_e2e_ws_" + std::to_string(getpid()));
    return w.string();
}

// The window's QSettings (layout, View > Theme) live under XDG_CONFIG_HOME: each test process has
// its own, so a user's settings never change what the tests see, and the tests never change them.
std::string settings_home() {
    static const fs::path d = fs::temp_directory_path() / ("routelab_e2e_cfg_" + std::to_string(getpid()));
    return d.string();
}

// Runs a shell command; its stdout and stderr together, its exit code in *code.
std::string capture(const std::string& cmd, int* code) {
    std::string out;
    FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int st = pclose(p);
    *code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}
// Runs the window under its own X server. The X authority file is ours (-f): without it xvfb-run
// makes a temporary folder whose removal can race a window that exits at once, and then reports
// its own exit code 5 instead of the window's. env: more "NAME=value " settings for the window;
// ownWorkspace false: no --workspace (the window's default).
std::string run(const std::string& args, int* code, const std::string& env = "", bool ownWorkspace = true) {
    static int runs = 0;
    const fs::path auth = fs::temp_directory_path() / ("routelab_e2e_xauth_" + std::to_string(getpid()) + "_" +
                                                       std::to_string(runs++));
    const std::string cmd = "XDG_CONFIG_HOME=" + settings_home() + " " + env + " xvfb-run -a -f " + auth.string() +
                            " -s '-screen 0 1600x1000x24' " + std::string(ROUTELAB_GUI_BIN) +
                            (ownWorkspace ? " --workspace " + workspace() : std::string()) + " " + args;
    const std::string out = capture(cmd, code);
    fs::remove(auth);
    return out;
}

std::string temp_file(const std::string& name) {
    return (fs::temp_directory_path() / ("routelab_e2e_" + std::to_string(getpid()) + "_" + name)).string();
}

struct Rect {
    int x = 0, y = 0, w = 0, h = 0;
};
// "view rect x,y,w,h" printed by the scripted run.
bool view_rect(const std::string& out, Rect& r) {
    const auto p = out.find("view rect ");
    return p != std::string::npos && std::sscanf(out.c_str() + p, "view rect %d,%d,%d,%d", &r.x, &r.y, &r.w, &r.h) == 4;
}

}  // namespace

// View and the fewest colour buckets its region must show: heatmaps need many shades, bar charts a few.
// The speedup view draws a fixed palette whose bucket count moves with the bar lengths (7-11 seen);
// its content check is that each of its three bar colours covers over 300 sampled pixels.
class GuiView : public ::testing::TestWithParam<std::pair<const char*, size_t>> {};

TEST_P(GuiView, RendersContent) {
    const std::string view = GetParam().first, png = temp_file(view + ".png");
    int code = 0;
    std::string args = "--preset moh-moe --demo-steps 20 --view " + view + " --screenshot " + png + " --quit";
    if (view == "generate") args += " --prompt 'The capital of'";  // not the default prompt: --prompt must reach it
    const std::string sweep = temp_file("sweep.json");
    if (view == "tuning") {  // something to rank: a 2 x 2 sweep, one run highlighted as if hovered
        std::ofstream(sweep) << R"({"name": "e2e", "preset": "moh-moe", "grid": {"model.attention.heads.beta": [0.001, 0.1],
                                   "model.moe.aux_weight": [0.001, 0.01]}})";
        args = "--sweep " + sweep + " --demo-steps 8 --highlight-run 2 --view tuning --screenshot " + png + " --quit";
    }
    const std::string out = run(args, &code);
    ASSERT_EQ(code, 0) << out;
    QImage img(QString::fromStdString(png));
    ASSERT_FALSE(img.isNull()) << out;
    Rect r;
    ASSERT_TRUE(view_rect(out, r)) << out;
    ASSERT_GT(r.w, 400);
    ASSERT_GT(r.h, 300);
    // Only the ImGui view's pixels: the docks around it must not make a blank view pass.
    std::set<QRgb> colours;
    long bright = 0, total = 0;
    // The speedup view's three bar colours (naive, FLOP model, measured; speedup_view.cpp): its bars must be drawn.
    const QRgb bars[3] = {qRgb(150, 150, 160), qRgb(80, 160, 230), qRgb(120, 200, 90)};
    long barPixels[3] = {0, 0, 0}, rankPixels = 0;
    for (int y = r.y; y < r.y + r.h && y < img.height(); y += 2)
        for (int x = r.x; x < r.x + r.w && x < img.width(); x += 2) {
            const QRgb c = img.pixel(x, y);
            colours.insert(c & 0xF8F8F8);  // bucket near-identical shades
            bright += qGray(c) > 60;
            total++;
            for (int k = 0; k < 3; k++) barPixels[k] += (c & 0xFFFFFF) == (bars[k] & 0xFFFFFF);
            rankPixels += (c & 0xFFFFFF) == (qRgb(70, 120, 190) & 0xFFFFFF);  // the cluster view's rank bars (first node)
        }
    std::printf("[e2e] view %s: %zu colours, %.1f%% bright pixels, bar pixels %ld/%ld/%ld\n", view.c_str(), colours.size(),
                100.0 * bright / total, barPixels[0], barPixels[1], barPixels[2]);
    if (view == "cluster") {
        EXPECT_GT(rankPixels, 1000) << "no rank load bars";
        EXPECT_NE(out.find("screenshot"), std::string::npos) << out;
    }
    if (view == "speedup") {
        for (int k = 0; k < 3; k++) EXPECT_GT(barPixels[k], 300) << "speedup bar colour " << k << " missing";
    }
    EXPECT_GE(colours.size(), GetParam().second) << "too few colours: blank, or a heatmap without varied values";
    EXPECT_GT(bright, total / 100) << "almost all black";
    if (view == "generate") {
        EXPECT_NE(out.find("generated: The capital of "), std::string::npos) << out;
    }
    if (view == "tuning") {
        EXPECT_NE(out.find("sweep: 4 finished, 0 failed"), std::string::npos) << out;
        // The highlighted run: its line in the plot is drawn white, 3.5 px wide (no other pixel of the plot's
        // middle is pure white), and its table row has the highlight's background (tuning_view.cpp).
        long white = 0, row = 0;
        for (int y = r.y; y < r.y + r.h && y < img.height(); y++)
            for (int x = r.x; x < r.x + r.w && x < img.width(); x++) {
                const QRgb c = img.pixel(x, y) & 0xFFFFFF;
                white += c == 0xFFFFFF && y > r.y + r.h * 12 / 100 && y < r.y + r.h * 40 / 100;
                row += c == (qRgb(120, 110, 40) & 0xFFFFFF);
            }
        std::printf("[e2e] tuning: %ld white pixels in the plot, %ld of the highlighted row\n", white, row);
        EXPECT_GT(white, 300) << "no highlighted line";
        EXPECT_GT(row, 2000) << "no highlighted row";
        fs::remove(sweep);
    }
    fs::remove(png);
}
INSTANTIATE_TEST_SUITE_P(Views, GuiView,
                         ::testing::Values(std::pair{"heads", 30}, std::pair{"experts", 20}, std::pair{"routing", 20},
                                           std::pair{"attention", 30}, std::pair{"curves", 20}, std::pair{"speedup", 6},
                                           std::pair{"generate", 12}, std::pair{"tuning", 60}, std::pair{"cluster", 12}),
                         [](const auto& info) { return std::string(info.param.first); });

// The tuning view's Pareto scatter and importance bars after a sweep on two seeds: the front's gold
// staircase is drawn, and the grouped rows show their spread.
TEST(GuiTuning, ParetoFrontAndImportanceDraw) {
    const std::string sweep = temp_file("pareto.json"), png = temp_file("pareto.png"), png2 = temp_file("importance.png");
    std::ofstream(sweep) << R"({"name": "pf", "preset": "tiny", "seeds": 2, "set": {"train.steps": 6},
                               "grid": {"train.lr": [0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.01]}})";
    const std::string ws = temp_file("pareto-ws");
    int code = 0;
    std::string out = run("--workspace " + ws + " --sweep " + sweep + " --tuning pf,pareto --screenshot " + png + " --quit", &code, "", false);
    ASSERT_EQ(code, 0) << out;
    QImage img(QString::fromStdString(png));
    ASSERT_FALSE(img.isNull()) << out;
    Rect r;
    ASSERT_TRUE(view_rect(out, r)) << out;
    long gold = 0;
    for (int y = r.y; y < r.y + r.h && y < img.height(); y++)
        for (int x = r.x; x < r.x + r.w && x < img.width(); x++) gold += (img.pixel(x, y) & 0xFFFFFF) == (qRgb(255, 200, 80) & 0xFFFFFF);
    std::printf("[e2e] pareto: %ld gold pixels\n", gold);
    EXPECT_GT(gold, 100) << "no front drawn";
    out = run("--workspace " + ws + " --tuning pf,importance --preset tiny --demo-steps 2 --view tuning --screenshot " + png2 + " --quit",
              &code, "", false);
    ASSERT_EQ(code, 0) << out;
    QImage imp(QString::fromStdString(png2));
    ASSERT_FALSE(imp.isNull()) << out;
    std::set<QRgb> colours;
    for (int y = r.y; y < r.y + r.h / 2 && y < imp.height(); y += 2)
        for (int x = r.x; x < r.x + r.w && x < imp.width(); x += 2) colours.insert(imp.pixel(x, y) & 0xF8F8F8);
    EXPECT_GT(colours.size(), 8u) << "the importance bars' region is blank";
    fs::remove(sweep), fs::remove(png), fs::remove(png2), fs::remove_all(ws);
}

TEST(GuiHover, HeatmapTooltipThroughTheBridge) {
    int code = 0;
    // A cell of layer 0: label column 110 px, cells start below the header (see heads_view.cpp).
    const std::string out = run("--preset seed-moh --demo-steps 10 --view heads --hover 160,140 --quit", &code);
    ASSERT_EQ(code, 0) << out;
    const auto pos = out.find("hover: token '");
    ASSERT_NE(pos, std::string::npos) << out;
    EXPECT_NE(out.find(" head ", pos), std::string::npos) << out;
    EXPECT_NE(out.find(" gate ", pos), std::string::npos) << out;
    EXPECT_NE(out.find(" rank ", pos), std::string::npos) << out;
}

TEST(GuiHover, CurvesShowValuesAtTheStep) {
    int code = 0;
    const std::string out = run("--preset tiny --demo-steps 30 --view curves --hover 400,120 --quit", &code);
    ASSERT_EQ(code, 0) << out;
    const auto pos = out.find("hover: loss at step ");
    ASSERT_NE(pos, std::string::npos) << out;
    EXPECT_NE(out.find("cross-entropy: ", pos), std::string::npos) << out;
}

// The Runs dock's toggles: x in seconds of training, and the raw min/max band around the smoothed loss.
TEST(GuiHover, CurvesByWallTimeWithTheRawBand) {
    int code = 0;
    const std::string out = run("--preset tiny --demo-steps 30 --view curves --wall-time --band --hover 400,120 --quit", &code);
    ASSERT_EQ(code, 0) << out;
    const auto pos = out.find("hover: loss at ");
    ASSERT_NE(pos, std::string::npos) << out;
    double at = -1;
    ASSERT_EQ(std::sscanf(out.c_str() + pos, "hover: loss at %lf s", &at), 1) << out.substr(pos, 80);
    EXPECT_GT(at, 0.0);
    EXPECT_LT(at, 120.0) << "seconds, not steps";
    const auto line = out.find(" loss: ", pos);
    ASSERT_NE(line, std::string::npos) << out;
    EXPECT_NE(out.find(" s), raw ", line), std::string::npos) << "the smoothed loss with its raw band: " << out.substr(line, 120);
}

// Train with a custom probe text, save a checkpoint and the curves; the run lands in the store;
// then a second launch opens the checkpoint and shows the routing on the same weights.
TEST(GuiFiles, CheckpointCsvAndRunStore) {
    const std::string ckpt = temp_file("run.safetensors"), csv = temp_file("curves.csv");
    int code = 0;
    std::string out = run("--preset seed-moh --demo-steps 15 --view heads --probe 'Paris is in France.' --save-checkpoint " + ckpt +
                              " --csv " + csv + " --quit",
                          &code);
    ASSERT_EQ(code, 0) << out;
    EXPECT_NE(out.find("checkpoint saved: " + ckpt + " (step 15)"), std::string::npos) << out;
    std::ifstream in(csv);
    std::string header, line;
    std::getline(in, header);
    EXPECT_EQ(header.rfind("step,loss,ce,", 0), 0u) << header;
    int rows = 0;
    while (std::getline(in, line)) rows++;
    EXPECT_EQ(rows, 15);

    auto store = rl::run_store_open(workspace() + "/runs.sqlite");
    ASSERT_TRUE(store) << store.status.msg;
    auto runs = rl::run_store_list(*store);
    ASSERT_TRUE(runs && !runs->empty());
    const rl::RunRecord& r = (*runs)[0];
    EXPECT_EQ(r.name, "seed-moh");
    EXPECT_EQ(r.steps, 15);
    EXPECT_GT(r.val_loss, 0.f);
    EXPECT_EQ(r.checkpoint, ckpt);
    EXPECT_NE(r.config_json.find("\"moh\""), std::string::npos);
    EXPECT_EQ(rl::run_store_curve(*store, r.id)->size(), 15u);

    out = run("--checkpoint " + ckpt + " --view heads --hover 160,140 --quit", &code);
    ASSERT_EQ(code, 0) << out;
    EXPECT_NE(out.find("hover: token '"), std::string::npos) << out;
    out = run("--checkpoint /nonexistent/x.safetensors --quit", &code);
    EXPECT_EQ(code, 1);
    EXPECT_NE(out.find("error: "), std::string::npos) << out;
    EXPECT_TRUE(fs::exists(rl::run_state_path(ckpt, 15))) << "the window saves with the training state (Continue is exact)";
    fs::remove(ckpt);
    fs::remove(rl::run_state_path(ckpt, 15));
    fs::remove(csv);
}

namespace {

// Mean grey level of the view's pixels (every 4th in each direction).
double mean_grey(const QImage& img, const Rect& r) {
    double sum = 0;
    long n = 0;
    for (int y = r.y; y < r.y + r.h && y < img.height(); y += 4)
        for (int x = r.x; x < r.x + r.w && x < img.width(); x += 4) sum += qGray(img.pixel(x, y)), n++;
    return n ? sum / n : 0;
}

// "probe: T tokens, L layers, head gates ON on / OFF off, experts top-K of E" printed by the scripted run.
struct ProbeLine {
    long on = -1, off = -1;
    int top_k = -1, experts = -1;
};
bool probe_line(const std::string& out, ProbeLine& p) {
    const auto at = out.find("probe: ");
    if (at == std::string::npos) return false;
    const auto g = out.find("head gates ", at), e = out.find("experts top-", at);
    return g != std::string::npos && e != std::string::npos &&
           std::sscanf(out.c_str() + g, "head gates %ld on / %ld off", &p.on, &p.off) == 2 &&
           std::sscanf(out.c_str() + e, "experts top-%d of %d", &p.top_k, &p.experts) == 2;
}

}  // namespace

// The first run: no preset given, the window trains a model that routes heads and experts (moh-moe),
// and both views show it: the heads heatmap has gates on and off (and draws the off ones), the
// experts view colours the probe text by expert.
TEST(GuiFirstRun, NoPresetRoutesHeadsAndExperts) {
    const std::string heads = temp_file("first-heads.png"), experts = temp_file("first-experts.png");
    int code = 0;
    std::string out = run("--demo-steps 30 --view heads --screenshot " + heads + " --quit", &code);
    ASSERT_EQ(code, 0) << out;
    ProbeLine p;
    ASSERT_TRUE(probe_line(out, p)) << out;
    EXPECT_GT(p.on, 0) << out;
    EXPECT_GT(p.off, 0) << "no head switched off: the first run does not route heads\n" << out;
    EXPECT_EQ(p.top_k, 2) << out;
    EXPECT_EQ(p.experts, 8) << out;
    auto store = rl::run_store_open(workspace() + "/runs.sqlite");
    ASSERT_TRUE(store) << store.status.msg;
    auto runs = rl::run_store_list(*store);
    ASSERT_TRUE(runs && !runs->empty());
    EXPECT_EQ((*runs)[0].name, "moh-moe");
    // The picture: off cells (look().off, dark theme) and many shades of on cells.
    QImage img(QString::fromStdString(heads));
    ASSERT_FALSE(img.isNull()) << out;
    Rect r;
    ASSERT_TRUE(view_rect(out, r)) << out;
    long offPixels = 0;
    std::set<QRgb> shades;
    for (int y = r.y; y < r.y + r.h && y < img.height(); y++)
        for (int x = r.x; x < r.x + r.w && x < img.width(); x++) {
            const QRgb c = img.pixel(x, y) & 0xFFFFFF;
            offPixels += c == (qRgb(25, 25, 30) & 0xFFFFFF);
            if (qBlue(c) > qRed(c) + 60) shades.insert(c & 0xF8F8F8);  // the ramp's blue half: gates that are on
        }
    std::printf("[e2e] first run heads: %ld off-cell pixels, %zu shades of on cells\n", offPixels, shades.size());
    EXPECT_GT(offPixels, 500) << "no off cells drawn";
    EXPECT_GE(shades.size(), 10u) << "no on cells drawn";

    out = run("--demo-steps 30 --view experts --screenshot " + experts + " --quit", &code);
    ASSERT_EQ(code, 0) << out;
    ASSERT_TRUE(probe_line(out, p)) << out;
    EXPECT_EQ(p.experts, 8) << out;
    QImage ex(QString::fromStdString(experts));
    ASSERT_FALSE(ex.isNull());
    ASSERT_TRUE(view_rect(out, r)) << out;
    std::set<QRgb> colours;
    for (int y = r.y; y < r.y + r.h / 3 && y < ex.height(); y += 2)  // the probe text, coloured by expert, is at the top
        for (int x = r.x; x < r.x + r.w && x < ex.width(); x += 2) colours.insert(ex.pixel(x, y) & 0xF0F0F0);
    EXPECT_GE(colours.size(), 20u) << "the probe text is not coloured by expert";
    fs::remove(heads);
    fs::remove(experts);
}

// File > Export view as PNG (2x), scripted: the view alone at twice its size, drawn at that size (not
// the 1x picture scaled up) and showing what the window shows.
TEST(GuiExport, ViewPngAtTwiceTheViewSize) {
    const std::string shot = temp_file("x1.png"), twice = temp_file("x2.png");
    int code = 0;
    const std::string out = run("--preset moh-moe --demo-steps 20 --view experts --screenshot " + shot + " --screenshot-2x " + twice +
                                    " --quit",
                                &code);
    ASSERT_EQ(code, 0) << out;
    Rect r;
    ASSERT_TRUE(view_rect(out, r)) << out;
    QImage one(QString::fromStdString(shot)), two(QString::fromStdString(twice));
    ASSERT_FALSE(one.isNull());
    ASSERT_FALSE(two.isNull()) << out;
    EXPECT_EQ(two.width(), 2 * r.w) << out;
    EXPECT_EQ(two.height(), 2 * r.h) << out;
    EXPECT_NE(out.find("view png " + twice + " " + std::to_string(2 * r.w) + "x" + std::to_string(2 * r.h)), std::string::npos) << out;
    // Drawn at 2x: many 2x2 blocks are not one colour (a picture scaled up by 2 has none).
    long mixed = 0, blocks = 0;
    for (int y = 0; y + 1 < two.height(); y += 2)
        for (int x = 0; x + 1 < two.width(); x += 2) {
            const QRgb c = two.pixel(x, y);
            mixed += two.pixel(x + 1, y) != c || two.pixel(x, y + 1) != c || two.pixel(x + 1, y + 1) != c;
            blocks++;
        }
    // The same view: shrunk back to 1x it is close to the window's own picture of the view.
    const QImage view = one.copy(r.x, r.y, r.w, r.h), back = two.scaled(r.w, r.h, Qt::IgnoreAspectRatio, Qt::SmoothTransformation);
    double diff = 0;
    std::set<QRgb> colours;
    for (int y = 0; y < r.h; y += 2)
        for (int x = 0; x < r.w; x += 2) {
            const QRgb a = view.pixel(x, y), b = back.pixel(x, y);
            diff += std::abs(qRed(a) - qRed(b)) + std::abs(qGreen(a) - qGreen(b)) + std::abs(qBlue(a) - qBlue(b));
            colours.insert(b & 0xF8F8F8);
        }
    diff /= 3.0 * ((r.h + 1) / 2) * ((r.w + 1) / 2);
    std::printf("[e2e] 2x export: %.1f%% mixed 2x2 blocks, mean difference to the 1x view %.2f, %zu colours\n", 100.0 * mixed / blocks,
                diff, colours.size());
    EXPECT_GT(mixed, blocks / 50) << "the 2x picture looks like the 1x one scaled up";
    EXPECT_LT(diff, 12.0) << "the 2x export does not show the view";
    EXPECT_GE(colours.size(), 20u) << "blank export";
    fs::remove(shot);
    fs::remove(twice);
}

// View > Theme is kept in QSettings: a launch after choosing light opens light, and after dark, dark.
TEST(GuiTheme, ChoiceIsKeptForTheNextLaunch) {
    const std::string home = temp_file("theme-cfg"), png = temp_file("theme.png");
    const std::string env = "XDG_CONFIG_HOME=" + home;  // its own settings: the test's other windows stay dark
    int code = 0;
    std::string out = run("--preset tiny --demo-steps 2 --theme light --quit", &code, env);
    ASSERT_EQ(code, 0) << out;
    EXPECT_NE(out.find("look: theme light"), std::string::npos) << out;
    std::ifstream conf(home + "/RouteLab/RouteLab.conf");
    std::string text((std::istreambuf_iterator<char>(conf)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find("theme=light"), std::string::npos) << text;
    out = run("--preset tiny --demo-steps 2 --view curves --screenshot " + png + " --quit", &code, env);  // no --theme
    ASSERT_EQ(code, 0) << out;
    EXPECT_NE(out.find("look: theme light"), std::string::npos) << out;
    Rect r;
    ASSERT_TRUE(view_rect(out, r)) << out;
    const double light = mean_grey(QImage(QString::fromStdString(png)), r);
    out = run("--preset tiny --demo-steps 2 --theme dark --quit", &code, env);
    ASSERT_EQ(code, 0) << out;
    out = run("--preset tiny --demo-steps 2 --view curves --screenshot " + png + " --quit", &code, env);
    ASSERT_EQ(code, 0) << out;
    EXPECT_NE(out.find("look: theme dark"), std::string::npos) << out;
    ASSERT_TRUE(view_rect(out, r)) << out;
    const double dark = mean_grey(QImage(QString::fromStdString(png)), r);
    std::printf("[e2e] theme: mean grey %.0f light, %.0f dark\n", light, dark);
    EXPECT_GT(light, 170) << "the light theme's view is not light";
    EXPECT_LT(dark, 80) << "the dark theme's view is not dark";
    out = run("--preset tiny --demo-steps 2 --theme purple --quit", &code, env);
    EXPECT_EQ(code, 2) << out;
    EXPECT_NE(out.find("unknown theme 'purple'"), std::string::npos) << out;
    fs::remove_all(home);
    fs::remove(png);
}

// The views' font: DejaVu Sans at 15 px (96 dpi under Xvfb); without the file, ImGui's own font and
// one warning, and the window still works.
TEST(GuiFont, DejaVuSansOrTheDefaultWithAWarning) {
    int code = 0;
    std::string out = run("--preset tiny --demo-steps 2 --view curves --quit", &code);
    ASSERT_EQ(code, 0) << out;
    if (fs::exists("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")) {
        EXPECT_NE(out.find("font DejaVu Sans 15 px"), std::string::npos) << out;
        EXPECT_EQ(out.find("warning: font"), std::string::npos) << out;
    }
    out = run("--preset tiny --demo-steps 2 --view curves --quit", &code, "ROUTELAB_FONT=/nonexistent/font.ttf");
    ASSERT_EQ(code, 0) << out;
    EXPECT_NE(out.find("warning: font /nonexistent/font.ttf not found; the views use ImGui's default font"), std::string::npos) << out;
    EXPECT_NE(out.find("font ImGui default font 13 px"), std::string::npos) << out;
}

// A lesson shown in the window (docs/architecture.md §13): the lesson's runs train, its conclusion
// is printed, its last run is replayed with the view open and the region to look at framed in the
// spotlight colour, and its earlier run is stored (tagged with the lesson) and drawn next to it.
TEST(GuiLesson, ShowFramesWhatToLookAtAndOverlaysTheOtherRun) {
    const std::string shot = temp_file("lesson.png");
    int code = 0;
    const std::string out = run("--lesson collapse --demo-steps 20 --screenshot " + shot + " --quit", &code);
    ASSERT_EQ(code, 0) << out;
    EXPECT_NE(out.find("lesson collapse: Without a balance loss the expert load CV"), std::string::npos) << out;
    Rect view, spot;
    ASSERT_TRUE(view_rect(out, view)) << out;
    const auto at = out.find("spotlight curves.balance ");
    ASSERT_NE(at, std::string::npos) << "the balance plot was not framed\n" << out;
    ASSERT_EQ(std::sscanf(out.c_str() + at, "spotlight curves.balance %d,%d,%d,%d", &spot.x, &spot.y, &spot.w, &spot.h), 4);
    EXPECT_GE(spot.x, view.x);
    EXPECT_LE(spot.x + spot.w, view.x + view.w);
    EXPECT_GT(spot.h, 100) << "the frame should hold the whole plot";
    // The frame's top edge is drawn in look().spotlight (dark theme: 255,110,30), 3 px thick.
    QImage img(QString::fromStdString(shot));
    ASSERT_FALSE(img.isNull());
    int accent = 0, samples = 0;
    for (int x = spot.x + 10; x < spot.x + spot.w - 10; x += 5, samples++) {
        bool hit = false;
        for (int dy = -1; dy <= 2 && !hit; dy++) {
            const QRgb c = img.pixel(x, spot.y + dy);
            hit = std::abs(qRed(c) - 255) < 30 && std::abs(qGreen(c) - 110) < 40 && std::abs(qBlue(c) - 30) < 40;
        }
        accent += hit;
    }
    EXPECT_GT(accent, samples * 9 / 10) << accent << " of " << samples << " samples on the frame's top edge";
    // The run without a balance loss is in the store, tagged, beside the replayed "aux loss 0.01".
    auto store = rl::run_store_open(workspace() + "/runs.sqlite");
    ASSERT_TRUE(store) << store.status.msg;
    auto runs = rl::run_store_list(*store);
    ASSERT_TRUE(runs);
    std::set<std::string> lessonRuns;
    for (const auto& r : *runs)
        if (std::find(r.tags.begin(), r.tags.end(), "lesson:collapse") != r.tags.end()) lessonRuns.insert(r.name);
    EXPECT_EQ(lessonRuns, (std::set<std::string>{"no balance loss", "aux loss 0.01"}));
    fs::remove(shot);
}

// What a new user does: train with the CLI, then open the window, neither with --workspace. Both
// keep runs in the same per-user workspace (rl::workspace_default(): $XDG_DATA_HOME, else
// $HOME/.local/share, then RouteLab/RouteLab), so the CLI's run is in the window's list. Here HOME
// is a fresh folder and XDG_DATA_HOME is empty.
TEST(GuiWorkspace, TheCliRunIsListedByAWindowStartedWithoutWorkspace) {
    const fs::path home = fs::temp_directory_path() / ("routelab_e2e_home_" + std::to_string(getpid()));
    fs::remove_all(home);
    fs::create_directories(home);
    const std::string env = "HOME=" + home.string() + " XDG_DATA_HOME= ";
    const std::string store = (home / ".local/share/RouteLab/RouteLab/runs.sqlite").string();
    int code = 0;
    const std::string cli = capture(env + ROUTELAB_CLI + " train --preset tiny --steps 3 --out " + (home / "cli-run").string(), &code);
    ASSERT_EQ(code, 0) << cli;
    EXPECT_NE(cli.find("stored as run 1 in " + store), std::string::npos) << cli;
    const std::string out = run("--preset tiny --demo-steps 2 --quit", &code, env, false);
    ASSERT_EQ(code, 0) << out;
    const std::string listed = "workspace " + (home / ".local/share/RouteLab/RouteLab").string() + ":";
    const auto at = out.find(listed);
    ASSERT_NE(at, std::string::npos) << out;
    const std::string runs = out.substr(at, out.find('\n', at) - at);
    EXPECT_NE(runs.find("#1 tiny (finished)"), std::string::npos) << "the CLI's run, in the window's list: " << runs;
    EXPECT_NE(runs.find("#2 tiny (finished)"), std::string::npos) << "the window's own run, in the same store: " << runs;
    fs::remove_all(home);
}

// A Hugging Face model folder opened to inspect (routelab --model DIR): a tiny Mixtral in the hub's
// layout (scripts/hf_tiny_models.py) with an ASCII byte-level tokenizer. The views show its routing of
// the probe text, a generation comes back, nothing trains; a folder that is not one says so.
TEST(GuiModel, AModelFolderIsInspectedNotTrained) {
    const fs::path dir = temp_file("hf");
    int code = 0;
    const std::string py = std::getenv("ROUTELAB_PYTHON") ? std::getenv("ROUTELAB_PYTHON") : "/usr/bin/python3";
    std::string out = capture(py + " " + std::string(ROUTELAB_SOURCE_DIR) + "/scripts/hf_tiny_models.py " + dir.string() +
                                  " --only mixtral", &code);
    ASSERT_EQ(code, 0) << out;
    // 96 tokens (the printable bytes, space, newline): tests/data/tokenizers/ascii_byte_level.json
    fs::copy_file(fs::path(ROUTELAB_SOURCE_DIR) / "tests/data/tokenizers/ascii_byte_level.json",
                  dir / "mixtral" / "tokenizer.json");
    const std::string shot = temp_file("model.png");
    out = run("--model " + (dir / "mixtral").string() + " --view experts --probe 'abc 12 def.' --prompt 'ab' --screenshot " + shot +
                  " --quit", &code);
    ASSERT_EQ(code, 0) << out;
    EXPECT_NE(out.find("probe: 11 tokens, 3 layers"), std::string::npos) << out;
    EXPECT_NE(out.find("generated: "), std::string::npos) << out;
    EXPECT_NE(out.find("window run: 0 steps"), std::string::npos) << out;  // nothing trained it
    Rect r;
    ASSERT_TRUE(view_rect(out, r)) << out;
    const QImage img(QString::fromStdString(shot));
    ASSERT_FALSE(img.isNull());
    EXPECT_GT(mean_grey(img, r), 5.0) << "the experts view is black";
    out = run("--model " + dir.string() + " --quit", &code);  // the parent: no config.json
    EXPECT_EQ(code, 1);
    EXPECT_NE(out.find("config.json"), std::string::npos) << out;
    fs::remove_all(dir);
    fs::remove(shot);
}

// The experiments view on a model folder (routelab --model DIR --experiment ...): each experiment comes
// back without an error, the window's compare on a held-out file gives the perplexities routelab-cli
// eval gives on that file (another path to the same numbers: the CLI's flags, not the view's request),
// the sweep's points agree with the compare, and the view is drawn.
TEST(GuiModel, ExperimentsViewMatchesTheCliOnTheSameText) {
    const fs::path dir = temp_file("hfx");
    int code = 0;
    const std::string py = std::getenv("ROUTELAB_PYTHON") ? std::getenv("ROUTELAB_PYTHON") : "/usr/bin/python3";
    std::string out = capture(py + " " + std::string(ROUTELAB_SOURCE_DIR) + "/scripts/hf_tiny_models.py " + dir.string() +
                                  " --only olmoe", &code);
    ASSERT_EQ(code, 0) << out;
    const fs::path model = dir / "olmoe";
    fs::copy_file(fs::path(ROUTELAB_SOURCE_DIR) / "tests/data/tokenizers/ascii_byte_level.json", model / "tokenizer.json");
    const fs::path text = dir / "held_out.txt";
    {
        std::ofstream f(text);
        for (int i = 0; i < 12; i++) f << "The cat sat on the mat " << i << " times; def f(x): return x * " << i << "\n";
    }
    const std::string shot = temp_file("experiments.png");
    out = run("--model " + model.string() + " --view experiments --experiment compare,sweep,calibrate,analyse --top-k 1 --held-out " +
                  text.string() + " --screenshot " + shot + " --quit", &code);
    ASSERT_EQ(code, 0) << out;
    for (const char* kind : {"compare", "sweep", "calibrate", "analyse"})
        EXPECT_NE(out.find(std::string("experiment ") + kind + ": \n"), std::string::npos) << kind << " failed:\n" << out;
    double changed = 0, base = 0;
    const auto at = out.find("top-k 1: perplexity ");
    ASSERT_NE(at, std::string::npos) << out;
    ASSERT_EQ(std::sscanf(out.c_str() + at, "top-k 1: perplexity %lf (unchanged %lf)", &changed, &base), 2) << out;
    // The same file through the CLI: its default context is the model's, as the view's is here.
    const fs::path json = dir / "eval.json";
    for (const auto& [flags, want] : {std::pair<std::string, double>{"--top-k 1", changed}, {"", base}}) {
        const std::string cli = capture(std::string(ROUTELAB_CLI) + " eval --model " + model.string() + " --text-file " +
                                            text.string() + " --context 256 " + flags + " --json " + json.string(), &code);
        ASSERT_EQ(code, 0) << cli;
        std::ifstream in(json);
        const std::string j((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const auto p = j.find("\"perplexity\":");
        ASSERT_NE(p, std::string::npos) << j;
        EXPECT_NEAR(std::atof(j.c_str() + p + 13), want, 1e-4 * want) << flags;
    }
    // The sweep's top-k 1 point is the compare's intervention; its own top-k (2) the unchanged model.
    const auto sweep = out.find("experiment sweep:");
    ASSERT_NE(sweep, std::string::npos) << out;
    for (const auto& [k, want] : {std::pair<int, double>{1, changed}, {2, base}}) {
        const auto p = out.find("  top-k " + std::to_string(k) + ": perplexity ", sweep);
        ASSERT_NE(p, std::string::npos) << out;
        EXPECT_NEAR(std::atof(out.c_str() + out.find("perplexity ", p) + 11), want, 1e-4 * want) << "sweep point k=" << k;
    }
    Rect r;
    ASSERT_TRUE(view_rect(out, r)) << out;
    const QImage img(QString::fromStdString(shot));
    ASSERT_FALSE(img.isNull());
    EXPECT_GT(mean_grey(img, r), 5.0) << "the experiments view is black";
    fs::remove_all(dir);
    fs::remove(shot);
}
