#include "train/corpus.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "train/memory.h"
#include "util/assets.h"
#include "util/threads.h"
#include "util/strfmt.h"

namespace rl {

const char* domain_name(int d) {
    static const char* names[] = {"facts", "stories", "arithmetic", "code", "dialogue", "user"};
    return d >= 0 && d < dom_count ? names[d] : "?";
}

namespace {

int uniform(std::mt19937& rng, int lo, int hi) {  // inclusive; independent of the library's distributions
    return lo + (int)(rng() % (unsigned)(hi - lo + 1));
}

// One line of text as a document: a trailing CR dropped, a blank line skipped.
void add_line(std::vector<Document>& out, std::string& line, uint8_t domain) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") != std::string::npos) out.push_back({line, domain});
}

void add_lines(std::vector<Document>& out, const std::string& text, uint8_t domain) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) add_line(out, line, domain);
}

// Checks UTF-8 well-formedness; returns the 1-based line of the first bad byte, or 0.
int bad_utf8_line(const std::string& s) {
    int line = 1;
    for (size_t i = 0; i < s.size();) {
        unsigned char c = s[i];
        if (c == '\n') line++;
        int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > s.size()) return line;
        for (int k = 1; k < n; k++)
            if (((unsigned char)s[i + k] >> 6) != 2) return line;
        i += n;
    }
    return 0;
}

}  // namespace

std::string corpus_gen_arithmetic(std::mt19937& rng) {
    std::string doc;
    const int n = uniform(rng, 3, 5);
    for (int e = 0; e < n; e++) {
        int kind = uniform(rng, 0, 2);
        int a, b, r;
        char op;
        if (kind == 0) { a = uniform(rng, 0, 99); b = uniform(rng, 0, 99); r = a + b; op = '+'; }
        else if (kind == 1) { a = uniform(rng, 0, 99); b = uniform(rng, 0, a); r = a - b; op = '-'; }
        else { a = uniform(rng, 0, 12); b = uniform(rng, 0, 12); r = a * b; op = '*'; }
        if (!doc.empty()) doc += ' ';
        doc += std::to_string(a) + " " + op + " " + std::to_string(b) + " = " + std::to_string(r) + ".";
    }
    return doc;
}

std::string corpus_gen_code(std::mt19937& rng) {
    static const char* vars[] = {"x", "y", "z", "count", "total", "size", "left", "right", "item", "score"};
    static const char* funcs[] = {"add", "scale", "clamp", "update", "check", "step"};
    static const char* cmp[] = {">", "<", "=="};
    auto v = [&] { return std::string(vars[uniform(rng, 0, 9)]); };
    auto num = [&] { return std::to_string(uniform(rng, 0, 20)); };
    std::string doc;
    const int n = uniform(rng, 3, 5);
    for (int l = 0; l < n; l++) {
        std::string line;
        std::string a = v(), b = v();
        switch (uniform(rng, 0, 5)) {
            case 0: line = "let " + a + " = " + num() + ";"; break;
            case 1: line = a + " = " + a + " + " + b + ";"; break;
            case 2: line = "if (" + a + " " + cmp[uniform(rng, 0, 2)] + " " + num() + ") { " + a + " = " + num() + "; }"; break;
            case 3: line = "for (i = 0; i < " + num() + "; i++) { " + a + " += i; }"; break;
            case 4: line = "fn " + std::string(funcs[uniform(rng, 0, 5)]) + "(" + a + ", " + b + ") { return " + a + " * " + b + "; }"; break;
            default: line = "print(" + a + ");"; break;
        }
        if (!doc.empty()) doc += ' ';
        doc += line;
    }
    return doc;
}

std::vector<Document> corpus_embedded(int synthetic_docs, unsigned seed) {
    std::vector<Document> docs;
    add_lines(docs, asset_text("corpus", "facts"), dom_facts);
    add_lines(docs, asset_text("corpus", "stories"), dom_stories);
    add_lines(docs, asset_text("corpus", "dialogue"), dom_dialogue);
    std::mt19937 rng(seed);
    for (int i = 0; i < synthetic_docs; i++) docs.push_back({corpus_gen_arithmetic(rng), dom_arithmetic});
    for (int i = 0; i < synthetic_docs; i++) docs.push_back({corpus_gen_code(rng), dom_code});
    return docs;
}

Status corpus_check_file(const std::string& path, size_t* bytes) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        return Status::error("corpus '" + path + "': cannot open the file (check the path, or use data.corpus=embedded)");
    // Only a regular file has an end and a size: /dev/zero never ends, and opening a FIFO waits
    // (forever) for a writer.
    if (!S_ISREG(st.st_mode)) {
        const char* what = S_ISDIR(st.st_mode) ? "a folder" : S_ISFIFO(st.st_mode) ? "a FIFO (named pipe)"
                           : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : S_ISSOCK(st.st_mode) ? "a socket" : "not a file";
        return Status::error("corpus '" + path + "': is " + what + ", not a text file; save the text to a file first " +
                             "(for a stream: head -c 100M SOURCE > corpus.txt) and give that");
    }
    if (bytes) *bytes = (size_t)st.st_size;
    return Status::ok();
}

namespace {

// A .txt file a line at a time, straight into documents: the text is held once (not also whole).
Status read_lines(const std::string& path, size_t bytes, std::vector<Document>& docs, const CorpusProgress& progress) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return Status::error("corpus '" + path + "': cannot open the file (check the path and its permissions)");
    std::string line;
    size_t done = 0, told = 0;
    for (int n = 1; std::getline(f, line); n++) {
        done += line.size() + 1;
        if (progress && (done - told) * 100 >= bytes) progress((double)done / std::max<size_t>(1, bytes)), told = done;
        if (bad_utf8_line(line))
            return Status::error("corpus '" + path + "': not valid UTF-8 at line " + std::to_string(n) + " (save the file as UTF-8)");
        add_line(docs, line, dom_user);
    }
    if (f.bad()) return Status::error("corpus '" + path + "': reading failed after " + std::to_string(done) + " bytes");
    return Status::ok();
}

}  // namespace

Result<std::vector<Document>> corpus_load_file(const std::string& path, const CorpusProgress& progress) {
    size_t bytes = 0;
    if (Status s = corpus_check_file(path, &bytes); !s) return s;
    std::vector<Document> docs;
    const bool is_json = path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0;
    if (!is_json) {
        if (Status s = read_lines(path, bytes, docs, progress); !s) return s;
        if (docs.empty()) return Status::error("corpus '" + path + "': no text found (the file is empty)");
        return docs;
    }
    std::ifstream f(path, std::ios::binary);
    if (!f) return Status::error("corpus '" + path + "': cannot open the file (check the path and its permissions)");
    std::string text(bytes, '\0');
    f.read(text.data(), (std::streamsize)bytes);
    text.resize((size_t)f.gcount());
    if (int line = bad_utf8_line(text))
        return Status::error("corpus '" + path + "': not valid UTF-8 at line " + std::to_string(line) +
                             " (save the file as UTF-8)");
    {
        auto j = nlohmann::json::parse(text, nullptr, false);
        if (j.is_discarded() || !j.is_array())
            return Status::error("corpus '" + path + "': expected a JSON array of strings (RustGPT format)");
        for (size_t i = 0; i < j.size(); i++) {
            if (!j[i].is_string())
                return Status::error("corpus '" + path + "': element " + std::to_string(i) + " is not a string");
            std::string s = j[i].get<std::string>();
            // RustGPT's data already ends documents with </s>; the loader adds its own.
            for (size_t p; (p = s.find("</s>")) != std::string::npos;) s.erase(p, 4);
            if (s.find_first_not_of(" \t\r\n") != std::string::npos) docs.push_back({s, dom_user});
        }
    }
    if (docs.empty()) return Status::error("corpus '" + path + "': no text found (the file is empty)");
    return docs;
}

TokenizerChoice tokenizer_choose(const DataConfig& d, size_t text_bytes) {
    constexpr size_t k_auto_bpe_bytes = 200 * 1000;
    constexpr int k_word_cap = 8000;
    const bool embedded = d.corpus == "embedded";
    const double mb = text_bytes / 1e6;
    char size[32];
    std::snprintf(size, sizeof size, mb >= 1 ? "%.1f MB" : "%.0f KB", mb >= 1 ? mb : text_bytes / 1e3);
    TokenizerChoice c;
    c.kind = d.tokenizer;
    if (c.kind == "auto") {
        c.kind = !embedded && text_bytes > k_auto_bpe_bytes ? "bpe" : "word";
        c.why = std::string("data.tokenizer auto: ") + (embedded ? "the embedded corpus" : std::string("the text is ") + size) +
                (c.kind == "bpe" ? " (over 200 KB: subwords)" : "");
    }
    if (c.kind == "word") {  // the embedded corpus is ours and small: never capped
        c.vocab_size = embedded ? 0 : d.vocab_size > 0 ? d.vocab_size : k_word_cap;
    } else {
        c.vocab_size = d.vocab_size > 0 ? d.vocab_size
                                        : std::clamp(1000 * (int)std::lround(2.0 * std::sqrt(mb)), 2000, 8000);
        if (d.vocab_size == 0)
            c.why += std::string(c.why.empty() ? "" : "; ") + "data.vocab_size 0: " + std::to_string(c.vocab_size) +
                     " pieces for " + size + " of text";
    }
    return c;
}

Result<Dataset> dataset_build(const DataConfig& d, const Tokenizer* given, const DataProgress& progress) {
    // What the estimate missed (an allocation the machine refuses) is a message too, never an abort.
    try {
        return dataset_build_unchecked(d, given, progress);
    } catch (const std::bad_alloc&) {
        return Status::error("corpus '" + d.corpus + "': out of memory while preparing it (" + memory_bytes_text(memory_available().bytes) +
                             " available); use a smaller file (head -c 200M FILE > smaller.txt) or close other programs");
    }
}

namespace {

// Up to this much of the training text trains the tokenizer: a random sample (the documents are
// shuffled) learns the same frequent words and pieces as the whole, in a fraction of the time and memory.
constexpr size_t k_tokenizer_sample_bytes = 64u << 20;

// Fixed split: shuffle once by corpus_seed, then the last val_fraction of each domain. Documents per domain.
std::vector<int> split_documents(std::vector<Document>& docs, const DataConfig& d, std::vector<Document*>& train_docs,
                                 std::vector<Document*>& val_docs) {
    std::mt19937 rng(d.corpus_seed);
    for (size_t i = docs.size(); i > 1; i--) std::swap(docs[i - 1], docs[rng() % i]);
    std::vector<int> per_domain(dom_count, 0), seen(dom_count, 0);
    for (const auto& doc : docs) per_domain[doc.domain]++;
    for (auto& doc : docs) {
        const int n = per_domain[doc.domain];
        const int n_val = n >= 2 ? std::max(1, (int)(n * d.val_fraction)) : 0;
        (seen[doc.domain]++ < n - n_val ? train_docs : val_docs).push_back(&doc);
    }
    return per_domain;
}

// The training and validation streams: each document's ids and an end token, in document order, its
// domain beside each id. A document's text is freed once it is encoded.
void encode_streams(Dataset& ds, const std::vector<Document*>& train_docs, const std::vector<Document*>& val_docs, size_t n_docs,
                    size_t train_bytes, size_t bytes, const DataProgress& progress) {
    auto say = [&](const std::string& stage, double fraction) {
        if (progress) progress(stage, fraction);
    };
    // The streams' size, from the tokens per byte of up to 1 MB of text: reserved once, so they are not
    // grown by doubling (which holds the old and the new copy at once).
    size_t probe_bytes = 0, probe_tokens = 0;
    for (const Document* doc : train_docs) {
        if (probe_bytes > (1u << 20)) break;
        probe_bytes += doc->text.size() + 1, probe_tokens += ds.tok.encode(doc->text).size() + 1;
    }
    const double per_byte = probe_bytes ? (double)probe_tokens / probe_bytes : 0.3;
    auto reserve = [&](TokenStream& s, size_t b) {
        const size_t n = (size_t)(per_byte * 1.05 * (double)b) + 1024;
        s.ids.reserve(n);
        s.domain.reserve(n);
    };
    reserve(ds.train, train_bytes + train_docs.size());
    reserve(ds.val, bytes - train_bytes + val_docs.size());
    // Encoding is most of the time for a word tokenizer and a fair part for subwords: told in steps of
    // about 1% of the bytes.
    size_t done = 0, told = 0;
    // Blocks of documents encoded on every thread (the tokenizers are read-only), then appended in
    // document order: the streams are the same as one thread makes, in half the time on two cores.
    // A block is at most 2048 documents and at most 1/200 of them (progress every ~0.5%). Texts under
    // 8 MiB are encoded on one thread: they take milliseconds, and idle OpenMP workers spinning after
    // each block would cost more than they save (the corpus fuzz target ran 10x slower).
    const size_t block = std::clamp<size_t>(n_docs / 200, 16, 2048);
    const bool wide = bytes > (8u << 20);
    std::vector<std::vector<int>> encoded(block);  // (block) one block's documents' ids
    auto fill = [&](TokenStream& s, const std::vector<Document*>& list) {
        for (size_t b = 0; b < list.size(); b += block) {
            const int n = (int)std::min(block, list.size() - b);
            parallel_for(n, wide, [&](int i) { encoded[i] = ds.tok.encode(list[b + i]->text); }, true);
            for (int i = 0; i < n; i++) {
                Document* doc = list[b + i];
                done += doc->text.size();
                std::vector<int>& ids = encoded[i];
                ids.push_back(ds.tok.eos_id());
                s.ids.insert(s.ids.end(), ids.begin(), ids.end());
                s.domain.insert(s.domain.end(), ids.size(), doc->domain);
                std::vector<int>().swap(ids);
                std::string().swap(doc->text);  // encoded: its text is not needed again
            }
            if (progress && (done - told) * 100 >= bytes) say("encoding the text", (double)done / std::max<size_t>(1, bytes)), told = done;
        }
    };
    say("encoding the text", 0);
    fill(ds.train, train_docs);
    fill(ds.val, val_docs);
    say("encoding the text", 1);
}

}  // namespace

Result<Dataset> dataset_build_unchecked(const DataConfig& d, const Tokenizer* given, const DataProgress& progress) {
    auto say = [&](const std::string& stage, double fraction) {
        if (progress) progress(stage, fraction);
    };
    std::vector<Document> docs;
    say("reading " + (d.corpus == "embedded" ? std::string("the embedded corpus") : d.corpus), -1);
    if (d.corpus == "embedded") {
        docs = corpus_embedded(d.synthetic_docs, d.corpus_seed);
    } else {
        // Refused up front when preparing it will not fit (before a byte is read).
        if (Status s = memory_check_prepare(d); !s) return s;
        const std::string stage = "reading " + d.corpus;
        auto r = corpus_load_file(d.corpus, [&](double f) { say(stage, f); });
        if (!r) return r.status;
        docs = std::move(*r);
    }
    std::vector<Document*> train_docs, val_docs;
    const std::vector<int> per_domain = split_documents(docs, d, train_docs, val_docs);
    if (train_docs.empty() || val_docs.empty())
        return Status::error("corpus: too small to split into training and validation (add more lines)");

    std::vector<std::string> texts;
    size_t bytes = 0, train_bytes = 0, sample_bytes = 0;
    for (const Document* doc : train_docs) {
        if (sample_bytes < k_tokenizer_sample_bytes) texts.push_back(doc->text), sample_bytes += doc->text.size();
        train_bytes += doc->text.size();
    }
    bytes = train_bytes;
    for (const Document* doc : val_docs) bytes += doc->text.size();
    const TokenizerChoice choice = tokenizer_choose(d, bytes);
    const TokenizerKind kind = choice.kind == "bpe" ? TokenizerKind::bpe
                               : choice.kind == "unigram" ? TokenizerKind::unigram : TokenizerKind::word;
    std::string cut;
    if (!given)
        say(str_printf("training the %s tokenizer (%s) on %.1f MB of text", choice.kind.c_str(),
                       choice.vocab_size ? (choice.kind == "word" ? "the " + std::to_string(choice.vocab_size) + " most frequent words"
                                                                  : std::to_string(choice.vocab_size) + " pieces").c_str()
                                         : "every word",
                       bytes / 1e6),
            -1);
    auto tok = given ? Result<Tokenizer>(*given) : Tokenizer::train(kind, texts, choice.vocab_size, &cut);
    if (!tok) return tok.status;
    Dataset ds{*tok, {}, {}, {}, {}};
    if (given)
        ds.tokenizer_note = std::string("tokenizer: the checkpoint's own (") + tokenizer_kind_name(given->kind()) +
                            ", vocabulary " + std::to_string(given->vocab_size()) + ")";
    else
        ds.tokenizer_note = "tokenizer: " + choice.kind + ", vocabulary " + std::to_string(tok->vocab_size()) +
                            (choice.why.empty() ? "" : " (" + choice.why + ")") + (cut.empty() ? "" : "; " + cut) +
                            (sample_bytes < train_bytes ? str_printf("; trained on a random %.0f MB of the %.0f MB of training text",
                                                                     sample_bytes / 1e6, train_bytes / 1e6)
                                                        : "");
    std::vector<std::string>().swap(texts);
    encode_streams(ds, train_docs, val_docs, docs.size(), train_bytes, bytes, progress);
    for (int k = 0; k < dom_count; k++)
        if (per_domain[k]) ds.domains_present.push_back(k);
    return ds;
}

void batch_sample(const TokenStream& s, int B, int T, std::mt19937_64& rng, int* tokens, int* targets,
                  uint8_t* domains) {
    const size_t span = s.ids.size() - T;  // windows [start, start+T], targets need one more token
    for (int b = 0; b < B; b++) {
        const size_t start = rng() % span;
        for (int t = 0; t < T; t++) {
            tokens[b * T + t] = s.ids[start + t];
            targets[b * T + t] = s.ids[start + t + 1];
            if (domains) domains[b * T + t] = s.domain[start + t];
        }
    }
}

void batch_fixed(const TokenStream& s, int B, int T, int k, int count, int* tokens, int* targets,
                 uint8_t* domains) {
    const size_t span = s.ids.size() - T;
    for (int b = 0; b < B; b++) {
        const size_t idx = (size_t)k * B + b, total = (size_t)count * B;
        const size_t start = span * idx / std::max<size_t>(total, 1);
        for (int t = 0; t < T; t++) {
            tokens[b * T + t] = s.ids[start + t];
            targets[b * T + t] = s.ids[start + t + 1];
            if (domains) domains[b * T + t] = s.domain[start + t];
        }
    }
}

}  // namespace rl
