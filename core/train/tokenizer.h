// Tokenizer: turns corpus text into token ids and back. Three kinds share one interface:
//   word    - whitespace/punctuation split with a closed vocabulary (RustGPT-style);
//   bpe     - SentencePiece BPE trained in memory;
//   unigram - SentencePiece unigram LM trained in memory.
//   hf      - a Hugging Face model's own tokenizer (train/hf_tokenizer.h), wrapped so the probe and
//             generation take it like the others: encode adds the model's special tokens (its BOS),
//             decode drops them, token_text is a token's decoded text, eos_id is the model's.
// Ids 0, 1, 2 are <pad>, <unk>, </s> for the three trained kinds, so the model and the data pipeline
// never need to know which of them is in use. The literal "</s>" in text is the end-of-document
// marker and always encodes to eos_id().
//
// Word-level rules:
//   - split on whitespace; every ASCII punctuation character (std::ispunct) is its own token,
//     except that "</s>" is kept whole; non-ASCII bytes (UTF-8) belong to words; case is kept;
//   - words not in the vocabulary encode to <unk>;
//   - decode joins tokens with single spaces, with no space before . , ! ? ; : and ' ;
//     <pad> is skipped.
// Subword rules: decode skips <pad> and renders eos as a standalone "</s>" word. SentencePiece
// runs without Unicode normalisation but collapses whitespace runs (newlines included) and trims
// the ends, so decode(encode(s)) equals s up to whitespace.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "util/status.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace rl {

class HfTokenizer;

enum class TokenizerKind { word, bpe, unigram, hf };
const char* tokenizer_kind_name(TokenizerKind k);  // "word" | "bpe" | "unigram" | "hf"

class Tokenizer {
public:
    // Builds the vocabulary from `docs`. word: every distinct token in first-seen order after
    // the specials; with vocab_size > 0 and more distinct words than that, only the vocab_size - 3
    // most frequent (ties: first seen), the rest reading <unk>, and *note says how many were cut and
    // the share of tokens that became <unk>. bpe/unigram: SentencePiece trained in memory with
    // vocab_size as a soft upper bound (small corpora yield fewer pieces instead of failing).
    static Result<Tokenizer> train(TokenizerKind kind, const std::vector<std::string>& docs, int vocab_size,
                                   std::string* note = nullptr);

    // JSON string stored in checkpoint metadata:
    //   word:    {"kind":"word","tokens":[...]}
    //   subword: {"kind":"bpe"|"unigram","model":"<base64 of the serialized ModelProto>"}
    std::string to_json() const;
    static Result<Tokenizer> from_json(const std::string& json);  // validates, never throws
    // A Hugging Face model's tokenizer; eos: the model's end-of-sequence id (config.json), -1 = none.
    // to_json gives {"kind":"hf"} only: such a tokenizer is the model folder's, never stored.
    static Tokenizer from_hf(const HfTokenizer& t, int eos);

    std::vector<int> encode(const std::string& text) const;
    std::string decode(const std::vector<int>& ids) const;
    std::string token_text(int id) const;  // piece / word for display; "<unk>" when out of range

    int vocab_size() const;
    int pad_id() const { return 0; }
    int unk_id() const { return 1; }
    int eos_id() const { return eos_; }
    TokenizerKind kind() const { return kind_; }

private:
    // Lets the word index be probed with string_views (no allocation per token while encoding).
    struct string_hash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };

    explicit Tokenizer(TokenizerKind kind) : kind_(kind) {}
    void add_word(std::string_view w);
    static Result<Tokenizer> from_word_tokens(std::vector<std::string> tokens);
    static Result<Tokenizer> from_model_proto(TokenizerKind kind, const std::string& proto);

    TokenizerKind kind_;
    int eos_ = 2;
    std::shared_ptr<const HfTokenizer> hf_;  // hf kind only
    std::vector<std::string> tokens_;  // word: id -> token
    std::unordered_map<std::string, int, string_hash, std::equal_to<>> index_;  // word: token -> first id
    // Shared and immutable after loading, so Tokenizer copies stay cheap.
    std::shared_ptr<const sentencepiece::SentencePieceProcessor> sp_;
};

}  // namespace rl
