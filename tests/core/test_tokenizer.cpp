#include "train/tokenizer.h"
#include "train/corpus.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>

using namespace rl;

namespace {

std::vector<std::string> words_of(const Tokenizer& t, const std::string& text) {
    std::vector<std::string> out;
    for (int id : t.encode(text)) out.push_back(t.token_text(id));
    return out;
}

Tokenizer train_ok(TokenizerKind kind, const std::vector<std::string>& docs, int vocab_size) {
    auto r = Tokenizer::train(kind, docs, vocab_size);
    EXPECT_TRUE(r.is_ok()) << r.status.msg;
    return *r;
}

std::string collapse_spaces(const std::string& s) {
    std::istringstream in(s);
    std::string w, out;
    while (in >> w) out += (out.empty() ? "" : " ") + w;
    return out;
}

// ~200 deterministic sentences over a small vocabulary (fixed LCG, no std:: distribution quirks).
std::vector<std::string> generated_sentences() {
    const char* subjects[] = {"the cat", "a dog", "my friend", "the old farmer", "every student", "our teacher"};
    const char* verbs[] = {"sees", "likes", "walked to", "talks about", "found", "remembers"};
    const char* objects[] = {"the river", "a small house", "the market", "green apples", "the mountain",
                             "a quiet garden", "the station"};
    const char* endings[] = {".", " today.", " again.", " at night.", "!"};
    std::vector<std::string> out;
    uint32_t state = 12345;
    auto next = [&](uint32_t n) {
        state = state * 1664525u + 1013904223u;
        return (state >> 16) % n;
    };
    for (int i = 0; i < 200; ++i)
        out.push_back(std::string(subjects[next(6)]) + " " + verbs[next(6)] + " " + objects[next(7)] + endings[next(5)]);
    return out;
}

}  // namespace

TEST(TokenizerWord, SpecialsHaveFixedIds) {
    Tokenizer t = train_ok(TokenizerKind::word, {"hello world"}, 0);
    EXPECT_EQ(t.pad_id(), 0);
    EXPECT_EQ(t.unk_id(), 1);
    EXPECT_EQ(t.eos_id(), 2);
    EXPECT_EQ(t.token_text(0), "<pad>");
    EXPECT_EQ(t.token_text(1), "<unk>");
    EXPECT_EQ(t.token_text(2), "</s>");
    EXPECT_EQ(t.token_text(3), "hello");
    EXPECT_EQ(t.token_text(4), "world");
    EXPECT_EQ(t.vocab_size(), 5);
    EXPECT_EQ(t.token_text(5), "<unk>");
    EXPECT_EQ(t.token_text(-1), "<unk>");
    EXPECT_EQ(t.kind(), TokenizerKind::word);
    EXPECT_STREQ(tokenizer_kind_name(t.kind()), "word");
}

TEST(TokenizerWord, SplitRules) {
    const std::string text = "Hello, world!  It's (x+y)=z\t\n</s> done.</s>";
    Tokenizer t = train_ok(TokenizerKind::word, {text}, 0);
    std::vector<std::string> expected = {"Hello", ",", "world", "!", "It", "'", "s", "(", "x", "+", "y", ")",
                                         "=", "z", "</s>", "done", ".", "</s>"};
    EXPECT_EQ(words_of(t, text), expected);
    // "</s>" is the existing special, not a new token; case is preserved.
    EXPECT_EQ(t.encode("</s>"), std::vector<int>{t.eos_id()});
    EXPECT_NE(t.encode("hello")[0], t.encode("Hello")[0]);
    // Whitespace runs of any kind separate tokens and produce nothing themselves.
    EXPECT_EQ(t.encode("  \t Hello \n\n world  "), t.encode("Hello world"));
    EXPECT_TRUE(t.encode(" \t\n ").empty());
}

TEST(TokenizerWord, UnknownWordsMapToUnk) {
    Tokenizer t = train_ok(TokenizerKind::word, {"a b c"}, 0);
    EXPECT_EQ(t.encode("a zebra c"), (std::vector<int>{t.encode("a")[0], t.unk_id(), t.encode("c")[0]}));
    EXPECT_EQ(t.encode("?"), std::vector<int>{t.unk_id()});
}

TEST(TokenizerWord, DecodeRoundTrip) {
    const std::string sentence = "The cat sat on the mat, then it slept. Did it dream? Yes!";
    Tokenizer t = train_ok(TokenizerKind::word, {sentence}, 0);
    EXPECT_EQ(t.decode(t.encode(sentence)), sentence);
    EXPECT_EQ(t.decode({0, 3, 0}), "The");  // pad skipped
    EXPECT_EQ(t.decode({3, 99}), "The <unk>");
}

TEST(TokenizerWord, JsonRoundTrip) {
    Tokenizer t = train_ok(TokenizerKind::word, {"one two, three. </s> four", "five one"}, 0);
    auto r = Tokenizer::from_json(t.to_json());
    ASSERT_TRUE(r.is_ok()) << r.status.msg;
    EXPECT_EQ(r->kind(), TokenizerKind::word);
    EXPECT_EQ(r->vocab_size(), t.vocab_size());
    const std::string probe = "five two, unknown three </s> one.";
    EXPECT_EQ(r->encode(probe), t.encode(probe));
    EXPECT_EQ(r->to_json(), t.to_json());
}

TEST(TokenizerWord, FromJsonRejectsBadInput) {
    const char* bad[] = {
        "not json at all",
        "[1,2,3]",
        "{\"tokens\":[\"<pad>\",\"<unk>\",\"</s>\"]}",
        "{\"kind\":\"char\",\"tokens\":[\"<pad>\",\"<unk>\",\"</s>\"]}",
        "{\"kind\":\"word\",\"tokens\":[]}",
        "{\"kind\":\"word\"}",
        "{\"kind\":\"word\",\"tokens\":[\"<pad>\",\"<unk>\",3]}",
        "{\"kind\":\"word\",\"tokens\":[\"a\",\"b\",\"c\"]}",
        "{\"kind\":\"bpe\",\"model\":\"@@@@\"}",
        "{\"kind\":\"unigram\",\"model\":\"aGVsbG8gd29ybGQ=\"}",  // valid base64, not a model
        "{\"kind\":\"bpe\"}",
    };
    for (const char* s : bad) {
        auto r = Tokenizer::from_json(s);
        EXPECT_FALSE(r.is_ok()) << s;
        EXPECT_FALSE(r.status.msg.empty()) << s;
    }
    EXPECT_NE(Tokenizer::from_json("{\"kind\":\"char\"}").status.msg.find("unknown kind"), std::string::npos);
}

TEST(TokenizerWord, EmptyCorpusFails) {
    auto r = Tokenizer::train(TokenizerKind::word, {}, 0);
    EXPECT_FALSE(r.is_ok());
    EXPECT_FALSE(r.status.msg.empty());
    EXPECT_FALSE(Tokenizer::train(TokenizerKind::word, {"   ", "\n"}, 0).is_ok());
}

class TokenizerSubword : public ::testing::TestWithParam<TokenizerKind> {};

TEST_P(TokenizerSubword, TrainEncodeDecode) {
    const auto docs = generated_sentences();
    Tokenizer t = train_ok(GetParam(), docs, 120);
    EXPECT_EQ(t.kind(), GetParam());
    EXPECT_LE(t.vocab_size(), 120);
    EXPECT_GT(t.vocab_size(), 8);
    EXPECT_EQ(t.token_text(t.pad_id()), "<pad>");
    EXPECT_EQ(t.token_text(t.unk_id()), "<unk>");
    EXPECT_EQ(t.token_text(t.eos_id()), "</s>");
    for (int i = 0; i < 20; ++i) {
        const std::string& s = docs[i * 7];
        std::vector<int> ids = t.encode(s);
        ASSERT_FALSE(ids.empty());
        for (int id : ids) {
            EXPECT_GE(id, 3);  // no unk, and no specials produced from plain text
            EXPECT_LT(id, t.vocab_size());
        }
        EXPECT_EQ(collapse_spaces(t.decode(ids)), collapse_spaces(s));
    }
}

TEST_P(TokenizerSubword, EosMarker) {
    Tokenizer t = train_ok(GetParam(), generated_sentences(), 120);
    std::vector<int> a = t.encode("the cat sees the river.");
    std::vector<int> ids = t.encode("the cat sees the river.</s>the cat sees the river. </s>");
    std::vector<int> expected = a;
    expected.push_back(t.eos_id());
    expected.insert(expected.end(), a.begin(), a.end());
    expected.push_back(t.eos_id());
    EXPECT_EQ(ids, expected);
    EXPECT_EQ(t.encode("</s>"), std::vector<int>{t.eos_id()});
    EXPECT_EQ(t.decode(ids), "the cat sees the river. </s> the cat sees the river. </s>");
    EXPECT_EQ(t.decode({t.pad_id(), t.eos_id(), t.pad_id()}), "</s>");
    EXPECT_FALSE(t.decode({-5, 100000}).empty());  // out-of-range ids render as unk, no crash
}

TEST_P(TokenizerSubword, JsonRoundTrip) {
    const auto docs = generated_sentences();
    Tokenizer t = train_ok(GetParam(), docs, 120);
    const std::string json = t.to_json();
    auto r = Tokenizer::from_json(json);
    ASSERT_TRUE(r.is_ok()) << r.status.msg;
    EXPECT_EQ(r->kind(), GetParam());
    EXPECT_EQ(r->vocab_size(), t.vocab_size());
    for (int i = 0; i < 200; i += 13) EXPECT_EQ(r->encode(docs[i] + " </s> " + docs[i + 1]), t.encode(docs[i] + " </s> " + docs[i + 1]));
    EXPECT_EQ(r->encode("zebras xylophone"), t.encode("zebras xylophone"));
    for (int id = 0; id < t.vocab_size(); ++id) EXPECT_EQ(r->token_text(id), t.token_text(id));
    // A copy shares the processor and behaves identically.
    Tokenizer copy = *r;
    EXPECT_EQ(copy.encode(docs[0]), t.encode(docs[0]));
}

TEST_P(TokenizerSubword, TrainingErrors) {
    auto empty = Tokenizer::train(GetParam(), {}, 120);
    EXPECT_FALSE(empty.is_ok());
    EXPECT_FALSE(empty.status.msg.empty());
    auto blank = Tokenizer::train(GetParam(), {"", " </s> "}, 120);
    EXPECT_FALSE(blank.is_ok());
    auto tiny = Tokenizer::train(GetParam(), generated_sentences(), 7);
    EXPECT_FALSE(tiny.is_ok());
    EXPECT_NE(tiny.status.msg.find("vocab_size"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Kinds, TokenizerSubword, ::testing::Values(TokenizerKind::bpe, TokenizerKind::unigram),
                         [](const auto& info) { return std::string(tokenizer_kind_name(info.param)); });

// A capped word vocabulary keeps the most frequent words (ties: first seen), the rest read <unk>,
// and the note says how many were cut and what share of tokens that is.
TEST(TokenizerWord, CapKeepsTheMostFrequentWordsAndSaysSo) {
    const std::vector<std::string> docs = {"a b c d e a b c a b a", "f g a"};  // a 5, b 3, c 2, then d e f g once
    std::string note;
    auto t = Tokenizer::train(TokenizerKind::word, docs, 3 + 3, &note);
    ASSERT_TRUE(t) << t.status.msg;
    EXPECT_EQ(t->vocab_size(), 6);
    EXPECT_EQ(t->token_text(3), "a");
    EXPECT_EQ(t->token_text(4), "b");
    EXPECT_EQ(t->token_text(5), "c");
    EXPECT_EQ(t->encode("a d c"), (std::vector<int>{3, t->unk_id(), 5}));
    EXPECT_NE(note.find("kept the 3 most frequent of 7 distinct words"), std::string::npos) << note;
    EXPECT_NE(note.find("28.6%"), std::string::npos) << note;  // 4 of 14 tokens
    std::string none;
    auto all = Tokenizer::train(TokenizerKind::word, docs, 0, &none);
    EXPECT_EQ(all->vocab_size(), 10);
    EXPECT_TRUE(none.empty()) << "no cap, no note";
}

// data.tokenizer / data.vocab_size "auto": word for the embedded corpus (never capped) and small
// files, bpe sized to the text above 200 KB.
TEST(TokenizerChoice, AutoFollowsTheCorpus) {
    DataConfig d;
    EXPECT_EQ(d.tokenizer, "auto");
    EXPECT_EQ(d.vocab_size, 0);
    auto c = tokenizer_choose(d, 300000);
    EXPECT_EQ(c.kind, "word");
    EXPECT_EQ(c.vocab_size, 0) << "the embedded corpus keeps every word";
    d.corpus = "/some/file.txt";
    c = tokenizer_choose(d, 150000);
    EXPECT_EQ(c.kind, "word");
    EXPECT_EQ(c.vocab_size, 8000);
    c = tokenizer_choose(d, 2500000);
    EXPECT_EQ(c.kind, "bpe");
    EXPECT_EQ(c.vocab_size, 3000);  // 1000 * round(2 sqrt(2.5))
    EXPECT_NE(c.why.find("2.5 MB"), std::string::npos) << c.why;
    EXPECT_EQ(tokenizer_choose(d, 250000).vocab_size, 2000);
    EXPECT_EQ(tokenizer_choose(d, 40000000).vocab_size, 8000);
    d.vocab_size = 500;
    EXPECT_EQ(tokenizer_choose(d, 2500000).vocab_size, 500) << "an explicit size wins";
    d.tokenizer = "unigram";
    EXPECT_EQ(tokenizer_choose(d, 2500000).kind, "unigram");
}

// A file over 200 KB gets a SentencePiece tokenizer, and dataset_build says what it is doing as it
// goes (the window's progress dialog shows it): reading with fractions that rise, training the
// tokenizer (no fraction: SentencePiece does not report one), then encoding with fractions that rise to 1.
TEST(DatasetProgress, StagesOfAFileCorpus) {
    const std::string path = ::testing::TempDir() + "routelab_progress_corpus.txt";
    {
        std::ofstream f(path);
        size_t bytes = 0;
        for (uint32_t seed = 1; bytes < 260000; seed++)
            for (const Document& d : corpus_embedded(200, seed)) f << d.text << "\n", bytes += d.text.size() + 1;
    }
    DataConfig d;
    d.corpus = path;
    std::vector<std::pair<std::string, double>> said;
    auto ds = dataset_build(d, nullptr, [&](const std::string& stage, double f) { said.emplace_back(stage, f); });
    ASSERT_TRUE(ds) << ds.status.msg;
    EXPECT_EQ(ds->tok.kind(), TokenizerKind::bpe);
    ASSERT_GE(said.size(), 4u);
    size_t i = 0;
    double last = -1;
    for (; i < said.size() && said[i].first == "reading " + path; i++) {
        EXPECT_GE(said[i].second, last) << "the fraction went back at report " << i;
        last = said[i].second;
    }
    EXPECT_GE(i, 20u) << "reading should be told in steps of about 1%";
    ASSERT_LT(i + 2, said.size());
    EXPECT_EQ(said[i].first.rfind("training the bpe tokenizer (2000 pieces) on 0.3 MB", 0), 0u) << said[i].first;
    EXPECT_LT(said[i].second, 0);
    last = -1;
    int encoding = 0;
    for (i++; i < said.size(); i++) {
        EXPECT_EQ(said[i].first, "encoding the text");
        EXPECT_GE(said[i].second, last) << "the fraction went back at report " << i;
        last = said[i].second, encoding++;
    }
    EXPECT_EQ(last, 1.0);
    EXPECT_GE(encoding, 20) << "encoding should be told in steps of about 1%";
    std::remove(path.c_str());
}
