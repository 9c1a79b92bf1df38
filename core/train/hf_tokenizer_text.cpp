// HfTokenizer's text machinery: UTF-8, regexes (ICU), normalizers, pre-tokenizers and decoders,
// each following the tokenizers library's Rust source file named at it.
// Sizes: n = bytes of the text being processed.
#include "train/hf_tokenizer_internal.h"

#include <algorithm>
#include <cctype>
#include <string>

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/regex.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/utext.h>

namespace rl::hf {

// ---------------------------------------------------------------- UTF-8

std::pair<char32_t, int> utf8_next(std::string_view s, size_t i) {
    const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = b(i);
    if (c < 0x80) return {c, 1};
    int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (len == 0 || i + len > s.size()) return {0xFFFD, 1};
    char32_t cp = c & (0x7F >> len);
    for (int k = 1; k < len; ++k) {
        if ((b(i + k) & 0xC0) != 0x80) return {0xFFFD, 1};
        cp = (cp << 6) | (b(i + k) & 0x3F);
    }
    return {cp, len};
}

void utf8_append(std::string& out, char32_t c) {
    if (c < 0x80) {
        out += static_cast<char>(c);
    } else if (c < 0x800) {
        out += static_cast<char>(0xC0 | (c >> 6));
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        out += static_cast<char>(0xE0 | (c >> 12));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (c >> 18));
        out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    }
}

bool is_white_space(char32_t c) { return u_isUWhiteSpace(static_cast<UChar32>(c)); }

namespace {

// Length of the valid UTF-8 sequence at s[i], or minus the length of its maximal invalid prefix
// (at least 1): the Unicode "maximal subpart" rule that Rust's from_utf8_lossy follows.
int utf8_sequence(std::string_view s, size_t i) {
    const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = b(i);
    if (c < 0x80) return 1;
    int len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else return -1;
    for (int k = 1; k < len; ++k) {
        if (i + k >= s.size()) return -k;
        const unsigned char x = b(i + k);
        if (k == 1 ? (x < lo || x > hi) : (x & 0xC0) != 0x80) return -k;
    }
    return len;
}

}  // namespace

std::string utf8_lossy(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    for (size_t i = 0; i < bytes.size();) {
        const int n = utf8_sequence(bytes, i);
        if (n > 0) {
            out.append(bytes.substr(i, n));
            i += n;
        } else {
            out += "\xEF\xBF\xBD";  // U+FFFD
            i += -n;
        }
    }
    return out;
}

bool utf8_valid(std::string_view bytes) {
    for (size_t i = 0; i < bytes.size();) {
        const int n = utf8_sequence(bytes, i);
        if (n < 0) return false;
        i += n;
    }
    return true;
}

// ---------------------------------------------------------------- regexes

namespace {

std::vector<std::pair<size_t, size_t>> find_literal(const std::string& lit, std::string_view text) {
    std::vector<std::pair<size_t, size_t>> found;
    for (size_t at = text.find(lit); at != std::string_view::npos; at = text.find(lit, at + lit.size()))
        found.emplace_back(at, at + lit.size());
    return found;
}

std::vector<std::pair<size_t, size_t>> find_regex(const icu::RegexPattern& re, std::string_view text) {
    std::vector<std::pair<size_t, size_t>> found;
    UErrorCode st = U_ZERO_ERROR;
    UText ut = UTEXT_INITIALIZER;
    utext_openUTF8(&ut, text.data(), static_cast<int64_t>(text.size()), &st);
    std::unique_ptr<icu::RegexMatcher> m(re.matcher(st));
    if (U_SUCCESS(st) && m) {
        m->reset(&ut);
        // Indices into a UTF-8 UText are byte offsets (ICU's "native" indices).
        while (m->find(st) && U_SUCCESS(st))
            found.emplace_back(static_cast<size_t>(m->start64(st)), static_cast<size_t>(m->end64(st)));
    }
    m.reset();
    utext_close(&ut);
    return found;
}

}  // namespace

bool regex_make(Regex& out, const std::string& pattern, bool is_regex, std::string* err) {
    out = Regex{};
    if (!is_regex) {
        out.literal = pattern;
        return true;
    }
    UErrorCode st = U_ZERO_ERROR;
    UParseError pe{};
    const icu::UnicodeString up = icu::UnicodeString::fromUTF8(pattern);
    // Oniguruma's Ruby syntax: ^ and $ are line anchors and only \n ends a line.
    std::shared_ptr<const icu::RegexPattern> re(icu::RegexPattern::compile(up, UREGEX_MULTILINE | UREGEX_UNIX_LINES, pe, st));
    if (U_FAILURE(st) || !re) {
        *err = std::string("ICU cannot compile it (") + u_errorName(st) + " at offset " + std::to_string(pe.offset) + ")";
        return false;
    }
    out.pattern = std::move(re);
    return true;
}

// tokenizer/pattern.rs: matches and the gaps between them, covering the text.
std::vector<Range> regex_find(const Regex& re, std::string_view text) {
    if (text.empty()) return {{0, 0, false}};
    if (!re.pattern && re.literal.empty()) return {{0, text.size(), false}};
    const auto found = re.pattern ? find_regex(*re.pattern, text) : find_literal(re.literal, text);
    std::vector<Range> out;
    size_t prev = 0;
    for (const auto& [b, e] : found) {
        if (prev != b) out.push_back({prev, b, false});
        out.push_back({b, e, true});
        prev = e;
    }
    if (prev != text.size()) out.push_back({prev, text.size(), false});
    return out;
}

// ---------------------------------------------------------------- normalizers

namespace {

std::string icu_normalize(const std::string& s, NormKind k) {
    UErrorCode st = U_ZERO_ERROR;
    const icu::Normalizer2* n = k == NormKind::nfc    ? icu::Normalizer2::getNFCInstance(st)
                                : k == NormKind::nfd  ? icu::Normalizer2::getNFDInstance(st)
                                : k == NormKind::nfkc ? icu::Normalizer2::getNFKCInstance(st)
                                                      : icu::Normalizer2::getNFKDInstance(st);
    if (U_FAILURE(st)) return s;
    const icu::UnicodeString out = n->normalize(icu::UnicodeString::fromUTF8(s), st);
    std::string r;
    if (U_SUCCESS(st)) out.toUTF8String(r);
    return U_SUCCESS(st) ? r : s;
}

// normalizer.rs lowercase(): char by char, full mappings (İ -> i̇), no context (Σ -> σ).
std::string lowercase(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size();) {
        const auto [c, len] = utf8_next(s, i);
        i += len;
        if (c < 0x80) {
            out += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
            continue;
        }
        icu::UnicodeString u(static_cast<UChar32>(c));
        u.toLower(icu::Locale::getRoot());
        u.toUTF8String(out);
    }
    return out;
}

std::string replace_all(const Regex& re, const std::string& content, std::string_view s) {
    std::string out;
    for (const Range& r : regex_find(re, s)) {
        if (r.is_match) out += content;
        else out.append(s.substr(r.begin, r.end - r.begin));
    }
    return out;
}

std::string strip(const std::string& s, bool left, bool right) {
    size_t b = 0, e = s.size();
    while (left && b < e) {
        const auto [c, len] = utf8_next(s, b);
        if (!is_white_space(c)) break;
        b += len;
    }
    while (right && e > b) {
        size_t p = e - 1;
        while (p > b && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
        if (!is_white_space(utf8_next(s, p).first)) break;
        e = p;
    }
    return s.substr(b, e - b);
}

// normalizers/strip.rs StripAccents: drops combining marks (general category M).
std::string strip_accents(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size();) {
        const auto [c, len] = utf8_next(s, i);
        const int8_t t = u_charType(static_cast<UChar32>(c));
        if (t != U_NON_SPACING_MARK && t != U_ENCLOSING_MARK && t != U_COMBINING_SPACING_MARK)
            out.append(s, i, len);
        i += len;
    }
    return out;
}

}  // namespace

std::string normalize(const Normalizer& n, std::string s) {
    switch (n.kind) {
        case NormKind::nfc:
        case NormKind::nfd:
        case NormKind::nfkc:
        case NormKind::nfkd: return icu_normalize(s, n.kind);
        case NormKind::lowercase: return lowercase(s);
        case NormKind::prepend: return s.empty() ? s : n.text + s;  // normalizers/prepend.rs: not on empty text
        case NormKind::replace: return replace_all(n.pattern, n.text, s);
        case NormKind::strip: return strip(s, n.left, n.right);
        case NormKind::strip_accents: return strip_accents(s);
        case NormKind::sequence:
            for (const Normalizer& c : n.children) s = normalize(c, std::move(s));
            return s;
    }
    return s;
}

// ---------------------------------------------------------------- pre-tokenizers

// NormalizedString::split (tokenizer/normalizer.rs): what each behaviour keeps of the ranges.
std::vector<std::pair<size_t, size_t>> split_ranges(std::vector<Range> m, SplitBehavior b) {
    std::vector<Range> acc;
    bool prev_match = false;
    if (b == SplitBehavior::merged_with_next) {
        for (auto it = m.rbegin(); it != m.rend(); ++it) {
            if (it->is_match && !prev_match && !acc.empty()) acc.back().begin = it->begin;
            else acc.push_back({it->begin, it->end, false});
            prev_match = it->is_match;
        }
        std::reverse(acc.begin(), acc.end());
    } else if (b == SplitBehavior::merged_with_previous || b == SplitBehavior::contiguous) {
        for (const Range& r : m) {
            const bool merge = b == SplitBehavior::contiguous ? r.is_match == prev_match : r.is_match && !prev_match;
            if (merge && !acc.empty()) acc.back().end = r.end;
            else acc.push_back({r.begin, r.end, false});
            prev_match = r.is_match;
        }
    } else {
        for (const Range& r : m) acc.push_back({r.begin, r.end, b == SplitBehavior::removed && r.is_match});
    }
    std::vector<std::pair<size_t, size_t>> out;
    for (const Range& r : acc)
        if (!r.is_match) out.emplace_back(r.begin, r.end);
    return out;
}

const std::vector<std::string>& byte_level_chars() {
    // pre_tokenizers/byte_level.rs bytes_char: printable bytes map to themselves, the others to
    // 256 + n in byte order.
    static const std::vector<std::string> table = [] {
        std::vector<std::string> t(256);
        int n = 0;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            utf8_append(t[b], printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++));
        }
        return t;
    }();
    return table;
}

namespace {

// Pattern for a char predicate (tokenizer/pattern.rs): each matching char is its own match.
template <class F>
std::vector<Range> find_chars(std::string_view s, F is_match) {
    if (s.empty()) return {{0, 0, false}};
    std::vector<Range> out;
    size_t last = 0;
    for (size_t i = 0; i < s.size();) {
        const auto [c, len] = utf8_next(s, i);
        if (is_match(c)) {
            if (last < i) out.push_back({last, i, false});
            out.push_back({i, i + len, true});
            last = i + len;
        }
        i += len;
    }
    if (last < s.size()) out.push_back({last, s.size(), false});
    return out;
}

// Cuts `text` at `ranges`; `origin` tells whether text starts at byte 0 of the original.
void emit(std::vector<Piece>& out, const std::string& text, const std::vector<std::pair<size_t, size_t>>& ranges,
          bool origin) {
    for (const auto& [b, e] : ranges)
        if (e > b) out.push_back({text.substr(b, e - b), -1, origin && b == 0});
}

std::string byte_level_map(std::string_view s) {
    const auto& table = byte_level_chars();
    std::string out;
    out.reserve(s.size() * 2);
    for (unsigned char c : s) out += table[c];
    return out;
}

void pre_tokenize_one(const PreTokenizer& p, const Piece& in, std::vector<Piece>& out) {
    const std::string& s = in.text;
    switch (p.kind) {
        case PreKind::split: {  // pre_tokenizers/split.rs
            auto m = regex_find(p.pattern, s);
            if (p.invert)
                for (Range& r : m) r.is_match = !r.is_match;
            emit(out, s, split_ranges(std::move(m), p.behavior), in.at_origin);
            return;
        }
        case PreKind::byte_level: {  // pre_tokenizers/byte_level.rs: prefix space, GPT-2 regex, byte map
            const std::string t = p.add_prefix_space && (s.empty() || s[0] != ' ') ? " " + s : s;
            std::vector<Piece> words;
            if (p.use_regex) emit(words, t, split_ranges(regex_find(p.pattern, t), SplitBehavior::isolated), in.at_origin);
            else if (!t.empty()) words.push_back({t, -1, in.at_origin});
            for (Piece& w : words) out.push_back({byte_level_map(w.text), -1, w.at_origin});
            return;
        }
        case PreKind::metaspace: {  // pre_tokenizers/metaspace.rs
            std::string t;
            t.reserve(s.size() + 8);
            for (char c : s) {
                if (c == ' ') t += p.replacement;
                else t += c;
            }
            const bool starts = t.compare(0, p.replacement.size(), p.replacement) == 0;
            if (!starts && (p.prepend == PrependScheme::always || (p.prepend == PrependScheme::first && in.at_origin)))
                t = p.replacement + t;
            if (!p.split_words) {
                if (!t.empty()) out.push_back({t, -1, in.at_origin});
                return;
            }
            const char32_t rep = utf8_next(p.replacement, 0).first;
            emit(out, t, split_ranges(find_chars(t, [&](char32_t c) { return c == rep; }), SplitBehavior::merged_with_next),
                 in.at_origin);
            return;
        }
        case PreKind::whitespace: {  // pre_tokenizers/whitespace.rs: keeps \w+|[^\w\s]+
            auto m = regex_find(p.pattern, s);
            for (Range& r : m) r.is_match = !r.is_match;
            emit(out, s, split_ranges(std::move(m), SplitBehavior::removed), in.at_origin);
            return;
        }
        case PreKind::whitespace_split:
            emit(out, s, split_ranges(find_chars(s, is_white_space), SplitBehavior::removed), in.at_origin);
            return;
        case PreKind::digits: {  // pre_tokenizers/digits.rs: char::is_numeric is \p{N}
            const auto numeric = [](char32_t c) {
                const int8_t t = u_charType(static_cast<UChar32>(c));
                return t == U_DECIMAL_DIGIT_NUMBER || t == U_LETTER_NUMBER || t == U_OTHER_NUMBER;
            };
            emit(out, s, split_ranges(find_chars(s, numeric), p.split_words ? SplitBehavior::isolated : SplitBehavior::contiguous),
                 in.at_origin);
            return;
        }
        case PreKind::sequence: out.push_back(in); return;  // handled by pre_tokenize
    }
}

}  // namespace

void pre_tokenize(const PreTokenizer& p, std::vector<Piece>& pieces) {
    if (p.kind == PreKind::sequence) {
        for (const PreTokenizer& c : p.children) pre_tokenize(c, pieces);
        return;
    }
    std::vector<Piece> out;
    out.reserve(pieces.size());
    for (Piece& in : pieces) {
        if (in.added_id >= 0) out.push_back(std::move(in));  // added tokens are not split further
        else pre_tokenize_one(p, in, out);
    }
    pieces = std::move(out);
}

// ---------------------------------------------------------------- decoders

namespace {

// decoders/byte_fallback.rs: runs of <0xXX> pieces become their bytes, or one U+FFFD per byte
// when the run is not valid UTF-8.
std::vector<std::string> byte_fallback(std::vector<std::string> tokens) {
    std::vector<std::string> out;
    std::string bytes;
    int n_bytes = 0;
    const auto flush = [&] {
        if (n_bytes == 0) return;
        if (utf8_valid(bytes)) out.push_back(bytes);
        else
            for (int i = 0; i < n_bytes; ++i) out.push_back("\xEF\xBF\xBD");
        bytes.clear();
        n_bytes = 0;
    };
    for (std::string& t : tokens) {
        const bool is_byte = t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' &&
                             std::isxdigit(static_cast<unsigned char>(t[3])) && std::isxdigit(static_cast<unsigned char>(t[4]));
        if (is_byte) {
            bytes += static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16));
            ++n_bytes;
        } else {
            flush();
            out.push_back(std::move(t));
        }
    }
    flush();
    return out;
}

// pre_tokenizers/byte_level.rs (Decoder): every piece back to its bytes (a piece with a char
// outside the table, an added token, stays as it is), then lossy UTF-8 over the whole.
std::vector<std::string> byte_level_decode(const std::vector<std::string>& tokens) {
    static const std::unordered_map<char32_t, unsigned char> to_byte = [] {
        std::unordered_map<char32_t, unsigned char> m;
        for (int b = 0; b < 256; ++b) m[utf8_next(byte_level_chars()[b], 0).first] = static_cast<unsigned char>(b);
        return m;
    }();
    std::string bytes;
    for (const std::string& t : tokens) {
        std::string mapped;
        bool ok = true;
        for (size_t i = 0; i < t.size() && ok;) {
            const auto [c, len] = utf8_next(t, i);
            const auto it = to_byte.find(c);
            ok = it != to_byte.end();
            if (ok) mapped += static_cast<char>(it->second);
            i += len;
        }
        bytes += ok ? mapped : t;
    }
    return {utf8_lossy(bytes)};
}

// decoders/strip.rs: up to `start` leading and `stop` trailing `content` chars off each piece.
std::string strip_chars(const std::string& t, char32_t content, int start, int stop) {
    std::vector<std::pair<size_t, size_t>> chars;  // (byte offset, length)
    for (size_t i = 0; i < t.size();) {
        const int len = utf8_next(t, i).second;
        chars.emplace_back(i, len);
        i += len;
    }
    size_t b = 0, e = chars.size();
    for (size_t i = 0; i < chars.size() && i < static_cast<size_t>(start); ++i) {
        if (utf8_next(t, chars[i].first).first != content) break;
        b = i + 1;
    }
    for (size_t i = 0; i < static_cast<size_t>(stop) && i < chars.size(); ++i) {
        const size_t idx = chars.size() - i - 1;
        if (utf8_next(t, chars[idx].first).first != content) break;
        e = idx;
    }
    if (b >= e) return "";
    return t.substr(chars[b].first, chars[e - 1].first + chars[e - 1].second - chars[b].first);
}

std::vector<std::string> metaspace_decode(const Decoder& d, const std::vector<std::string>& tokens) {
    // pre_tokenizers/metaspace.rs (Decoder): the replacement becomes a space, except in the first
    // piece when a prefix was prepended.
    std::vector<std::string> out;
    for (size_t i = 0; i < tokens.size(); ++i) {
        std::string s;
        size_t at = 0;
        for (size_t f = tokens[i].find(d.text); f != std::string::npos; f = tokens[i].find(d.text, at)) {
            s.append(tokens[i], at, f - at);
            if (!(i == 0 && d.prepend != PrependScheme::never)) s += ' ';
            at = f + d.text.size();
        }
        s.append(tokens[i], at, std::string::npos);
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace

std::vector<std::string> decode_chain(const Decoder& d, std::vector<std::string> tokens) {
    switch (d.kind) {
        case DecKind::byte_level: return byte_level_decode(tokens);
        case DecKind::metaspace: return metaspace_decode(d, tokens);
        case DecKind::replace:  // normalizers/replace.rs (Decoder)
            for (std::string& t : tokens) t = replace_all(d.pattern, d.text, t);
            return tokens;
        case DecKind::byte_fallback: return byte_fallback(std::move(tokens));
        case DecKind::fuse: {  // decoders/fuse.rs
            std::string all;
            for (const std::string& t : tokens) all += t;
            return {all};
        }
        case DecKind::strip:
            for (std::string& t : tokens) t = strip_chars(t, utf8_next(d.text, 0).first, d.start, d.stop);
            return tokens;
        case DecKind::sequence:
            for (const Decoder& c : d.children) tokens = decode_chain(c, std::move(tokens));
            return tokens;
    }
    return tokens;
}

}  // namespace rl::hf
