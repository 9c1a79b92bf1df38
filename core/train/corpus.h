// Corpora, the train/validation split and batches.
// The embedded default corpus has five domains; every token carries its document's domain so
// expert specialization can be scored against ground truth. Arithmetic and code are procedural:
// any amount, from a seed.
#pragma once
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "config/config.h"
#include "train/tokenizer.h"
#include "util/status.h"

namespace rl {

enum Domain : uint8_t { dom_facts = 0, dom_stories, dom_arithmetic, dom_code, dom_dialogue, dom_user, dom_count };
const char* domain_name(int d);

struct Document {
    std::string text;  // without the end marker; "</s>" is appended when tokenizing
    uint8_t domain;
};

// The embedded corpus: facts, stories and dialogue from assets/corpus, plus `synthetic_docs`
// procedural documents each of arithmetic ("17 + 25 = 42.") and code-like lines.
std::vector<Document> corpus_embedded(int synthetic_docs, unsigned seed);
std::string corpus_gen_arithmetic(std::mt19937& rng);
std::string corpus_gen_code(std::mt19937& rng);
// A user file: UTF-8 .txt (one document per non-empty line) or RustGPT's JSON array of strings.
// progress (optional): the share of the file read so far, 0..1, about every 1%.
using CorpusProgress = std::function<void(double fraction)>;
Result<std::vector<Document>> corpus_load_file(const std::string& path, const CorpusProgress& progress = nullptr);
// A corpus path must name a regular file (not a folder, a FIFO, a device such as /dev/zero): the
// message says what it is and what to do. Its size in *bytes.
Status corpus_check_file(const std::string& path, size_t* bytes = nullptr);

struct TokenStream {
    std::vector<int> ids;          // documents concatenated, each followed by </s>
    std::vector<uint8_t> domain;   // (ids.size()) domain of each token
};

// Everything training needs from the data: the tokenizer (trained on the training documents)
// and the two token streams. The split is fixed by data.corpus_seed: documents are shuffled
// once, and the last val_fraction of each domain goes to validation.
struct Dataset {
    Tokenizer tok;
    TokenStream train, val;
    std::vector<int> domains_present;
    std::string tokenizer_note;  // which tokenizer and vocabulary data.tokenizer / vocab_size "auto" chose, and why
};

// The tokenizer and vocabulary a corpus of `text_bytes` gets (README, "Config keys"): data.tokenizer
// "auto" is word for the embedded corpus and files up to 200 KB, bpe above; data.vocab_size 0 is
// 1000 * round(2 sqrt(MB)) clamped to 2000..8000 for subwords, and for word a cap of 8000 on files.
struct TokenizerChoice {
    std::string kind;  // word | bpe | unigram
    int vocab_size = 0;  // subword target, or the word cap (0 = none)
    std::string why;
};
TokenizerChoice tokenizer_choose(const DataConfig& d, size_t text_bytes);
// Splits the corpus and tokenizes it: with the tokenizer trained on the training split as
// data.tokenizer / vocab_size say, or with `given` (a checkpoint's own, so a resumed run reads its
// corpus exactly as it was trained, whatever the tokenizer rules are today).
// progress (optional) is told what is being done, as it starts: a stage in words and how far along
// it is, 0..1, or -1 where that is not known (SentencePiece's trainer says nothing until it is done).
using DataProgress = std::function<void(const std::string& stage, double fraction)>;
// Never throws: running out of memory anyway (the estimate missed) comes back as a message.
Result<Dataset> dataset_build(const DataConfig& d, const Tokenizer* given = nullptr, const DataProgress& progress = nullptr);
// The same, letting std::bad_alloc through.
Result<Dataset> dataset_build_unchecked(const DataConfig& d, const Tokenizer* given, const DataProgress& progress);

// Fills tokens and targets (B,T) with random windows of the stream (targets shifted by one).
// domains (B,T) may be null. Requires stream.ids.size() > T.
void batch_sample(const TokenStream& s, int B, int T, std::mt19937_64& rng, int* tokens, int* targets,
                  uint8_t* domains = nullptr);
// The k-th of `count` fixed, evenly spaced validation windows (deterministic evaluation).
void batch_fixed(const TokenStream& s, int B, int T, int k, int count, int* tokens, int* targets,
                 uint8_t* domains = nullptr);

}  // namespace rl
