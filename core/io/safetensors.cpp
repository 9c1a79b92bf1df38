// Safetensors layout: u64 little-endian header length N, N bytes of JSON (space-padded to a multiple
// of 8), then the data section; header offsets are relative to the data section.
#include "io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <new>

#include <nlohmann/json.hpp>

#include "util/atomic_file.h"
#include "util/status.h"

namespace rl {
using json = nlohmann::json;

namespace {

// The data section is copied between float arrays and the file byte for byte.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");
static_assert(sizeof(float) == 4 && std::numeric_limits<float>::is_iec559, "F32 must be IEEE-754 binary32");

constexpr uint64_t k_max_header_bytes = 100'000'000;  // same cap as the reference implementation
// A valid header nests 3 deep (root, entry, array); the cap stops "[[[[..." from exhausting memory.
constexpr int k_max_json_depth = 8;
constexpr const char* k_not_checkpoint =
    "; the file is truncated or not a safetensors checkpoint; re-save it with routelab-cli train";
constexpr const char* k_corrupt = "; the checkpoint is corrupt; re-save it with routelab-cli train";

std::string prefix(const std::string& path) { return "checkpoint '" + path + "': "; }

// Escaped and quoted, so names from an untrusted file keep error messages on one line.
std::string quoted(const std::string& s) { return json(s).dump(-1, ' ', false, json::error_handler_t::replace); }

// Element count of `shape`; false on a negative dim or when 4 * count would overflow u64.
bool checked_numel(const std::vector<int64_t>& shape, uint64_t& numel) {
    constexpr uint64_t max_numel = std::numeric_limits<uint64_t>::max() / 4;
    numel = 1;
    for (int64_t d : shape) {
        if (d < 0) return false;
        const uint64_t u = static_cast<uint64_t>(d);
        if (u != 0 && numel > max_numel / u) return false;
        numel *= u;
    }
    return true;
}

std::string shape_text(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

// The 8-byte length prefix followed by the padded JSON header.
Result<std::string> build_head(const std::string& path, const std::vector<TensorView>& tensors,
                               const std::map<std::string, std::string>& metadata, std::vector<uint64_t>& numels) {
    json header = json::object();
    header["__metadata__"] = metadata;
    uint64_t offset = 0;
    for (const TensorView& t : tensors) {
        const std::string what = prefix(path) + "tensor " + quoted(t.name) + " ";
        if (t.name == "__metadata__") return Status::error(what + "uses the reserved name; rename it");
        if (header.contains(t.name)) return Status::error(what + "appears twice; tensor names must be unique");
        uint64_t numel = 0;
        if (!checked_numel(t.shape, numel))
            return Status::error(what + "has an invalid or too large shape " + shape_text(t.shape));
        if (numel > 0 && !t.data) return Status::error(what + "has no data");
        const uint64_t bytes = 4 * numel;
        if (bytes > std::numeric_limits<uint64_t>::max() - offset)
            return Status::error(prefix(path) + "the tensors are too large for one file");
        header[t.name] = {{"dtype", "F32"},
                          {"shape", t.shape},
                          {"data_offsets", json::array({offset, offset + bytes})}};
        offset += bytes;
        numels.push_back(numel);
    }
    std::string text;
    try {
        text = header.dump();
    } catch (const json::exception&) {
        return Status::error(prefix(path) + "a tensor name or metadata entry is not valid UTF-8; fix the name");
    }
    text.append((8 - text.size() % 8) % 8, ' ');
    std::string head(8, '\0');
    for (int i = 0; i < 8; ++i) head[i] = static_cast<char>((uint64_t{text.size()} >> (8 * i)) & 0xff);
    return head + text;
}

Status write_impl(const std::string& path, const std::vector<TensorView>& tensors,
                  const std::map<std::string, std::string>& metadata) {
    std::vector<uint64_t> numels;
    Result<std::string> head = build_head(path, tensors, metadata, numels);
    if (!head.is_ok()) return head.status;
    // Temporary file, fsync, rename: a crash or a full disk never replaces a good checkpoint with a partial one.
    Status s = atomic_file_write(path, [&](std::FILE* f) {
        std::fwrite(head->data(), 1, head->size(), f);
        for (size_t i = 0; i < tensors.size() && !std::ferror(f); ++i)
            if (numels[i] > 0) std::fwrite(tensors[i].data, sizeof(float), numels[i], f);
        return Status::ok();
    });
    if (!s) return Status::error("checkpoint not saved: " + s.msg);
    return Status::ok();
}

struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
};

struct TooDeep {};

using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

// Each tensor's byte range in the data section, for the coverage check and the read.
struct Span {
    uint64_t begin, end;
    std::string name;
    StoredTensor* tensor;
};

// Reading one file: every failure is "checkpoint '<path>': <what>".
struct Reader {
    std::string pre;
    Status fail(const std::string& what) const { return Status::error(pre + what); }
};

// A regular file that opens, and its size.
Status open_file(const Reader& r, const std::string& path, FilePtr& f, uint64_t& size) {
    std::error_code ec;
    const std::filesystem::file_status fs = std::filesystem::status(path, ec);
    if (fs.type() == std::filesystem::file_type::not_found)
        return r.fail("file not found; check the path, or train a model first with routelab-cli train");
    if (ec) return r.fail("cannot access the file (" + ec.message() + "); check the path and its permissions");
    if (!std::filesystem::is_regular_file(fs)) return r.fail("not a regular file; pass the path of a .safetensors file");
    f.reset(std::fopen(path.c_str(), "rb"));
    if (!f) return r.fail(std::string("cannot open the file (") + std::strerror(errno) + "); check its permissions");
    size = std::filesystem::file_size(path, ec);
    if (ec) return r.fail("cannot get the file size (" + ec.message() + "); check the path and its permissions");
    return Status::ok();
}

// The u64 length prefix and the JSON header it announces, parsed with a depth cap.
Status read_header(const Reader& r, std::FILE* f, uint64_t size, uint64_t& header_len, json& header) {
    if (size == 0) return r.fail(std::string("the file is empty") + k_not_checkpoint);
    if (size < 8) return r.fail("the file is only " + std::to_string(size) + " bytes" + k_not_checkpoint);
    unsigned char len_bytes[8];
    if (std::fread(len_bytes, 1, 8, f) != 8) return r.fail(std::string("cannot read the header length") + k_not_checkpoint);
    header_len = 0;
    for (int i = 0; i < 8; ++i) header_len |= uint64_t{len_bytes[i]} << (8 * i);
    if (header_len > k_max_header_bytes)
        return r.fail("header length " + std::to_string(header_len) + " exceeds the 100 MB limit" + k_not_checkpoint);
    if (header_len > size - 8)
        return r.fail("header length " + std::to_string(header_len) + " is larger than the rest of the file (" +
                      std::to_string(size - 8) + " bytes)" + k_not_checkpoint);
    std::string text(header_len, '\0');
    if (std::fread(text.data(), 1, text.size(), f) != text.size())
        return r.fail(std::string("cannot read the header") + k_not_checkpoint);
    try {
        header = json::parse(text, [](int depth, json::parse_event_t, json&) {
            if (depth > k_max_json_depth) throw TooDeep{};
            return true;
        });
    } catch (const TooDeep&) {
        return r.fail(std::string("the header JSON is nested too deeply") + k_not_checkpoint);
    } catch (const json::exception&) {
        return r.fail(std::string("the header is not valid JSON") + k_not_checkpoint);
    }
    if (!header.is_object()) return r.fail(std::string("the header is not a JSON object") + k_not_checkpoint);
    return Status::ok();
}

Status read_metadata(const Reader& r, const json& v, std::map<std::string, std::string>& out) {
    if (!v.is_object()) return r.fail(std::string("\"__metadata__\" is not a JSON object") + k_corrupt);
    for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m->is_string()) return r.fail("metadata entry " + quoted(m.key()) + " is not a string" + k_corrupt);
        out[m.key()] = m->get<std::string>();
    }
    return Status::ok();
}

// One tensor entry: F32, a shape of non-negative dims, data_offsets inside the data section whose
// length matches the shape.
Status read_tensor_entry(const Reader& r, const std::string& name, const json& v, uint64_t data_size,
                         std::vector<int64_t>& shape, uint64_t& begin, uint64_t& end) {
    const std::string what = "tensor " + quoted(name) + " ";
    if (!v.is_object()) return r.fail(what + "is not a JSON object" + k_corrupt);
    const auto dtype = v.find("dtype");
    if (dtype == v.end() || !dtype->is_string()) return r.fail(what + "has no dtype string" + k_corrupt);
    if (dtype->get<std::string>() != "F32")
        return r.fail(what + "has dtype " + quoted(dtype->get<std::string>()) +
                      " but RouteLab reads only F32; convert it to F32 or re-save it with routelab-cli train");
    const auto shape_it = v.find("shape");
    if (shape_it == v.end() || !shape_it->is_array()) return r.fail(what + "has no shape list" + k_corrupt);
    for (const json& d : *shape_it) {
        if (!d.is_number_unsigned() || d.get<uint64_t>() > uint64_t{std::numeric_limits<int64_t>::max()})
            return r.fail(what + "has shape " + shape_it->dump() + "; dims must be non-negative integers" + k_corrupt);
        shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
    }
    uint64_t numel = 0;
    if (!checked_numel(shape, numel)) return r.fail(what + "has a too large shape " + shape_text(shape) + k_corrupt);
    const auto offs = v.find("data_offsets");
    if (offs == v.end() || !offs->is_array() || offs->size() != 2 || !(*offs)[0].is_number_unsigned() ||
        !(*offs)[1].is_number_unsigned())
        return r.fail(what + "needs data_offsets [begin, end] of non-negative integers" + k_corrupt);
    begin = (*offs)[0].get<uint64_t>();
    end = (*offs)[1].get<uint64_t>();
    const std::string range = "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "]";
    if (begin > end) return r.fail(what + "has " + range + " with begin after end" + k_corrupt);
    if (end > data_size)
        return r.fail(what + "has " + range + " past the end of the data section (" + std::to_string(data_size) +
                      " bytes)" + k_not_checkpoint);
    if (end - begin != 4 * numel)
        return r.fail(what + "has " + range + " spanning " + std::to_string(end - begin) + " bytes but shape " +
                      shape_text(shape) + " needs " + std::to_string(4 * numel) + " bytes" + k_corrupt);
    return Status::ok();
}

// As in the reference implementation, tensors must tile the data section exactly: a gap,
// overlap or trailing bytes mean the header and data do not belong together. Sorts spans.
Status check_tiling(const Reader& r, std::vector<Span>& spans, uint64_t data_size) {
    std::sort(spans.begin(), spans.end(),
              [](const Span& a, const Span& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
    uint64_t pos = 0;
    for (const Span& s : spans) {
        if (s.begin != pos)
            return r.fail("tensor " + quoted(s.name) + " data starts at byte " + std::to_string(s.begin) +
                          " but the previous tensor ends at " + std::to_string(pos) + " (gap or overlap)" + k_corrupt);
        pos = s.end;
    }
    if (pos != data_size)
        return r.fail("the data section has " + std::to_string(data_size) + " bytes but the tensors cover only " +
                      std::to_string(pos) + k_corrupt);
    return Status::ok();
}

Result<SafetensorsFile> read_impl(const std::string& path) {
    const Reader r{prefix(path)};
    FilePtr f;
    uint64_t size = 0, header_len = 0;
    json header;
    if (Status s = open_file(r, path, f, size); !s) return s;
    if (Status s = read_header(r, f.get(), size, header_len, header); !s) return s;

    const uint64_t data_size = size - 8 - header_len;
    SafetensorsFile out;
    std::vector<Span> spans;
    for (auto it = header.begin(); it != header.end(); ++it) {
        if (it.key() == "__metadata__") {
            if (Status s = read_metadata(r, it.value(), out.metadata); !s) return s;
            continue;
        }
        std::vector<int64_t> shape;
        uint64_t begin = 0, end = 0;
        if (Status s = read_tensor_entry(r, it.key(), it.value(), data_size, shape, begin, end); !s) return s;
        StoredTensor& t = out.tensors[it.key()];
        t.shape = std::move(shape);
        spans.push_back({begin, end, it.key(), &t});
    }
    if (Status s = check_tiling(r, spans, data_size); !s) return s;

    for (const Span& s : spans) {  // in file order after the sort
        if (s.end == s.begin) continue;
        s.tensor->data.resize((s.end - s.begin) / 4);
        if (std::fread(s.tensor->data.data(), 1, s.end - s.begin, f.get()) != s.end - s.begin)
            return r.fail("reading the data of tensor " + quoted(s.name) + " failed" + k_not_checkpoint);
    }
    return out;
}

}  // namespace

Status safetensors_write(const std::string& path, const std::vector<TensorView>& tensors,
                         const std::map<std::string, std::string>& metadata) {
    try {
        return write_impl(path, tensors, metadata);
    } catch (const std::bad_alloc&) {
        return Status::error(prefix(path) + "out of memory while writing; free memory and try again");
    }
}

Result<SafetensorsFile> safetensors_read(const std::string& path) {
    try {
        return read_impl(path);
    } catch (const std::bad_alloc&) {
        return Status::error(prefix(path) + "not enough memory to load the checkpoint; free memory and try again");
    }
}

}  // namespace rl
