// Safetensors layout: u64 little-endian header length N, N bytes of JSON, then the data section;
// header offsets are relative to the data section (huggingface/safetensors, README "Format").
#include "io/safetensors_map.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

namespace rl {
using json = nlohmann::json;

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

const char* dtype_name(Dtype d) { return d == Dtype::f32 ? "F32" : d == Dtype::bf16 ? "BF16" : "F16"; }
size_t dtype_bytes(Dtype d) { return d == Dtype::f32 ? 4 : 2; }

std::string shape_text(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(uint32_t{h} << 16); }

float f16_to_f32(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (man << 13));  // inf, nan
    if (exp != 0) return std::bit_cast<float>(sign | ((exp + 112) << 23) | (man << 13));
    // zero and subnormals: man * 2^-24
    const float v = (float)man * 5.9604644775390625e-8f;
    return sign ? -v : v;
}

void tensor_to_f32(float* dst, const MappedTensor& t, uint64_t first, uint64_t n) {
    if (t.dtype == Dtype::f32) {
        std::memcpy(dst, t.data + first * 4, n * 4);
        return;
    }
    const unsigned char* p = t.data + first * 2;
    for (uint64_t i = 0; i < n; i++) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);  // shards give no alignment promise for 2-byte types
        dst[i] = t.dtype == Dtype::bf16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
}

namespace {

constexpr uint64_t k_max_header_bytes = 100'000'000;  // the reference implementation's cap
constexpr int k_max_json_depth = 8;
struct TooDeep {};

std::string quoted(const std::string& s) { return json(s).dump(-1, ' ', false, json::error_handler_t::replace); }

bool dtype_parse(const std::string& s, Dtype& d) {
    if (s == "F32") d = Dtype::f32;
    else if (s == "BF16") d = Dtype::bf16;
    else if (s == "F16") d = Dtype::f16;
    else return false;
    return true;
}

// One tensor entry of the header, checked against the data section of `data_bytes`.
Status entry_parse(const std::string& pre, const std::string& name, const json& v, uint64_t data_bytes,
                   const unsigned char* data, MappedTensor& t) {
    const std::string what = pre + "tensor " + quoted(name) + " ";
    const std::string redo = "; the file is damaged: download it again";
    if (!v.is_object()) return Status::error(what + "is not a JSON object" + redo);
    const auto dt = v.find("dtype");
    if (dt == v.end() || !dt->is_string()) return Status::error(what + "has no dtype" + redo);
    if (!dtype_parse(dt->get<std::string>(), t.dtype))
        return Status::error(what + "has dtype " + quoted(dt->get<std::string>()) +
                             "; RouteLab reads F32, BF16 and F16 checkpoints: download the unquantised weights");
    const auto sh = v.find("shape");
    const auto off = v.find("data_offsets");
    if (sh == v.end() || !sh->is_array() || off == v.end() || !off->is_array() || off->size() != 2)
        return Status::error(what + "has no shape or data_offsets" + redo);
    t.numel = 1;
    for (const json& d : *sh) {
        if (!d.is_number_unsigned() || d.get<uint64_t>() > (uint64_t{1} << 40))
            return Status::error(what + "has a bad shape " + sh->dump() + redo);
        t.shape.push_back((int64_t)d.get<uint64_t>());
        if (t.numel > 0 && d.get<uint64_t>() > (uint64_t{1} << 42) / t.numel)
            return Status::error(what + "is too large " + sh->dump() + redo);
        t.numel *= d.get<uint64_t>();
    }
    if (!(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned())
        return Status::error(what + "has bad data_offsets" + redo);
    const uint64_t b = (*off)[0].get<uint64_t>(), e = (*off)[1].get<uint64_t>();
    if (b > e || e > data_bytes)
        return Status::error(what + "lies outside the file (bytes " + std::to_string(b) + ".." + std::to_string(e) +
                             " of " + std::to_string(data_bytes) + "); the file is truncated: download it again");
    if (e - b != t.numel * dtype_bytes(t.dtype))
        return Status::error(what + "has " + std::to_string(e - b) + " bytes for shape " + shape_text(t.shape) + " " +
                             dtype_name(t.dtype) + redo);
    t.data = data + b;
    return Status::ok();
}

Status header_parse(const std::string& pre, const unsigned char* base, uint64_t size, MappedSafetensors& out) {
    const std::string trunc = "; the file is truncated or not safetensors: download it again";
    if (size < 8) return Status::error(pre + "the file is only " + std::to_string(size) + " bytes" + trunc);
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= uint64_t{base[i]} << (8 * i);
    if (n > k_max_header_bytes || n > size - 8)
        return Status::error(pre + "header length " + std::to_string(n) + " does not fit the file" + trunc);
    json h;
    try {
        h = json::parse(base + 8, base + 8 + n, [](int depth, json::parse_event_t, json&) {
            if (depth > k_max_json_depth) throw TooDeep{};
            return true;
        });
    } catch (...) {
        return Status::error(pre + "the header is not valid JSON" + trunc);
    }
    if (!h.is_object()) return Status::error(pre + "the header is not a JSON object" + trunc);
    const unsigned char* data = base + 8 + n;
    for (auto it = h.begin(); it != h.end(); ++it) {
        if (it.key() == "__metadata__") continue;
        MappedTensor t;
        if (Status s = entry_parse(pre, it.key(), it.value(), size - 8 - n, data, t); !s) return s;
        out.tensors.emplace(it.key(), std::move(t));
    }
    return Status::ok();
}

}  // namespace

Result<MappedSafetensors> safetensors_map(const std::string& path) {
    const std::string pre = "weights '" + path + "': ";
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::error(pre + "cannot open (" + std::strerror(errno) + "); check the model folder");
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        return Status::error(pre + "not a regular file; check the model folder");
    }
    const uint64_t size = (uint64_t)st.st_size;
    void* p = size > 0 ? ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    ::close(fd);  // the mapping keeps the file
    if (p == MAP_FAILED) {
        if (size == 0) return Status::error(pre + "the file is empty; download it again");
        return Status::error(pre + "cannot map the file (" + std::strerror(errno) + ")");
    }
    MappedSafetensors out;
    out.path = path;
    out.file_bytes = size;
    out.mapping = std::shared_ptr<const void>(p, [size](const void* q) { ::munmap(const_cast<void*>(q), size); });
    if (Status s = header_parse(pre, static_cast<const unsigned char*>(p), size, out); !s) return s;
    return out;
}

}  // namespace rl
