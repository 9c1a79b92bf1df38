// Drawing pieces the views share: colours, tooltips, token chips, bar columns, matrices and line plots.
#pragma once
#include <string>
#include <vector>

#include "imgui.h"
#include "views.h"

// Ctrl+click turns a slider into a text field whose value 1.86 does not clamp unless asked to:
// a typed layer 99 would index past the layers.
constexpr ImGuiSliderFlags k_clamp = ImGuiSliderFlags_AlwaysClamp;

// The views' neutral colours in the current theme (View > Theme; docs/architecture.md §12.6). The data
// colours (ramp, expert palette, series) are the same in both themes.
struct Look {
    bool light = false;
    ImU32 text, dim;      // labels; secondary text, hints
    ImU32 off;            // a heatmap cell that is off (a head switched off, a row with no tokens)
    ImU32 panel, grid;    // plot backgrounds and their grid lines
    ImU32 axis;           // axis lines
    ImU32 track;          // the empty part of a bar
    ImU32 strong;         // most contrast with the background: highlights, the current run's loss
    ImU32 chip;           // a token chip with no routing colour
    ImU32 masked;         // attention's causal mask (keys right of the diagonal)
    ImU32 node;           // the routing diagram's sum node
    ImU32 backdrop;       // behind a label written over lines
    ImU32 gold;           // shared heads, the best run, the selected head
    ImU32 rowHighlight;   // the tuning table's highlighted run
    ImU32 spotlight;      // a lesson's "look here" frame and words (an accent no data colour uses)
};
const Look& look();
void setViewTheme(bool light);

// Perceptual-ish ramp from dark blue (0) through teal to yellow (1).
ImU32 ramp(float v);
inline ImU32 withAlpha(ImU32 c, int a) { return (c & 0x00ffffffu) | ((ImU32)a << 24); }
// Black or white, whichever reads on a cell of colour bg.
ImU32 inkOn(ImU32 bg);
// Half a line of text: centres a label drawn with AddText on a row's middle.
inline float halfLine() { return ImGui::GetFontSize() * 0.5f; }

// The one-line hint at the top of a view: what to look at, dim.
void viewHint(const char* text);
// A colour scale for a heatmap: the ramp with its low end, middle and high end written under it;
// offLabel adds a swatch of look().off (what a dark/empty cell means). Drawn at the cursor when at
// is null (and the cursor moves past it), else at *at. Returns its size.
ImVec2 colourLegend(const char* what, const std::string& lo, const std::string& mid, const std::string& hi, float barWidth = 150,
                    const char* offLabel = nullptr, const ImVec2* at = nullptr);
// "%.3g" of v.
std::string legendNumber(double v);

// A lesson's "look here" (docs/architecture.md §13.2). The window names one region of one view by an
// id such as "curves.bias", with the lesson's words for it, before each frame; the view wraps that
// region in a Spotlight, which writes the words above it and frames it in look().spotlight. The
// region's rect lands in the out-box (tests and --screenshot read it). "" = no spotlight.
void setSpotlight(const std::string& id, const std::string& caption);
class Spotlight {
public:
    Spotlight(const char* id, ViewOutbox& out);  // the region starts here
    ~Spotlight();                                // and ends here: framed when it is the one named
    Spotlight(const Spotlight&) = delete;
    Spotlight& operator=(const Spotlight&) = delete;

private:
    ViewOutbox& out_;
    bool on_;
};

// A tooltip that tests can read back.
void tooltip(ViewOutbox& out, const std::string& s);
// Records an interactive item at [a, b] (screen = view pixels) when it is visible in this frame.
void markTarget(ViewOutbox& out, const char* kind, int index, ImVec2 a, ImVec2 b);
// "h3", "e12": built with snprintf (g++ 12 warns falsely on "h" + std::to_string).
std::string numbered(const char* prefix, int i);
std::string shortText(const std::string& s, size_t n = 12);
// Layer picker shared by the views that show one layer at a time.
void layerPicker(int& layer, int n_layers);

// A token as a coloured chip that wraps with the text flow; returns true when hovered.
// outline: a red frame (dropped tokens); underline: marks prompt tokens.
bool tokenChip(const std::string& text, ImU32 bg, bool outline, bool underline, bool more);
// Draws a matrix [rows][cols] as a heatmap, each row normalised to its total, with its colour scale
// under it; hover shows the count. Columns are as wide as their labels, within maxWidth (0 = no limit);
// labels wider than their column alternate between two header rows, and one still too wide is
// shortened with its full name on hover.
void drawMatrix(ViewOutbox& out, const char* title, const std::vector<std::vector<double>>& m, const std::vector<std::string>& colNames,
                const char* rowPrefix, float maxWidth = 0);
// The width drawMatrix takes with no limit, or (narrowest) with its columns as narrow as they go.
float matrixWidth(const std::vector<std::string>& colNames, size_t rows, bool narrowest = false);
// One column of labelled bars, top to bottom; returns each bar's right-middle point (for the flow lines).
// grow in [0, 1]: how far the bars have grown (animation).
std::vector<ImVec2> barColumn(ViewOutbox& out, ImVec2 o, float w, const std::vector<float>& v, const std::vector<std::string>& labels,
                              const std::vector<bool>& on, float vmax, const std::vector<ImU32>& colours, const char* what,
                              float grow = 1.f);

struct Series {
    std::string name;
    ImU32 colour;
    std::vector<float> x, y;
    std::vector<float> lo, hi;  // optional band around y (same length), shaded in the series' colour
};
// A line plot of several series with axes, legend, log-y and values on hover; x is in xUnit
// ("step", or "s" for seconds of training), so x must rise along each series.
void plot(ViewOutbox& out, const char* title, std::vector<Series> series, float height, bool logY, const char* xUnit = "step");
// A filled five-pointed star (the tuning view's best run of a sweep).
void drawStar(ImDrawList* dl, ImVec2 centre, float radius, ImU32 colour);
