// The parts of HfTokenizer (train/hf_tokenizer.h), shared by its source files:
//   hf_tokenizer.cpp       loading tokenizer.json / tokenizer.model, encode and decode;
//   hf_tokenizer_text.cpp  UTF-8, ICU regexes, normalizers, pre-tokenizers, decoders;
//   hf_tokenizer_bpe.cpp   the BPE model, the added-token matcher, the post-processor.
// Each component is a plain struct with a kind and the fields its kind uses, built once by the
// loader and read-only afterwards. Text is UTF-8 throughout; offsets are byte offsets.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <unicode/uversion.h>  // U_NAMESPACE_BEGIN: ICU's versioned namespace, so its classes can be declared here

U_NAMESPACE_BEGIN
class RegexPattern;
U_NAMESPACE_END
namespace sentencepiece {
class SentencePieceProcessor;
}

namespace rl::hf {

// Lets maps keyed by std::string be probed with string_views.
struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringIdMap = std::unordered_map<std::string, int, StringHash, std::equal_to<>>;

// ---- UTF-8 (hf_tokenizer_text.cpp) ----
// The code point at s[i] and its length in bytes; an invalid byte reads as U+FFFD, length 1.
std::pair<char32_t, int> utf8_next(std::string_view s, size_t i);
void utf8_append(std::string& out, char32_t c);
bool is_white_space(char32_t c);  // Unicode White_Space, Rust's char::is_whitespace
// Rust's String::from_utf8_lossy: each maximal invalid subsequence becomes one U+FFFD.
std::string utf8_lossy(std::string_view bytes);
bool utf8_valid(std::string_view bytes);

// ---- Regex: an Oniguruma pattern compiled by ICU (hf_tokenizer_text.cpp) ----
struct Regex {
    std::shared_ptr<const icu::RegexPattern> pattern;  // null: `literal` is searched instead
    std::string literal;                                  // a String pattern (regex::escape'd in Rust)
};
// Compiles `pattern` (is_regex) or keeps it as a literal; false with *err set when ICU refuses it.
bool regex_make(Regex& out, const std::string& pattern, bool is_regex, std::string* err);
// The library's Pattern::find_matches (tokenizer/pattern.rs): the text cut into (begin, end, is_match)
// ranges covering it, in order; empty text gives one empty non-match.
struct Range {
    size_t begin, end;
    bool is_match;
};
std::vector<Range> regex_find(const Regex& re, std::string_view text);

// ---- Normalizers (normalizers/*.rs) ----
enum class NormKind { nfc, nfd, nfkc, nfkd, lowercase, prepend, replace, strip, strip_accents, sequence };
struct Normalizer {
    NormKind kind = NormKind::sequence;
    std::string text;     // prepend: the prefix; replace: the content
    Regex pattern;        // replace
    bool left = false, right = false;  // strip
    std::vector<Normalizer> children;  // sequence
};
std::string normalize(const Normalizer& n, std::string s);

// ---- Pre-tokenizers (pre_tokenizers/*.rs) ----
// Behaviour of a split (tokenizer/normalizer.rs SplitDelimiterBehavior).
enum class SplitBehavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };
enum class PreKind { split, byte_level, metaspace, whitespace, whitespace_split, digits, sequence };
enum class PrependScheme { first, always, never };
struct PreTokenizer {
    PreKind kind = PreKind::sequence;
    Regex pattern;  // split; byte_level / whitespace: their fixed regexes
    SplitBehavior behavior = SplitBehavior::isolated;
    bool invert = false;                  // split
    bool add_prefix_space = false;        // byte_level
    bool use_regex = true;                // byte_level
    std::string replacement;              // metaspace
    PrependScheme prepend = PrependScheme::always;
    bool split_words = true;              // metaspace: split; digits: individual_digits
    std::vector<PreTokenizer> children;   // sequence
};
// A piece of the text on its way to the model: a word, or an added token already (added_id >= 0).
struct Piece {
    std::string text;
    int added_id = -1;
    bool at_origin = false;  // starts at byte 0 of the original text (Metaspace prepend_scheme "first")
};
void pre_tokenize(const PreTokenizer& p, std::vector<Piece>& pieces);
// Applies a split behaviour to the ranges of regex_find, giving the kept ranges.
std::vector<std::pair<size_t, size_t>> split_ranges(std::vector<Range> matches, SplitBehavior b);
// The GPT-2 byte-to-unicode table (pre_tokenizers/byte_level.rs bytes_char): byte -> UTF-8 of its char.
const std::vector<std::string>& byte_level_chars();

// ---- Decoders (decoders/*.rs) ----
enum class DecKind { byte_level, metaspace, replace, byte_fallback, fuse, strip, sequence };
struct Decoder {
    DecKind kind = DecKind::sequence;
    Regex pattern;         // replace
    std::string text;      // replace: the content; metaspace: the replacement; strip: the content char
    PrependScheme prepend = PrependScheme::always;  // metaspace
    int start = 0, stop = 0;                        // strip
    std::vector<Decoder> children;                  // sequence
};
std::vector<std::string> decode_chain(const Decoder& d, std::vector<std::string> tokens);

// ---- BPE (models/bpe/model.rs, word.rs; hf_tokenizer_bpe.cpp) ----
struct Bpe {
    StringIdMap vocab;
    std::vector<std::string> vocab_r;  // id -> token ("" where no token has that id)
    std::unordered_map<uint64_t, std::pair<int, int>> merges;  // (left id << 32 | right id) -> (rank, merged id)
    int unk_id = -1;
    std::optional<std::string> prefix, suffix;  // continuing_subword_prefix, end_of_word_suffix
    bool fuse_unk = false, byte_fallback = false, ignore_merges = false;
    int byte_ids[256];  // byte_fallback: id of "<0xXX>", -1 when absent
};
// Appends the ids of one word (a pre-tokenized piece).
void bpe_word(const Bpe& m, std::string_view word, std::vector<int>& out);

// A word cache like the library's (utils/cache.rs: 10,000 words of under 256 bytes), shared by copies.
struct WordCache {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<int>, StringHash, std::equal_to<>> words;
};

// ---- Added tokens (tokenizer/added_vocabulary.rs) ----
struct AddedToken {
    int id = -1;
    std::string content, normalized_content;  // normalized_content: the normalizer's output when normalized
    bool special = false, single_word = false, lstrip = false, rstrip = false, normalized = false;
};
// A byte trie over token contents, matched leftmost-longest as the library's Aho-Corasick does.
struct Trie {
    struct Node {
        std::unordered_map<unsigned char, int> next;
        int token = -1;  // index into AddedVocab::tokens
    };
    std::vector<Node> nodes{1};
    bool empty() const { return nodes.size() == 1; }
};
struct AddedVocab {
    std::vector<AddedToken> tokens;
    std::unordered_map<int, int> by_id;  // id -> index into tokens
    StringIdMap by_content;              // content -> id
    std::unordered_set<std::string> special_contents;
    Trie raw, normalized;  // tokens matched before / after the normalizer
};
void trie_add(Trie& t, std::string_view key, int token);
// AddedVocabulary::find_matches: `text` cut into pieces, added tokens with their ids.
std::vector<Piece> added_split(const AddedVocab& v, const Trie& t, std::string_view text, bool at_origin);

// ---- Post-processor (processors/*.rs) ----
struct PostProcessor {
    // The ids to put around the sequence when add_special, in order; -1 stands for the sequence.
    // ByteLevel contributes nothing; Sequence applies its children in turn.
    std::vector<std::vector<int>> steps;  // one template per processor
};
std::vector<int> post_process(const PostProcessor& p, std::vector<int> ids);

// ---- Everything ----
struct State {
    std::string path;  // for messages
    // tokenizer.json
    std::optional<Normalizer> normalizer;
    std::optional<PreTokenizer> pre_tokenizer;
    Bpe model;
    AddedVocab added;
    PostProcessor post;
    std::optional<Decoder> decoder;
    int vocab_size = 0;  // highest id + 1
    mutable WordCache cache;
    // tokenizer.model
    std::shared_ptr<sentencepiece::SentencePieceProcessor> sp;
};

}  // namespace rl::hf
