// routelab-cli on Hugging Face files, as scripts call it: `probe --model DIR --ids ... --json F`
// (logits [T][V] and moe_layers) and `tokenize --tokenizer FILE | --model DIR --text-file F --json G`
// (ids and lines), against the references the core tests use.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "subprocess.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct CliModel : ::testing::Test {
    void SetUp() override {
        dir = fs::temp_directory_path() / ("routelab_cli_model_" + std::to_string(::getpid()));
        fs::create_directories(dir);
    }
    void TearDown() override { fs::remove_all(dir); }
    rl::test::Captured cli(const std::string& args) {
        return rl::test::run_captured(std::string(ROUTELAB_CLI) + " " + args);
    }
    json read(const fs::path& p) {
        std::ifstream in(p);
        return json::parse(in);
    }
    fs::path dir;
};

const std::string k_src = ROUTELAB_SOURCE_DIR;

TEST_F(CliModel, ProbeModelIdsWritesLogitsAndMoeLayers) {
    const std::string make = rl::test::shell_quoted(rl::test::python()) + " " + k_src + "/scripts/hf_tiny_models.py " +
                             rl::test::shell_quoted(dir.string()) + " --only qwen2moe";
    ASSERT_EQ(rl::test::run_captured(make).code, 0) << make;
    const fs::path model = dir / "qwen2moe";
    const json e = read(model / "expected.json");
    std::string ids;
    for (const json& i : e["ids"]) ids += (ids.empty() ? "" : ",") + std::to_string(i.get<int>());
    const auto r = cli("probe --model " + model.string() + " --ids " + ids + " --json " + (dir / "p.json").string());
    ASSERT_EQ(r.code, 0) << r.out;
    const json p = read(dir / "p.json");
    ASSERT_EQ(p["logits"].size(), e["logits"].size());
    double d = 0;
    for (size_t t = 0; t < p["logits"].size(); t++) {
        ASSERT_EQ(p["logits"][t].size(), e["logits"][t].size());
        for (size_t v = 0; v < p["logits"][t].size(); v++)
            d = std::max(d, std::fabs(p["logits"][t][v].get<double>() - e["logits"][t][v].get<double>()));
    }
    EXPECT_LE(d, 1e-4);
    ASSERT_EQ(p["moe_layers"].size(), 2u);  // layer 1 is dense (mlp_only_layers)
    for (size_t i = 0; i < 2; i++) {
        EXPECT_EQ(p["moe_layers"][i]["layer"], e["moe_layers"][i]["layer"]);
        for (size_t t = 0; t < e["ids"].size(); t++) {
            EXPECT_EQ(p["moe_layers"][i]["experts"][t].get<std::set<int>>(),
                      e["moe_layers"][i]["experts"][t].get<std::set<int>>());
            EXPECT_EQ(p["moe_layers"][i]["weights"][t].size(), 2u);
        }
    }
    const auto bad = cli("probe --model " + model.string() + " --ids 1,2,999 --json " + (dir / "q.json").string());
    EXPECT_EQ(bad.code, 2) << bad.out;
    EXPECT_NE(bad.out.find("--ids must be comma-separated token ids in 0..126"), std::string::npos) << bad.out;
}

TEST_F(CliModel, TokenizeMatchesTheLibraryOnARealTokenizer) {
    const json ref = read(k_src + "/tests/data/tokenizers/llama3_1.reference.json");
    const std::string file = k_src + "/" + ref["tokenizer"].get<std::string>();
    const std::string text = k_src + "/" + ref["text"].get<std::string>();
    auto r = cli("tokenize --tokenizer " + file + " --text-file " + text + " --json " + (dir / "t.json").string());
    ASSERT_EQ(r.code, 0) << r.out;
    json t = read(dir / "t.json");
    EXPECT_EQ(t["ids"], ref["ids"]);
    EXPECT_EQ(t["lines"], ref["lines"]);
    r = cli("tokenize --tokenizer " + file + " --text-file " + text + " --no-special --json " + (dir / "n.json").string());
    ASSERT_EQ(r.code, 0) << r.out;
    t = read(dir / "n.json");
    EXPECT_EQ(t["ids"], ref["ids_no_special"]);
    EXPECT_EQ(t["lines"], ref["lines_no_special"]);
    r = cli("tokenize --text-file " + text + " --json " + (dir / "x.json").string());
    EXPECT_EQ(r.code, 2) << r.out;  // neither --model nor --tokenizer
}

}  // namespace
