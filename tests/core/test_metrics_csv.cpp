// metrics.csv: the header and each row come from one column list, so they always line up.
#include <gtest/gtest.h>

#include <set>
#include <sstream>
#include <vector>

#include "metrics/metrics_csv.h"

using namespace rl;

namespace {

std::vector<std::string> fields(const std::string& line) {
    EXPECT_EQ(line.back(), '\n');
    std::vector<std::string> out;
    std::stringstream ss(line.substr(0, line.size() - 1));
    for (std::string cell; std::getline(ss, cell, ',');) out.push_back(cell);
    return out;
}

}  // namespace

TEST(MetricsCsv, HeaderAndRowsLineUp) {
    const std::string fixed = "step,loss,val_loss,ce,moh_balance,moe_aux,zloss,lr,grad_norm,tok_per_s,window";
    EXPECT_EQ(metrics_csv_header(0), fixed + "\n");
    EXPECT_EQ(metrics_csv_header(1), fixed + ",head_cv_l0,load_cv_l0,dropped_l0,router_entropy_l0,dead_l0\n");
    for (int n : {1, 3, k_stats_layers, k_stats_layers + 4}) {
        const std::vector<std::string> head = fields(metrics_csv_header(n));
        EXPECT_EQ(std::set<std::string>(head.begin(), head.end()).size(), head.size()) << "names are unique";
        StepStats s;
        s.step = 12;
        s.loss = 2.5f;
        s.lr = 1e-3f;
        s.window = 80;
        s.n_layers = std::min(n, k_stats_layers);
        for (int l = 0; l < s.n_layers; l++) s.layers[l].dead_frac = 0.25f * l, s.layers[l].load_cv = 0.5f;
        const std::vector<std::string> with_val = fields(metrics_csv_row(s, 1.75f));
        const std::vector<std::string> without = fields(metrics_csv_row(s, std::nullopt));
        ASSERT_EQ(with_val.size(), head.size()) << n << " layers";
        ASSERT_EQ(without.size(), head.size()) << n << " layers";
        auto at = [&](const std::vector<std::string>& row, const std::string& name) {
            for (size_t i = 0; i < head.size(); i++)
                if (head[i] == name) return row[i];
            return std::string("<missing " + name + ">");
        };
        EXPECT_EQ(at(with_val, "step"), "12");
        EXPECT_EQ(at(with_val, "loss"), "2.5");
        EXPECT_EQ(at(with_val, "val_loss"), "1.750000");
        EXPECT_EQ(at(without, "val_loss"), "");
        EXPECT_EQ(at(with_val, "lr"), "0.001");
        EXPECT_EQ(at(with_val, "window"), "80");
        if (s.n_layers > 2) {
            EXPECT_EQ(at(with_val, "dead_l2"), "0.5");
            EXPECT_EQ(at(with_val, "load_cv_l1"), "0.5");
        }
    }
}
