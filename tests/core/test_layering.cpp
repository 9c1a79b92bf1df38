// The core's modules form layers: a file may include its own module and the layers below it,
// never a sibling or anything above. A new upward import fails here with the file and the line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>

namespace fs = std::filesystem;

namespace {

// Lower rank = lower layer. The backend's op table (backend) names the layer and optimizer functions
// and sits under the model, which calls every op through it; the CUDA backend (cuda) implements
// backend's interface. infer, metrics and io all build on train and do not use each other; lessons
// and experiments (the window's experiments on a model) run them together. tune (TPE, Pareto fronts,
// importance) is plain numerics that config's sweep search builds on.
const std::map<std::string, int> k_rank = {{"util", 0},  {"tensor", 0},  {"tune", 0}, {"config", 1}, {"layers", 2},
                                           {"optim", 2}, {"backend", 3}, {"cuda", 4},   {"model", 4},
                                           {"train", 5}, {"infer", 6},   {"metrics", 6}, {"io", 6},
                                           {"lessons", 7}, {"experiments", 7}};

}  // namespace

TEST(Layering, NoCoreFileIncludesASiblingOrAHigherModule) {
    const fs::path core = fs::path(ROUTELAB_SOURCE_DIR) / "core";
    const std::regex include_re(R"re(^\s*#\s*include\s*"([a-z_]+)/([^"]+)")re");
    int files = 0;
    for (const auto& entry : fs::recursive_directory_iterator(core)) {
        const fs::path rel = fs::relative(entry.path(), core);
        const std::string ext = rel.extension().string();
        if (!entry.is_regular_file() || (ext != ".h" && ext != ".cpp")) continue;
        const std::string module = rel.begin()->string();
        ASSERT_TRUE(k_rank.count(module)) << "core/" << module << " has no layer in k_rank";
        files++;
        std::ifstream in(entry.path());
        std::string line;
        for (int n = 1; std::getline(in, line); n++) {
            std::smatch m;
            if (!std::regex_search(line, m, include_re) || m[1] == module) continue;
            const std::string edge = rel.generic_string() + " -> " + m[1].str() + "/" + m[2].str();
            ASSERT_TRUE(k_rank.count(m[1])) << "core/" << rel.generic_string() << ":" << n << " includes unknown module " << m[1];
            EXPECT_LT(k_rank.at(m[1]), k_rank.at(module)) << "core/" << rel.generic_string() << ":" << n << ": " << edge;
        }
    }
    EXPECT_GT(files, 40);
}
