// Drawing pieces the views share: colours, tooltips, token chips, bar columns, matrices and line plots.
#pragma once
#include <string>
#include <vector>

#include "imgui.h"
#include "views.h"

// Ctrl+click turns a slider into a text field whose value 1.86 does not clamp unless asked to:
// a typed layer 99 would index past the layers.
constexpr ImGuiSliderFlags k_clamp = ImGuiSliderFlags_AlwaysClamp;

constexpr ImU32 k_text = IM_COL32(225, 225, 225, 255), k_dim = IM_COL32(130, 130, 140, 255), k_off = IM_COL32(25, 25, 30, 255);

// Perceptual-ish ramp from dark blue (0) through teal to yellow (1).
ImU32 ramp(float v);
inline ImU32 withAlpha(ImU32 c, int a) { return (c & 0x00ffffffu) | ((ImU32)a << 24); }

// A tooltip that tests can read back.
void tooltip(ViewOutbox& out, const std::string& s);
// "h3", "e12": built with snprintf (g++ 12 warns falsely on "h" + std::to_string).
std::string numbered(const char* prefix, int i);
std::string shortText(const std::string& s, size_t n = 12);
// Layer picker shared by the views that show one layer at a time.
void layerPicker(int& layer, int n_layers);

// A token as a coloured chip that wraps with the text flow; returns true when hovered.
// outline: a red frame (dropped tokens); underline: marks prompt tokens.
bool tokenChip(const std::string& text, ImU32 bg, bool outline, bool underline, bool more);
// Draws a matrix [rows][cols] as a heatmap, each row normalised to its total; hover shows the count.
void drawMatrix(ViewOutbox& out, const char* title, const std::vector<std::vector<double>>& m, const std::vector<std::string>& colNames,
                const char* rowPrefix);
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
