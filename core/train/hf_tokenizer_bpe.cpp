// HfTokenizer's model and token bookkeeping: BPE (tokenizers/src/models/bpe/model.rs and
// word.rs), the added-token matcher (tokenizer/added_vocabulary.rs) and the post-processor
// (processors/template.rs, bert.rs, roberta.rs, sequence.rs).
// Sizes: n = bytes of a word, S = its symbols (characters before merging).
#include "train/hf_tokenizer_internal.h"

#include <algorithm>
#include <queue>

#include <unicode/uchar.h>

namespace rl::hf {

namespace {

struct Symbol {
    int id;
    int prev, next;  // neighbours in the word, -1 at the ends
    int len;         // bytes; 0 once merged into its left neighbour
};

void add_symbol(std::vector<Symbol>& w, int id, int len) {
    const int n = static_cast<int>(w.size());
    if (n > 0) w.back().next = n;
    w.push_back({id, n - 1, -1, len});
}

uint64_t pair_key(int a, int b) { return (uint64_t{static_cast<uint32_t>(a)} << 32) | static_cast<uint32_t>(b); }

// BPE::merge_word: one symbol per character (continuing_subword_prefix on all but the first,
// end_of_word_suffix on the last); a character outside the vocabulary becomes its <0xXX> byte
// pieces with byte_fallback, else unk_token (consecutive ones fused with fuse_unk), else nothing.
std::vector<Symbol> initial_symbols(const Bpe& m, std::string_view w) {
    std::vector<Symbol> syms;
    syms.reserve(w.size());
    int unk_len = 0;  // > 0: an unk waiting to be added (as the library does, byte pieces do not flush it)
    std::string buf;
    for (size_t i = 0; i < w.size();) {
        const int len = utf8_next(w, i).second;
        std::string_view s = w.substr(i, len);
        const bool affix = (i > 0 && m.prefix) || (i + len >= w.size() && m.suffix);
        if (affix) {
            buf.assign(i > 0 && m.prefix ? *m.prefix : "");
            buf.append(s);
            if (i + len >= w.size() && m.suffix) buf += *m.suffix;
            s = buf;
        }
        i += len;
        if (const auto it = m.vocab.find(s); it != m.vocab.end()) {
            if (unk_len > 0) add_symbol(syms, m.unk_id, unk_len), unk_len = 0;
            add_symbol(syms, it->second, len);
            continue;
        }
        if (m.byte_fallback && std::all_of(s.begin(), s.end(), [&](char c) { return m.byte_ids[static_cast<unsigned char>(c)] >= 0; })) {
            for (char c : s) add_symbol(syms, m.byte_ids[static_cast<unsigned char>(c)], 1);
            continue;
        }
        if (m.unk_id < 0) continue;
        if (unk_len > 0 && !m.fuse_unk) add_symbol(syms, m.unk_id, unk_len), unk_len = 0;
        unk_len += len;
    }
    if (unk_len > 0) add_symbol(syms, m.unk_id, unk_len);
    return syms;
}

// Word::merge_all: the lowest-ranked pair first, the leftmost among equals, through a heap of
// candidates that are checked against the word when popped (stale ones are skipped).
void merge_all(const Bpe& m, std::vector<Symbol>& syms) {
    struct Cand {
        int rank, pos, new_id;
    };
    const auto later = [](const Cand& a, const Cand& b) { return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos; };
    std::priority_queue<Cand, std::vector<Cand>, decltype(later)> queue(later);
    const auto push = [&](int pos, int left, int right) {
        if (const auto it = m.merges.find(pair_key(left, right)); it != m.merges.end())
            queue.push({it->second.first, pos, it->second.second});
    };
    for (size_t i = 0; i + 1 < syms.size(); ++i) push(static_cast<int>(i), syms[i].id, syms[i + 1].id);
    while (!queue.empty()) {
        const Cand top = queue.top();
        queue.pop();
        Symbol& cur = syms[top.pos];
        if (cur.len == 0 || cur.next == -1) continue;
        const int next_pos = cur.next;
        const Symbol right = syms[next_pos];
        const auto it = m.merges.find(pair_key(cur.id, right.id));
        if (it == m.merges.end() || it->second.second != top.new_id) continue;
        cur.id = top.new_id;
        cur.len += right.len;
        cur.next = right.next;
        syms[next_pos].len = 0;
        if (right.next >= 0) syms[right.next].prev = top.pos;
        if (cur.prev >= 0) push(cur.prev, syms[cur.prev].id, cur.id);
        if (cur.next >= 0) push(top.pos, cur.id, syms[cur.next].id);
    }
}

}  // namespace

void bpe_word(const Bpe& m, std::string_view word, std::vector<int>& out) {
    if (word.empty()) return;
    if (m.ignore_merges) {  // BPE::tokenize_with_cache: a word already in the vocabulary is one token
        if (const auto it = m.vocab.find(word); it != m.vocab.end()) {
            out.push_back(it->second);
            return;
        }
    }
    std::vector<Symbol> syms = initial_symbols(m, word);
    merge_all(m, syms);
    for (const Symbol& s : syms)
        if (s.len != 0) out.push_back(s.id);
}

// ---------------------------------------------------------------- added tokens

void trie_add(Trie& t, std::string_view key, int token) {
    int n = 0;
    for (unsigned char c : key) {
        const auto it = t.nodes[n].next.find(c);
        if (it != t.nodes[n].next.end()) {
            n = it->second;
            continue;
        }
        t.nodes.emplace_back();
        const int id = static_cast<int>(t.nodes.size()) - 1;
        t.nodes[n].next[c] = id;
        n = id;
    }
    t.nodes[n].token = token;
}

namespace {

struct Match {
    size_t begin, end;
    int token;
};

// Non-overlapping matches, leftmost first and the longest there (daachorse's LeftmostLongest).
std::vector<Match> trie_matches(const Trie& t, std::string_view s) {
    std::vector<Match> out;
    for (size_t i = 0; i < s.size();) {
        int n = 0, best = -1;
        size_t best_end = 0;
        for (size_t j = i; j < s.size(); ++j) {
            const auto it = t.nodes[n].next.find(static_cast<unsigned char>(s[j]));
            if (it == t.nodes[n].next.end()) break;
            n = it->second;
            if (t.nodes[n].token >= 0) best = t.nodes[n].token, best_end = j + 1;
        }
        if (best < 0) {
            ++i;
            continue;
        }
        out.push_back({i, best_end, best});
        i = best_end;
    }
    return out;
}

// The regex crate's Unicode \w: Alphabetic, marks, decimal digits, connector punctuation, joiners.
bool is_word_char(char32_t c) {
    const auto u = static_cast<UChar32>(c);
    const int8_t t = u_charType(u);
    return u_hasBinaryProperty(u, UCHAR_ALPHABETIC) || u_hasBinaryProperty(u, UCHAR_JOIN_CONTROL) ||
           t == U_NON_SPACING_MARK || t == U_ENCLOSING_MARK || t == U_COMBINING_SPACING_MARK ||
           t == U_DECIMAL_DIGIT_NUMBER || t == U_CONNECTOR_PUNCTUATION;
}

size_t char_start_before(std::string_view s, size_t e) {  // start of the character that ends at e
    size_t p = e - 1;
    while (p > 0 && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
    return p;
}

bool ends_with_word(std::string_view s) { return !s.empty() && is_word_char(utf8_next(s, char_start_before(s, s.size())).first); }
bool starts_with_word(std::string_view s) { return !s.empty() && is_word_char(utf8_next(s, 0).first); }

size_t trailing_space_start(std::string_view s) {  // `\s*$`
    size_t e = s.size();
    while (e > 0) {
        const size_t p = char_start_before(s, e);
        if (!is_white_space(utf8_next(s, p).first)) break;
        e = p;
    }
    return e;
}

size_t leading_space_len(std::string_view s) {  // `^\s*`
    size_t i = 0;
    while (i < s.size()) {
        const auto [c, len] = utf8_next(s, i);
        if (!is_white_space(c)) break;
        i += len;
    }
    return i;
}

}  // namespace

// AddedVocabulary::find_matches and split_with_indices.
std::vector<Piece> added_split(const AddedVocab& v, const Trie& t, std::string_view s, bool at_origin) {
    std::vector<Piece> out;
    const auto gap = [&](size_t b, size_t e) {
        if (e > b) out.push_back({std::string(s.substr(b, e - b)), -1, at_origin && b == 0});
    };
    size_t start_offset = 0;
    if (!t.empty()) {
        for (const Match& m : trie_matches(t, s)) {
            const AddedToken& tok = v.tokens[m.token];
            size_t b = m.begin, e = m.end;
            if (tok.single_word && ((b > 0 && ends_with_word(s.substr(0, b))) || (e < s.size() && starts_with_word(s.substr(e)))))
                continue;
            if (tok.lstrip) b = std::max(trailing_space_start(s.substr(0, b)), start_offset);
            if (tok.rstrip) e += leading_space_len(s.substr(e));
            e = std::max(e, b);
            gap(start_offset, b);
            out.push_back({std::string(s.substr(b, e - b)), tok.id, at_origin && b == 0});
            start_offset = e;
        }
    }
    gap(start_offset, s.size());
    return out;
}

// ---------------------------------------------------------------- post-processor

std::vector<int> post_process(const PostProcessor& p, std::vector<int> ids) {
    for (const std::vector<int>& tmpl : p.steps) {
        std::vector<int> next;
        next.reserve(ids.size() + tmpl.size());
        for (int x : tmpl) {
            if (x < 0) next.insert(next.end(), ids.begin(), ids.end());
            else next.push_back(x);
        }
        ids = std::move(next);
    }
    return ids;
}

}  // namespace rl::hf
