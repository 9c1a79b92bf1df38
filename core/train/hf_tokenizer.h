// HfTokenizer: the tokenizer of a Hugging Face model folder, read from its tokenizer.json (the
// format of Hugging Face's tokenizers library) or from a SentencePiece tokenizer.model, encoding
// and decoding as those libraries do, ids for ids.
//
// tokenizer.json, the pipeline of the tokenizers library (tokenizers/src/tokenizer/mod.rs):
//   1. added tokens (`added_tokens`) are cut out of the raw text first, longest match first
//      (single_word, lstrip, rstrip honoured); those with normalized=true are looked for after
//      the normalizer instead;
//   2. each remaining piece goes through the normalizer: NFC, NFD, NFKC, NFKD, Lowercase, Prepend,
//      Replace (String or Regex), Strip, StripAccents, Sequence;
//   3. the pre-tokenizer splits it into words: Split (regex through ICU, every behaviour and
//      invert), ByteLevel (GPT-2 byte-to-unicode mapping, add_prefix_space, use_regex),
//      Metaspace (prepend_scheme first/always/never, split), Whitespace, WhitespaceSplit,
//      Digits, Sequence;
//   4. the model, BPE: merges by rank (as "a b" strings or [a, b] pairs), ignore_merges,
//      byte_fallback (<0xXX> tokens), unk_token with fuse_unk, continuing_subword_prefix,
//      end_of_word_suffix; words are cached;
//   5. with add_special, the post-processor: TemplateProcessing (the single template),
//      RobertaProcessing, BertProcessing, ByteLevel (nothing to do for ids), Sequence.
// Decoding maps ids to their pieces (special added tokens dropped with skip_special) and runs the
// decoder: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence (none: pieces
// joined with spaces, as the library does).
// Refused at load, naming the component: models other than BPE (WordPiece, Unigram, WordLevel),
// and any normalizer, pre-tokenizer, post-processor or decoder not listed above. Not applied:
// `truncation` and `padding` (ids are the whole text's) and BPE `dropout` (training only).
// Regexes are the library's Oniguruma patterns run by ICU's engine, with Oniguruma's line anchors
// (^ and $ at each \n); the constructs real files use (\p{L}, \p{N}, \s as White_Space,
// look-ahead, (?i:...)) mean the same in both.
//
// tokenizer.model (SentencePiece, through libsentencepiece): its own normalization and model;
// add_special prepends the model's BOS id when it has one (what Llama and Mistral do) and
// nothing else; decode drops control pieces (<s>, </s>) whatever skip_special says, as
// SentencePiece does.
//
// Every problem with the file is a one-line message `tokenizer '<path>': <what and what to do>`.
// Copies are cheap: they share the immutable loaded state (and a word cache guarded by a mutex),
// so one tokenizer may be used from several threads.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace rl {

namespace hf {
struct State;
}

class HfTokenizer {
public:
    // path: a tokenizer.json (Hugging Face tokenizers format) or a SentencePiece tokenizer.model
    // (told apart by content: JSON starts with '{').
    static Result<HfTokenizer> load(const std::string& path);
    // The text of a tokenizer.json; `name` stands for the path in messages.
    static Result<HfTokenizer> from_json(std::string_view json_text, const std::string& name);

    std::vector<int> encode(std::string_view text, bool add_special) const;  // add_special: the post-processor's template
    std::string decode(const std::vector<int>& ids, bool skip_special) const;
    std::string token_text(int id) const;  // the piece as stored (for display), "" when out of range
    int vocab_size() const;                // highest id + 1, added tokens included
    std::optional<int> token_id(std::string_view piece) const;
    bool is_special(int id) const;         // a special added token (tokenizer.json) or a control piece (SentencePiece)

private:
    explicit HfTokenizer(std::shared_ptr<const hf::State> s) : s_(std::move(s)) {}
    std::shared_ptr<const hf::State> s_;
};

}  // namespace rl
