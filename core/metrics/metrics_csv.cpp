#include "metrics/metrics_csv.h"

#include <algorithm>
#include <sstream>

namespace rl {

namespace {

struct StepRow {
    const StepStats& s;
    std::optional<float> val_loss;
};

struct StepColumn {
    const char* name;
    void (*write)(std::ostream& o, const StepRow& r);
};
const StepColumn k_step_columns[] = {
    {"step", [](std::ostream& o, const StepRow& r) { o << r.s.step; }},
    {"loss", [](std::ostream& o, const StepRow& r) { o << r.s.loss; }},
    // Fixed 6 decimals, as it always was written (std::to_string), where the others take 6 digits.
    {"val_loss", [](std::ostream& o, const StepRow& r) { o << (r.val_loss ? std::to_string(*r.val_loss) : ""); }},
    {"ce", [](std::ostream& o, const StepRow& r) { o << r.s.ce; }},
    {"moh_balance", [](std::ostream& o, const StepRow& r) { o << r.s.moh_balance; }},
    {"moe_aux", [](std::ostream& o, const StepRow& r) { o << r.s.moe_aux; }},
    {"zloss", [](std::ostream& o, const StepRow& r) { o << r.s.zloss; }},
    {"lr", [](std::ostream& o, const StepRow& r) { o << r.s.lr; }},
    {"grad_norm", [](std::ostream& o, const StepRow& r) { o << r.s.grad_norm; }},
    {"tok_per_s", [](std::ostream& o, const StepRow& r) { o << r.s.tok_per_s; }},
    {"window", [](std::ostream& o, const StepRow& r) { o << r.s.window; }},
};

// Per layer l, each written as <prefix><l>.
struct LayerColumn {
    const char* prefix;
    float LayerRouteStats::*field;
};
const LayerColumn k_layer_columns[] = {
    {"head_cv_l", &LayerRouteStats::head_cv},
    {"load_cv_l", &LayerRouteStats::load_cv},
    {"dropped_l", &LayerRouteStats::dropped_frac},
    {"router_entropy_l", &LayerRouteStats::router_entropy},
    {"dead_l", &LayerRouteStats::dead_frac},
};

}  // namespace

std::string metrics_csv_header(int n_layers) {
    std::ostringstream o;
    const char* sep = "";
    for (const StepColumn& c : k_step_columns) o << sep << c.name, sep = ",";
    for (int l = 0; l < std::min(n_layers, k_stats_layers); l++)
        for (const LayerColumn& c : k_layer_columns) o << ',' << c.prefix << l;
    o << '\n';
    return o.str();
}

std::string metrics_csv_row(const StepStats& s, std::optional<float> val_loss) {
    std::ostringstream o;
    const StepRow r{s, val_loss};
    const char* sep = "";
    for (const StepColumn& c : k_step_columns) {
        o << sep;
        c.write(o, r);
        sep = ",";
    }
    for (int l = 0; l < s.n_layers; l++)
        for (const LayerColumn& c : k_layer_columns) o << ',' << s.layers[l].*c.field;
    o << '\n';
    return o.str();
}

}  // namespace rl
