// HfTokenizer (train/hf_tokenizer.h): reading tokenizer.json and tokenizer.model, and the
// encode/decode pipeline of Hugging Face's tokenizers library (tokenizers/src/tokenizer/mod.rs).
// The components themselves are in hf_tokenizer_text.cpp and hf_tokenizer_bpe.cpp.
// Sizes: n = bytes of the text, V = vocabulary entries, M = merges.
#include "train/hf_tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "train/hf_tokenizer_internal.h"

namespace rl {

using nlohmann::json;
using namespace hf;

namespace {

constexpr int k_max_json_depth = 64;      // Sequence nesting in real files is 2 or 3 deep
constexpr size_t k_cache_words = 10000;   // utils/cache.rs DEFAULT_CACHE_CAPACITY
constexpr size_t k_cache_word_bytes = 256;  // utils/cache.rs MAX_LENGTH

// The first problem found while reading a tokenizer.json; every reader returns false after fail().
struct Loader {
    std::string err;
    bool fail(const std::string& what) {
        if (err.empty()) err = what;
        return false;
    }
};

// A string from the file, quoted and escaped for a one-line message.
std::string shown(const std::string& s) { return json(s).dump(-1, ' ', false, json::error_handler_t::replace); }

const json* field(const json& j, const char* key) {  // null when absent or JSON null
    if (!j.is_object()) return nullptr;
    const auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
}

bool get_bool(Loader& L, const json& j, const char* key, const std::string& where, bool& out) {
    const json* v = field(j, key);
    if (!v) return true;  // keeps the default
    if (!v->is_boolean()) return L.fail(where + "." + key + " is not true or false");
    out = v->get<bool>();
    return true;
}

bool get_string(Loader& L, const json& j, const char* key, const std::string& where, std::string& out, bool required) {
    const json* v = field(j, key);
    if (!v) return required ? L.fail(where + " has no \"" + key + "\"") : true;
    if (!v->is_string()) return L.fail(where + "." + key + " is not a string");
    out = v->get<std::string>();
    return true;
}

bool get_int(Loader& L, const json& j, const char* key, const std::string& where, int& out) {
    const json* v = field(j, key);
    if (!v) return true;
    if (!v->is_number_integer() || v->get<int64_t>() < 0 || v->get<int64_t>() > (1 << 30))
        return L.fail(where + "." + key + " is not a non-negative integer");
    out = static_cast<int>(v->get<int64_t>());
    return true;
}

bool get_type(Loader& L, const json& j, const std::string& where, std::string& out) {
    if (!j.is_object()) return L.fail(where + " is not a JSON object");
    return get_string(L, j, "type", where, out, true);
}

// A {"String": s} or {"Regex": r} pattern (normalizers/replace.rs, pre_tokenizers/split.rs).
bool get_pattern(Loader& L, const json& j, const std::string& where, Regex& out) {
    const json* p = field(j, "pattern");
    const std::string w = where + ".pattern";
    if (!p || !p->is_object() || p->size() != 1) return L.fail(w + " is not {\"String\": ...} or {\"Regex\": ...}");
    const bool is_regex = p->contains("Regex");
    const json& v = is_regex ? p->at("Regex") : p->contains("String") ? p->at("String") : *p;
    if (!v.is_string()) return L.fail(w + " is not {\"String\": ...} or {\"Regex\": ...}");
    std::string why;
    if (!regex_make(out, v.get<std::string>(), is_regex, &why)) return L.fail(w + " " + v.dump(-1, ' ', false, json::error_handler_t::replace) + ": " + why);
    return true;
}

bool get_char(Loader& L, const json& j, const char* key, const std::string& where, std::string& out) {
    if (!get_string(L, j, key, where, out, true)) return false;
    if (out.empty() || !utf8_valid(out) || static_cast<size_t>(utf8_next(out, 0).second) != out.size())
        return L.fail(where + "." + key + " must be a single character");
    return true;
}

template <class T, class F>
bool read_children(Loader& L, const json& j, const char* key, const std::string& where, std::vector<T>& out, F read) {
    const json* arr = field(j, key);
    if (!arr || !arr->is_array()) return L.fail(where + "." + key + " is not a list");
    for (size_t i = 0; i < arr->size(); ++i) {
        out.emplace_back();
        if (!read(L, (*arr)[i], where + "." + key + "[" + std::to_string(i) + "]", out.back())) return false;
    }
    return true;
}

bool read_normalizer(Loader& L, const json& j, const std::string& where, Normalizer& n) {
    std::string type;
    if (!get_type(L, j, where, type)) return false;
    static const std::pair<const char*, NormKind> simple[] = {
        {"NFC", NormKind::nfc}, {"NFD", NormKind::nfd}, {"NFKC", NormKind::nfkc}, {"NFKD", NormKind::nfkd},
        {"Lowercase", NormKind::lowercase}, {"StripAccents", NormKind::strip_accents}};
    for (const auto& [name, kind] : simple)
        if (type == name) return n.kind = kind, true;
    if (type == "Sequence") return n.kind = NormKind::sequence, read_children(L, j, "normalizers", where, n.children, read_normalizer);
    if (type == "Prepend") return n.kind = NormKind::prepend, get_string(L, j, "prepend", where, n.text, true);
    if (type == "Replace")
        return n.kind = NormKind::replace, get_pattern(L, j, where, n.pattern) && get_string(L, j, "content", where, n.text, true);
    if (type == "Strip")
        return n.kind = NormKind::strip, get_bool(L, j, "strip_left", where, n.left) && get_bool(L, j, "strip_right", where, n.right);
    return L.fail(where + " has type " + shown(type) +
                  ", which RouteLab does not implement (it reads NFC, NFD, NFKC, NFKD, Lowercase, StripAccents, Prepend, "
                  "Replace, Strip and Sequence); use the model's tokenizer.model if it has one");
}

bool read_split_behavior(Loader& L, const json& j, const std::string& where, SplitBehavior& b) {
    std::string s;
    if (!get_string(L, j, "behavior", where, s, true)) return false;
    static const std::pair<const char*, SplitBehavior> names[] = {
        {"Removed", SplitBehavior::removed}, {"Isolated", SplitBehavior::isolated},
        {"MergedWithPrevious", SplitBehavior::merged_with_previous}, {"MergedWithNext", SplitBehavior::merged_with_next},
        {"Contiguous", SplitBehavior::contiguous}};
    for (const auto& [name, v] : names)
        if (s == name) return b = v, true;
    return L.fail(where + ".behavior " + shown(s) + " is not Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous");
}

bool read_prepend_scheme(Loader& L, const json& j, const std::string& where, PrependScheme& p) {
    std::string s = "always";  // metaspace.rs default_prepend_scheme_value
    if (!get_string(L, j, "prepend_scheme", where, s, false)) return false;
    bool add_prefix_space = true;  // the older form of the same setting
    if (!get_bool(L, j, "add_prefix_space", where, add_prefix_space)) return false;
    if (!add_prefix_space) s = "never";
    if (s == "first") p = PrependScheme::first;
    else if (s == "always") p = PrependScheme::always;
    else if (s == "never") p = PrependScheme::never;
    else return L.fail(where + ".prepend_scheme " + shown(s) + " is not first, always or never");
    return true;
}

bool read_pre_tokenizer(Loader& L, const json& j, const std::string& where, PreTokenizer& p) {
    std::string type, why;
    if (!get_type(L, j, where, type)) return false;
    if (type == "Sequence") return p.kind = PreKind::sequence, read_children(L, j, "pretokenizers", where, p.children, read_pre_tokenizer);
    if (type == "Split") {
        p.kind = PreKind::split;
        return get_pattern(L, j, where, p.pattern) && read_split_behavior(L, j, where, p.behavior) &&
               get_bool(L, j, "invert", where, p.invert);
    }
    if (type == "ByteLevel") {
        p.kind = PreKind::byte_level;
        p.add_prefix_space = true;  // byte_level.rs Default
        // byte_level.rs RE, the GPT-2 pattern.
        regex_make(p.pattern, R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)", true, &why);
        return get_bool(L, j, "add_prefix_space", where, p.add_prefix_space) && get_bool(L, j, "use_regex", where, p.use_regex);
    }
    if (type == "Metaspace") {
        p.kind = PreKind::metaspace;
        return get_char(L, j, "replacement", where, p.replacement) && read_prepend_scheme(L, j, where, p.prepend) &&
               get_bool(L, j, "split", where, p.split_words);
    }
    if (type == "Whitespace") return p.kind = PreKind::whitespace, regex_make(p.pattern, R"(\w+|[^\w\s]+)", true, &why);
    if (type == "WhitespaceSplit") return p.kind = PreKind::whitespace_split, true;
    if (type == "Digits") {
        p.kind = PreKind::digits;
        p.split_words = false;
        return get_bool(L, j, "individual_digits", where, p.split_words);
    }
    return L.fail(where + " has type " + shown(type) +
                  ", which RouteLab does not implement (it reads Split, ByteLevel, Metaspace, Whitespace, WhitespaceSplit, "
                  "Digits and Sequence)");
}

bool read_decoder(Loader& L, const json& j, const std::string& where, Decoder& d) {
    std::string type;
    if (!get_type(L, j, where, type)) return false;
    if (type == "Sequence") return d.kind = DecKind::sequence, read_children(L, j, "decoders", where, d.children, read_decoder);
    if (type == "ByteLevel") return d.kind = DecKind::byte_level, true;
    if (type == "ByteFallback") return d.kind = DecKind::byte_fallback, true;
    if (type == "Fuse") return d.kind = DecKind::fuse, true;
    if (type == "Metaspace")
        return d.kind = DecKind::metaspace, get_char(L, j, "replacement", where, d.text) && read_prepend_scheme(L, j, where, d.prepend);
    if (type == "Replace")
        return d.kind = DecKind::replace, get_pattern(L, j, where, d.pattern) && get_string(L, j, "content", where, d.text, true);
    if (type == "Strip") {
        d.kind = DecKind::strip;
        return get_char(L, j, "content", where, d.text) && get_int(L, j, "start", where, d.start) && get_int(L, j, "stop", where, d.stop);
    }
    return L.fail(where + " has type " + shown(type) +
                  ", which RouteLab does not implement (it reads ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip "
                  "and Sequence)");
}

// Ids beyond config_validate's largest vocabulary are refused: an id sizes tables (one entry of 2^30
// would allocate a billion strings) and reaches the model's embedding rows.
constexpr int64_t k_max_id = 1'000'000;

// The vocabulary and the merges (models/bpe/serialization.rs, model.rs BpeBuilder::build).
bool read_vocab(Loader& L, const json& model, Bpe& m) {
    const json* vocab = field(model, "vocab");
    if (!vocab || !vocab->is_object()) return L.fail("model.vocab is missing or not an object of token -> id");
    m.vocab.reserve(vocab->size());
    for (auto it = vocab->begin(); it != vocab->end(); ++it) {
        if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() >= k_max_id)
            return L.fail("model.vocab[" + shown(it.key()) + "] is not a non-negative integer id");
        const int id = static_cast<int>(it->get<int64_t>());
        m.vocab.emplace(it.key(), id);
        if (static_cast<size_t>(id) >= m.vocab_r.size()) m.vocab_r.resize(static_cast<size_t>(id) + 1);
        m.vocab_r[id] = it.key();
    }
    return true;
}

bool merge_parts(Loader& L, const json& e, size_t i, std::string& a, std::string& b) {
    const std::string where = "model.merges[" + std::to_string(i) + "]";
    if (e.is_string()) {  // "a b" (model.rs convert_merges_to_hashmap: exactly one space)
        const std::string s = e.get<std::string>();
        const size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
            return L.fail(where + " " + e.dump(-1, ' ', false, json::error_handler_t::replace) + " is not two tokens separated by one space");
        a = s.substr(0, sp), b = s.substr(sp + 1);
        return true;
    }
    if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        a = e[0].get<std::string>(), b = e[1].get<std::string>();
        return true;
    }
    return L.fail(where + " is neither \"a b\" nor [\"a\", \"b\"]");
}

bool read_merges(Loader& L, const json& model, Bpe& m) {
    const json* merges = field(model, "merges");
    if (!merges || !merges->is_array()) return L.fail("model.merges is missing or not a list");
    m.merges.reserve(merges->size());
    const size_t prefix_len = m.prefix ? m.prefix->size() : 0;
    std::string a, b;
    for (size_t i = 0; i < merges->size(); ++i) {
        if (!merge_parts(L, (*merges)[i], i, a, b)) return false;
        const auto ia = m.vocab.find(a), ib = m.vocab.find(b);
        // The merged token drops the right part's continuing_subword_prefix (model.rs build()).
        const std::string merged = a + (b.size() >= prefix_len ? b.substr(prefix_len) : b);
        const auto im = m.vocab.find(merged);
        const std::string& missing = ia == m.vocab.end() ? a : ib == m.vocab.end() ? b : merged;
        if (ia == m.vocab.end() || ib == m.vocab.end() || im == m.vocab.end())
            return L.fail("model.merges[" + std::to_string(i) + "] names " + shown(missing) +
                          ", which is not in model.vocab: the vocabulary and merges do not belong together");
        // A repeated pair keeps its last rank, as the library's HashMap collect does.
        m.merges[(uint64_t{static_cast<uint32_t>(ia->second)} << 32) | static_cast<uint32_t>(ib->second)] = {static_cast<int>(i), im->second};
    }
    return true;
}

bool read_model(Loader& L, const json& j, Bpe& m) {
    if (!j.is_object()) return L.fail("\"model\" is missing or not a JSON object");
    std::string type = "BPE";
    if (!get_string(L, j, "type", "model", type, false)) return false;
    if (type != "BPE")
        return L.fail("model type " + shown(type) + " is not supported (RouteLab reads BPE models); use the folder's "
                      "SentencePiece tokenizer.model if it has one");
    std::string unk;
    if (!get_string(L, j, "unk_token", "model", unk, false)) return false;
    if (field(j, "continuing_subword_prefix")) m.prefix.emplace();
    if (field(j, "end_of_word_suffix")) m.suffix.emplace();
    if (!read_vocab(L, j, m) || (m.prefix && !get_string(L, j, "continuing_subword_prefix", "model", *m.prefix, false)) ||
        (m.suffix && !get_string(L, j, "end_of_word_suffix", "model", *m.suffix, false)) ||
        !get_bool(L, j, "fuse_unk", "model", m.fuse_unk) || !get_bool(L, j, "byte_fallback", "model", m.byte_fallback) ||
        !get_bool(L, j, "ignore_merges", "model", m.ignore_merges) || !read_merges(L, j, m))
        return false;
    if (!unk.empty()) {
        const auto it = m.vocab.find(unk);
        if (it == m.vocab.end()) return L.fail("model.unk_token " + shown(unk) + " is not in model.vocab");
        m.unk_id = it->second;
    }
    char name[8];
    for (int b = 0; b < 256; ++b) {
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        const auto it = m.vocab.find(std::string_view(name));
        m.byte_ids[b] = it == m.vocab.end() ? -1 : it->second;
    }
    return true;
}

// added_tokens, with ids as AddedVocabulary::add_tokens gives them: a content the added tokens or
// the model already know keeps that id, any other takes the next id after the model's vocabulary.
bool read_added_tokens(Loader& L, const json& root, State& s) {
    const json* arr = field(root, "added_tokens");
    if (!arr) return true;
    if (!arr->is_array()) return L.fail("added_tokens is not a list");
    AddedVocab& v = s.added;
    int next_id = static_cast<int>(s.model.vocab.size());
    for (size_t i = 0; i < arr->size(); ++i) {
        const json& j = (*arr)[i];
        const std::string where = "added_tokens[" + std::to_string(i) + "]";
        AddedToken t;
        if (!j.is_object() || !get_string(L, j, "content", where, t.content, true) ||
            !get_bool(L, j, "special", where, t.special))
            return j.is_object() ? false : L.fail(where + " is not a JSON object");
        t.normalized = !t.special;  // AddedToken::from's default
        if (!get_bool(L, j, "single_word", where, t.single_word) || !get_bool(L, j, "lstrip", where, t.lstrip) ||
            !get_bool(L, j, "rstrip", where, t.rstrip) || !get_bool(L, j, "normalized", where, t.normalized))
            return false;
        if (t.content.empty()) continue;
        if (const auto it = v.by_content.find(t.content); it != v.by_content.end()) t.id = it->second;
        else if (const auto im = s.model.vocab.find(t.content); im != s.model.vocab.end()) t.id = im->second;
        else t.id = next_id++;
        t.normalized_content = t.normalized && s.normalizer ? normalize(*s.normalizer, t.content) : t.content;
        if (const auto it = v.by_id.find(t.id); it != v.by_id.end()) v.tokens[it->second] = t;
        else v.by_id[t.id] = static_cast<int>(v.tokens.size()), v.tokens.push_back(t);
        v.by_content[t.content] = t.id;
        if (t.special) v.special_contents.insert(t.content);
    }
    for (size_t i = 0; i < v.tokens.size(); ++i) {
        const AddedToken& t = v.tokens[i];
        if (t.normalized) trie_add(v.normalized, t.normalized_content, static_cast<int>(i));
        else trie_add(v.raw, t.content, static_cast<int>(i));
    }
    return true;
}

// The ids of a template's special token: processors/template.rs special_tokens map.
bool template_ids(Loader& L, const json& j, const std::string& where, const std::string& name, std::vector<int>& out) {
    const json* map = field(j, "special_tokens");
    const json* tok = map ? field(*map, name.c_str()) : nullptr;
    const json* ids = tok ? field(*tok, "ids") : nullptr;
    if (!ids || !ids->is_array()) return L.fail(where + " uses special token " + shown(name) + ", which its special_tokens do not define");
    for (const json& id : *ids) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= k_max_id)
            return L.fail(where + ".special_tokens[" + shown(name) + "].ids holds a value that is not an id");
        out.push_back(static_cast<int>(id.get<int64_t>()));
    }
    return true;
}

// TemplateProcessing's "single": pieces {"Sequence": {...}} / {"SpecialToken": {"id": ...}}, or
// the string form "[CLS] $A [SEP]".
bool read_template(Loader& L, const json& j, const std::string& where, std::vector<int>& out) {
    const json* single = field(j, "single");
    std::vector<std::pair<bool, std::string>> pieces;  // (is the sequence, special token name)
    if (single && single->is_string()) {
        std::istringstream in(single->get<std::string>());
        for (std::string w; in >> w;) {
            const size_t colon = w.rfind(':');  // "[CLS]:0", "$B:1": a type id, which ids do not need
            if (colon != std::string::npos && colon > 0 && colon + 1 < w.size() &&
                w.find_first_not_of("0123456789", colon + 1) == std::string::npos)
                w.resize(colon);
            pieces.emplace_back(w[0] == '$', w);
        }
    } else if (single && single->is_array()) {
        for (const json& p : *single) {
            const json* st = field(p, "SpecialToken");
            std::string name;
            if (field(p, "Sequence")) pieces.emplace_back(true, "");
            else if (st && get_string(L, *st, "id", where + ".single", name, true)) pieces.emplace_back(false, name);
            else return L.fail(where + ".single holds a piece that is neither Sequence nor SpecialToken");
        }
    } else {
        return L.fail(where + ".single is missing or not a list");
    }
    for (const auto& [is_seq, name] : pieces) {
        if (is_seq) out.push_back(-1);
        else if (!template_ids(L, j, where, name, out)) return false;
    }
    return true;
}

bool read_post_processor(Loader& L, const json& j, const std::string& where, PostProcessor& p) {
    std::string type;
    if (!get_type(L, j, where, type)) return false;
    if (type == "ByteLevel") return true;  // only trims offsets
    if (type == "Sequence") {
        const json* arr = field(j, "processors");
        if (!arr || !arr->is_array()) return L.fail(where + ".processors is not a list");
        for (size_t i = 0; i < arr->size(); ++i)
            if (!read_post_processor(L, (*arr)[i], where + ".processors[" + std::to_string(i) + "]", p)) return false;
        return true;
    }
    if (type == "TemplateProcessing") {
        std::vector<int> t;
        if (!read_template(L, j, where, t)) return false;
        p.steps.push_back(std::move(t));
        return true;
    }
    if (type == "RobertaProcessing" || type == "BertProcessing") {  // [cls] $A [sep]; each a [token, id] pair
        const json* cls = field(j, "cls");
        const json* sep = field(j, "sep");
        const auto id_of = [](const json* t) {
            return t && t->is_array() && t->size() == 2 && (*t)[1].is_number_integer() && (*t)[1].get<int64_t>() >= 0 &&
                   (*t)[1].get<int64_t>() < k_max_id;
        };
        if (!id_of(cls) || !id_of(sep)) return L.fail(where + ".cls and .sep must be [token, id] pairs");
        p.steps.push_back({static_cast<int>((*cls)[1].get<int64_t>()), -1, static_cast<int>((*sep)[1].get<int64_t>())});
        return true;
    }
    return L.fail(where + " has type " + shown(type) +
                  ", which RouteLab does not implement (it reads TemplateProcessing, ByteLevel, RobertaProcessing, "
                  "BertProcessing and Sequence)");
}

bool read_root(Loader& L, const json& root, State& s) {
    if (!root.is_object()) return L.fail("the file is not a JSON object; expected a Hugging Face tokenizer.json");
    std::string version = "1.0";
    if (!get_string(L, root, "version", "the file", version, false)) return false;
    if (version != "1.0") return L.fail("version " + shown(version) + " is not the tokenizer.json version 1.0 that RouteLab reads");
    if (const json* n = field(root, "normalizer")) {
        s.normalizer.emplace();
        if (!read_normalizer(L, *n, "normalizer", *s.normalizer)) return false;
    }
    if (const json* p = field(root, "pre_tokenizer")) {
        s.pre_tokenizer.emplace();
        if (!read_pre_tokenizer(L, *p, "pre_tokenizer", *s.pre_tokenizer)) return false;
    }
    if (const json* d = field(root, "decoder")) {
        s.decoder.emplace();
        if (!read_decoder(L, *d, "decoder", *s.decoder)) return false;
    }
    if (const json* p = field(root, "post_processor"))
        if (!read_post_processor(L, *p, "post_processor", s.post)) return false;
    const json* model = field(root, "model");
    if (!read_model(L, model ? *model : json(), s.model) || !read_added_tokens(L, root, s)) return false;
    s.vocab_size = static_cast<int>(s.model.vocab_r.size());
    for (const AddedToken& t : s.added.tokens) s.vocab_size = std::max(s.vocab_size, t.id + 1);
    for (const std::vector<int>& step : s.post.steps)  // the template's ids are ids the model must have too
        for (int id : step) s.vocab_size = std::max(s.vocab_size, id + 1);
    return true;
}

Status error(const std::string& path, const std::string& what) {
    std::string line = "tokenizer '" + path + "': " + what;
    std::replace_if(line.begin(), line.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');  // one line, whatever the file held
    return Status::error(line);
}

struct TooDeep {};

}  // namespace

Result<HfTokenizer> HfTokenizer::from_json(std::string_view text, const std::string& name) {
    auto s = std::make_shared<State>();
    s->path = name;
    Loader L;
    try {
        const json root = json::parse(text.begin(), text.end(), [](int depth, json::parse_event_t, json&) {
            if (depth > k_max_json_depth) throw TooDeep{};
            return true;
        });
        if (!read_root(L, root, *s)) return error(name, L.err);
    } catch (const TooDeep&) {
        return error(name, "the JSON is nested more than " + std::to_string(k_max_json_depth) + " levels deep; this is not a tokenizer.json");
    } catch (const json::parse_error& e) {
        return error(name, "is not valid JSON (byte " + std::to_string(e.byte) +
                               (e.byte >= text.size() ? ": it ends early" : "") + "); the file may be truncated: download it again");
    } catch (const std::exception& e) {  // a value of the wrong type the readers did not check, or memory
        return error(name, std::string("cannot be read (") + e.what() + "); download the file again");
    }
    return HfTokenizer(std::shared_ptr<const State>(std::move(s)));
}

Result<HfTokenizer> HfTokenizer::load(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return error(path, "cannot be opened; check the path (a folder's tokenizer.json or tokenizer.model)");
    std::ostringstream buf;
    buf << f.rdbuf();
    const std::string text = buf.str();
    if (f.bad()) return error(path, "cannot be read; check the file");
    const size_t first = text.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && text[first] == '{') return from_json(text, path);
    if (text.empty()) return error(path, "is empty; download the tokenizer file again");
    auto sp = std::make_shared<sentencepiece::SentencePieceProcessor>();
    const auto st = sp->LoadFromSerializedProto(text);
    if (!st.ok())
        return error(path, "is neither a tokenizer.json (JSON) nor a SentencePiece model (" + st.ToString() +
                               "); download the tokenizer file again");
    auto s = std::make_shared<State>();
    s->path = path;
    s->vocab_size = sp->GetPieceSize();
    s->sp = std::move(sp);
    return HfTokenizer(std::shared_ptr<const State>(std::move(s)));
}

namespace {

// The model's ids for one word, through the shared word cache (BPE::tokenize_with_cache).
void model_word(const State& s, const std::string& word, std::vector<int>& out) {
    const bool cacheable = word.size() < k_cache_word_bytes;
    if (cacheable) {
        std::lock_guard<std::mutex> lock(s.cache.mu);
        if (const auto it = s.cache.words.find(word); it != s.cache.words.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    const size_t at = out.size();
    bpe_word(s.model, word, out);
    if (cacheable) {
        std::lock_guard<std::mutex> lock(s.cache.mu);
        if (s.cache.words.size() < k_cache_words) s.cache.words.emplace(word, std::vector<int>(out.begin() + at, out.end()));
    }
}

}  // namespace

std::vector<int> HfTokenizer::encode(std::string_view text, bool add_special) const {
    std::vector<int> ids;
    if (!s_) return ids;
    const State& s = *s_;
    if (s.sp) {
        s.sp->Encode(std::string(text), &ids);
        if (add_special && s.sp->bos_id() >= 0) ids.insert(ids.begin(), s.sp->bos_id());
        return ids;
    }
    // The library only sees valid UTF-8 (a Rust &str); invalid bytes become U+FFFD first.
    const std::string valid = utf8_valid(text) ? std::string(text) : utf8_lossy(text);
    // AddedVocabulary::extract_and_normalize: raw added tokens, then the normalizer and the
    // normalized added tokens on each remaining piece.
    std::vector<Piece> pieces;
    for (Piece& p : added_split(s.added, s.added.raw, valid, true)) {
        if (p.added_id >= 0) {
            pieces.push_back(std::move(p));
            continue;
        }
        const std::string t = s.normalizer ? normalize(*s.normalizer, std::move(p.text)) : std::move(p.text);
        for (Piece& q : added_split(s.added, s.added.normalized, t, p.at_origin)) pieces.push_back(std::move(q));
    }
    if (s.pre_tokenizer) pre_tokenize(*s.pre_tokenizer, pieces);
    for (const Piece& p : pieces) {
        if (p.added_id >= 0) ids.push_back(p.added_id);
        else model_word(s, p.text, ids);
    }
    return add_special ? post_process(s.post, std::move(ids)) : ids;
}

std::string HfTokenizer::decode(const std::vector<int>& ids, bool skip_special) const {
    std::string out;
    if (!s_) return out;
    const State& s = *s_;
    if (s.sp) {
        std::vector<int> valid;
        for (int id : ids)
            if (id >= 0 && id < s.vocab_size) valid.push_back(id);
        s.sp->Decode(valid, &out);
        return out;
    }
    // TokenizerImpl::decode: added tokens as their (normalized) content, the rest from the model;
    // ids neither knows are dropped.
    std::vector<std::string> tokens;
    for (int id : ids) {
        std::string t;
        if (const auto it = s.added.by_id.find(id); it != s.added.by_id.end()) t = s.added.tokens[it->second].normalized_content;
        else if (id >= 0 && static_cast<size_t>(id) < s.model.vocab_r.size()) t = s.model.vocab_r[id];
        if (t.empty() || (skip_special && s.added.special_contents.count(t))) continue;
        tokens.push_back(std::move(t));
    }
    if (!s.decoder) {
        for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
        return out;
    }
    for (const std::string& t : decode_chain(*s.decoder, std::move(tokens))) out += t;
    return out;
}

std::string HfTokenizer::token_text(int id) const {
    if (!s_ || id < 0 || id >= s_->vocab_size) return "";
    if (s_->sp) return s_->sp->IdToPiece(id);
    if (const auto it = s_->added.by_id.find(id); it != s_->added.by_id.end()) return s_->added.tokens[it->second].content;
    return static_cast<size_t>(id) < s_->model.vocab_r.size() ? s_->model.vocab_r[id] : "";
}

int HfTokenizer::vocab_size() const { return s_ ? s_->vocab_size : 0; }

std::optional<int> HfTokenizer::token_id(std::string_view piece) const {
    if (!s_) return std::nullopt;
    if (s_->sp) {
        const int id = s_->sp->PieceToId(std::string(piece));
        return s_->sp->IdToPiece(id) == piece ? std::optional<int>(id) : std::nullopt;
    }
    if (const auto it = s_->added.by_content.find(piece); it != s_->added.by_content.end()) return it->second;
    if (const auto it = s_->model.vocab.find(piece); it != s_->model.vocab.end()) return it->second;
    return std::nullopt;
}

bool HfTokenizer::is_special(int id) const {
    if (!s_ || id < 0 || id >= s_->vocab_size) return false;
    if (s_->sp) return s_->sp->IsControl(id);
    const auto it = s_->added.by_id.find(id);
    return it != s_->added.by_id.end() && s_->added.tokens[it->second].special;
}

}  // namespace rl
