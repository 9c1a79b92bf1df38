#include "train/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdint>

#include <nlohmann/json.hpp>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include "train/hf_tokenizer.h"

namespace rl {
namespace {

constexpr std::string_view k_eos = "</s>";
const char* const k_specials[] = {"<pad>", "<unk>", "</s>"};
constexpr int k_min_subword_vocab = 8;
// SentencePiece silently drops training sentences longer than max_sentence_length (4192 bytes),
// so long lines are cut below that.
constexpr size_t k_max_train_sentence = 4000;

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }
bool is_punct(char c) { return std::ispunct(static_cast<unsigned char>(c)) != 0; }

// Calls emit(token) for each word-level token of `text` (views into `text`).
template <class F>
void split_words(std::string_view text, F&& emit) {
    size_t i = 0, n = text.size();
    while (i < n) {
        char c = text[i];
        if (is_space(c)) {
            ++i;
        } else if (text.compare(i, k_eos.size(), k_eos) == 0) {
            emit(k_eos);
            i += k_eos.size();
        } else if (is_punct(c)) {
            emit(text.substr(i, 1));
            ++i;
        } else {
            size_t j = i + 1;
            while (j < n && !is_space(text[j]) && !is_punct(text[j])) ++j;
            emit(text.substr(i, j - i));
            i = j;
        }
    }
}

// Calls emit(segment) for the pieces of `text` between "</s>" markers, and emit_eos() for each marker.
template <class F, class G>
void split_on_eos(std::string_view text, F&& emit, G&& emit_eos) {
    size_t start = 0;
    for (size_t pos; (pos = text.find(k_eos, start)) != std::string_view::npos; start = pos + k_eos.size()) {
        emit(text.substr(start, pos - start));
        emit_eos();
    }
    emit(text.substr(start));
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

// Training sentences for SentencePiece: lines of each document with "</s>" removed (it is a
// control symbol, not text to learn), cut at whitespace (or a UTF-8 boundary) when too long.
std::vector<std::string> training_sentences(const std::vector<std::string>& docs) {
    std::vector<std::string> out;
    auto add_line = [&](std::string_view line) {
        for (line = trim(line); !line.empty(); line = trim(line)) {
            size_t cut = line.size();
            if (cut > k_max_train_sentence) {
                cut = line.rfind(' ', k_max_train_sentence);
                if (cut == std::string_view::npos || cut == 0) {
                    cut = k_max_train_sentence;
                    while (cut > 1 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
                }
            }
            out.emplace_back(line.substr(0, cut));
            line.remove_prefix(cut);
        }
    };
    for (const std::string& doc : docs) {
        split_on_eos(doc, [&](std::string_view seg) {
            for (size_t start = 0; start <= seg.size();) {
                size_t nl = seg.find('\n', start);
                if (nl == std::string_view::npos) nl = seg.size();
                add_line(seg.substr(start, nl - start));
                start = nl + 1;
            }
        }, [] {});
    }
    return out;
}

class vector_sentence_iterator : public sentencepiece::SentenceIterator {
public:
    explicit vector_sentence_iterator(const std::vector<std::string>& v) : v_(v) {}
    bool done() const override { return i_ >= v_.size(); }
    void Next() override { ++i_; }
    const std::string& value() const override { return v_[i_]; }
    sentencepiece::util::Status status() const override { return {}; }

private:
    const std::vector<std::string>& v_;
    size_t i_ = 0;
};

constexpr char k_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(std::string_view in) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
        out += k_b64[v >> 18];
        out += k_b64[(v >> 12) & 63];
        out += k_b64[(v >> 6) & 63];
        out += k_b64[v & 63];
    }
    if (size_t rest = in.size() - i; rest > 0) {
        uint32_t v = uint8_t(in[i]) << 16;
        if (rest == 2) v |= uint8_t(in[i + 1]) << 8;
        out += k_b64[v >> 18];
        out += k_b64[(v >> 12) & 63];
        out += rest == 2 ? k_b64[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

// Strict decoder: false on any character outside the alphabet or bad padding.
bool base64_decode(std::string_view in, std::string& out) {
    if (in.size() % 4 != 0) return false;
    size_t pad = 0;
    while (pad < 2 && pad < in.size() && in[in.size() - 1 - pad] == '=') ++pad;
    out.clear();
    out.reserve(in.size() / 4 * 3);
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < in.size() - pad; ++i) {
        const char* p = std::char_traits<char>::find(k_b64, 64, in[i]);
        if (!p) return false;
        acc = (acc << 6) | uint32_t(p - k_b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += char((acc >> bits) & 0xFF);
        }
    }
    return true;
}

}  // namespace

const char* tokenizer_kind_name(TokenizerKind k) {
    switch (k) {
        case TokenizerKind::word: return "word";
        case TokenizerKind::bpe: return "bpe";
        case TokenizerKind::unigram: return "unigram";
        case TokenizerKind::hf: return "hf";
    }
    return "word";
}

void Tokenizer::add_word(std::string_view w) {
    tokens_.emplace_back(w);
    index_.try_emplace(tokens_.back(), static_cast<int>(tokens_.size()) - 1);
}

Result<Tokenizer> Tokenizer::from_word_tokens(std::vector<std::string> tokens) {
    for (int i = 0; i < 3; ++i) {
        if (static_cast<int>(tokens.size()) <= i || tokens[i] != k_specials[i])
            return Status::error(std::string("tokenizer: word vocabulary must start with <pad>, <unk>, </s>; "
                                             "token ") + std::to_string(i) + " is wrong (the metadata is damaged: "
                                             "retrain or use an intact checkpoint)");
    }
    Tokenizer t(TokenizerKind::word);
    t.tokens_.reserve(tokens.size());
    t.index_.reserve(tokens.size());
    // Duplicates are tolerated (first id wins) so ids always stay aligned with the model's rows.
    for (const std::string& w : tokens) t.add_word(w);
    return t;
}

Result<Tokenizer> Tokenizer::from_model_proto(TokenizerKind kind, const std::string& proto) {
    auto sp = std::make_shared<sentencepiece::SentencePieceProcessor>();
    if (auto st = sp->LoadFromSerializedProto(proto); !st.ok())
        return Status::error(std::string("tokenizer: cannot load the SentencePiece model (") + st.ToString() +
                             "); retrain the tokenizer or use an intact checkpoint");
    if (sp->pad_id() != 0 || sp->unk_id() != 1 || sp->eos_id() != 2 || sp->GetPieceSize() < 3)
        return Status::error("tokenizer: SentencePiece model must use pad=0, unk=1, eos=2 (got pad=" +
                             std::to_string(sp->pad_id()) + ", unk=" + std::to_string(sp->unk_id()) +
                             ", eos=" + std::to_string(sp->eos_id()) + "); retrain it with RouteLab");
    Tokenizer t(kind);
    t.sp_ = std::move(sp);
    return t;
}

Result<Tokenizer> Tokenizer::train(TokenizerKind kind, const std::vector<std::string>& docs, int vocab_size,
                                   std::string* note) {
    if (kind == TokenizerKind::word) {
        Tokenizer t(TokenizerKind::word);
        for (const char* s : k_specials) t.add_word(s);
        std::vector<long> count;  // per id, occurrences in the corpus
        long total = 0;
        for (const std::string& doc : docs)
            split_words(doc, [&](std::string_view w) {
                auto it = t.index_.find(w);
                if (it == t.index_.end()) t.add_word(w), it = t.index_.find(w);
                if ((size_t)it->second >= count.size()) count.resize(it->second + 1, 0);
                count[it->second]++, total++;
            });
        if (t.tokens_.size() == 3)
            return Status::error("tokenizer: the corpus has no words to build a vocabulary from "
                                 "(check data paths and that the files are not empty)");
        if (vocab_size <= 0 || (int)t.tokens_.size() <= vocab_size) return t;
        // A capped vocabulary: the most frequent words (a long tail of rare words would take most of
        // the embedding and LM head while each is seen a handful of times).
        count.resize(t.tokens_.size(), 0);
        std::vector<int> ids;
        for (int i = 3; i < (int)t.tokens_.size(); i++) ids.push_back(i);
        std::stable_sort(ids.begin(), ids.end(), [&](int a, int b) { return count[a] > count[b]; });
        const int keep = std::max(1, vocab_size - 3);
        long kept_tokens = 0;
        std::vector<std::string> tokens(k_specials, k_specials + 3);
        for (int k = 0; k < keep; k++) tokens.push_back(t.tokens_[ids[k]]), kept_tokens += count[ids[k]];
        if (note) {
            char b[256];
            std::snprintf(b, sizeof b,
                          "word tokenizer: kept the %d most frequent of %zu distinct words (data.vocab_size %d); the "
                          "other %zu read <unk>, %.1f%% of the corpus's tokens",
                          keep, t.tokens_.size() - 3, vocab_size, ids.size() - keep, 100.0 * (total - kept_tokens) / std::max(1L, total));
            *note = b;
        }
        return from_word_tokens(std::move(tokens));
    }

    if (vocab_size < k_min_subword_vocab)
        return Status::error("tokenizer: vocab_size must be >= " + std::to_string(k_min_subword_vocab) +
                             " for " + tokenizer_kind_name(kind) + ", got " + std::to_string(vocab_size) +
                             " (a few hundred to a few thousand is typical)");
    std::vector<std::string> sentences = training_sentences(docs);
    if (sentences.empty())
        return Status::error(std::string("tokenizer: the corpus has no text to train the ") +
                             tokenizer_kind_name(kind) + " tokenizer on (check data paths and that the files are not empty)");

    const std::unordered_map<std::string, std::string> args = {
        {"model_type", tokenizer_kind_name(kind)},
        {"vocab_size", std::to_string(vocab_size)},
        {"hard_vocab_limit", "false"},  // tiny corpora give fewer pieces instead of an error
        {"byte_fallback", "false"},
        {"character_coverage", "1.0"},
        // No NFKC: keeps decode faithful and the model small (the NFKC table alone is ~240 KB of
        // checkpoint metadata). Whitespace runs are still collapsed.
        {"normalization_rule_name", "identity"},
        {"pad_id", "0"}, {"unk_id", "1"}, {"eos_id", "2"}, {"bos_id", "-1"},
        {"minloglevel", "100"},  // training progress goes to stderr otherwise
    };
    vector_sentence_iterator it(sentences);
    std::string proto;
    if (auto st = sentencepiece::SentencePieceTrainer::Train(args, &it, &proto); !st.ok())
        return Status::error(std::string("tokenizer: SentencePiece ") + tokenizer_kind_name(kind) +
                             " training failed: " + st.error_message() +
                             " (try a larger vocab_size, a larger corpus, or tokenizer \"word\")");
    return from_model_proto(kind, proto);
}

Tokenizer Tokenizer::from_hf(const HfTokenizer& t, int eos) {
    Tokenizer k(TokenizerKind::hf);
    k.hf_ = std::make_shared<const HfTokenizer>(t);
    k.eos_ = eos;
    return k;
}

std::string Tokenizer::to_json() const {
    nlohmann::json j;
    j["kind"] = tokenizer_kind_name(kind_);
    if (kind_ == TokenizerKind::hf) return j.dump();
    if (kind_ == TokenizerKind::word)
        j["tokens"] = tokens_;
    else
        j["model"] = base64_encode(sp_->serialized_model_proto());
    // Invalid UTF-8 inside a word becomes U+FFFD rather than throwing; the token count (and so
    // every id) is unchanged.
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<Tokenizer> Tokenizer::from_json(const std::string& json) {
    const nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
    if (j.is_discarded() || !j.is_object())
        return Status::error("tokenizer: metadata is not a JSON object (the checkpoint is damaged: use an intact one)");
    auto kind_it = j.find("kind");
    if (kind_it == j.end() || !kind_it->is_string())
        return Status::error("tokenizer: metadata lacks a string \"kind\" (the checkpoint is damaged: use an intact one)");
    const std::string kind = kind_it->get<std::string>();

    if (kind == "word") {
        auto tok_it = j.find("tokens");
        if (tok_it == j.end() || !tok_it->is_array() || tok_it->empty())
            return Status::error("tokenizer: word metadata needs a non-empty \"tokens\" array "
                                 "(the checkpoint is damaged: use an intact one)");
        std::vector<std::string> tokens;
        tokens.reserve(tok_it->size());
        for (const auto& t : *tok_it) {
            if (!t.is_string())
                return Status::error("tokenizer: \"tokens\" must contain only strings (the checkpoint is damaged: use an intact one)");
            tokens.push_back(t.get<std::string>());
        }
        return from_word_tokens(std::move(tokens));
    }
    if (kind == "bpe" || kind == "unigram") {
        auto model_it = j.find("model");
        std::string proto;
        if (model_it == j.end() || !model_it->is_string() || !base64_decode(model_it->get<std::string>(), proto) ||
            proto.empty())
            return Status::error("tokenizer: " + kind + " metadata needs \"model\" as a base64 SentencePiece model "
                                 "(the checkpoint is damaged: use an intact one)");
        return from_model_proto(kind == "bpe" ? TokenizerKind::bpe : TokenizerKind::unigram, proto);
    }
    return Status::error("tokenizer: unknown kind \"" + kind + "\" (expected word, bpe or unigram)");
}

std::vector<int> Tokenizer::encode(const std::string& text) const {
    if (kind_ == TokenizerKind::hf) return hf_->encode(text, true);
    std::vector<int> ids;
    if (kind_ == TokenizerKind::word) {
        ids.reserve(text.size() / 4);
        split_words(text, [&](std::string_view w) {
            auto it = index_.find(w);
            ids.push_back(it == index_.end() ? unk_id() : it->second);
        });
        return ids;
    }
    std::vector<int> piece_ids;
    split_on_eos(text, [&](std::string_view seg) {
        sp_->Encode(seg, &piece_ids).IgnoreError();  // only fails when no model is loaded
        ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
    }, [&] { ids.push_back(eos_id()); });
    return ids;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
    if (kind_ == TokenizerKind::hf) return hf_->decode(ids, true);
    std::string out;
    if (kind_ == TokenizerKind::word) {
        for (int id : ids) {
            if (id == pad_id()) continue;
            const std::string& w = (id >= 0 && id < vocab_size()) ? tokens_[id] : tokens_[unk_id()];
            bool glue = w.size() == 1 && std::string_view(".,!?;:'").find(w[0]) != std::string_view::npos;
            if (!out.empty() && !glue) out += ' ';
            out += w;
        }
        return out;
    }
    // SentencePiece decodes runs between eos markers; eos becomes a standalone "</s>" word.
    std::vector<int> run;
    auto append = [&](std::string_view part) {
        if (part.empty()) return;
        if (!out.empty()) out += ' ';
        out += part;
    };
    auto flush = [&] {
        std::string text;
        sp_->Decode(run, &text).IgnoreError();  // ids are range-checked below, so it cannot fail
        append(text);
        run.clear();
    };
    for (int id : ids) {
        if (id == pad_id()) continue;
        if (id == eos_id()) {
            flush();
            append(k_eos);
        } else {
            run.push_back(id >= 0 && id < vocab_size() ? id : unk_id());
        }
    }
    flush();
    return out;
}

std::string Tokenizer::token_text(int id) const {
    if (id < 0 || id >= vocab_size()) return "<unk>";
    if (kind_ == TokenizerKind::hf) return hf_->decode({id}, false);  // "Ġthe" reads " the"
    return kind_ == TokenizerKind::word ? tokens_[id] : sp_->IdToPiece(id);
}

int Tokenizer::vocab_size() const {
    if (kind_ == TokenizerKind::hf) return hf_->vocab_size();
    return kind_ == TokenizerKind::word ? static_cast<int>(tokens_.size()) : sp_->GetPieceSize();
}

}  // namespace rl
