// The experts view at real size (16-32 layers, 32-64 experts; docs/hf-models.md, "In the window"):
// compact maps where one row of token chips per layer, or one row per expert, would fill the view.
#pragma once
#include <string>
#include <vector>

#include "views.h"

// Tokens x layers: a cell per probe token (column) and layer (row) in the colour of the token's first
// expert there; hover gives every chosen expert and its weight, a click picks the layer.
void drawTokenLayerMap(const rl::ProbeSnapshot& p, int& layer, ViewOutbox& out);
// Layers x experts: each expert's share of a layer's top-1 choices over the measured text against the
// fair 1/E (the colour: share x E, 1 = fair), with each layer's CV of those shares at the row's end.
void drawLoadMap(const rl::Specialization& s, int& layer, ViewOutbox& out);
// expert x class counts [expert][class] drawn with the experts as columns (64 of them fit a view): each
// column is that expert's tokens split over the classes; hover gives the count.
// unit: what the counts are ("top-1 tokens").
void drawExpertColumns(ViewOutbox& out, const char* title, const std::vector<std::vector<double>>& m,
                       const std::vector<std::string>& classNames, const char* unit = "top-1 tokens");
// The experiments view's analysis on the user's domains (metrics/domain_analysis.h), one sparse layer
// (`layer` picks among a.layers): each domain's share of tokens per expert against the fair k/E,
// each expert's split over the domains, the first-expert transitions into the next sparse layer and
// the experts' top tokens.
void drawDomainAnalysis(const rl::Analysis& a, int& layer, ViewOutbox& out);
