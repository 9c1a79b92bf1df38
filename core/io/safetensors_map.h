// Memory-mapped safetensors in the dtypes Hugging Face checkpoints come in (F32, BF16, F16), read-only:
// the file stays on disk and pages come in as tensors are read, so a shard is never copied whole. The
// header is validated as untrusted bytes (every tensor's range inside the file, its byte count matching
// its shape and dtype); a failure is one line naming the file.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "util/status.h"

namespace rl {

enum class Dtype { f32, bf16, f16 };
const char* dtype_name(Dtype d);  // the safetensors names: "F32", "BF16", "F16"
size_t dtype_bytes(Dtype d);

struct MappedTensor {
    Dtype dtype = Dtype::f32;
    std::vector<int64_t> shape;
    uint64_t numel = 0;
    const unsigned char* data = nullptr;  // numel * dtype_bytes(dtype) bytes inside the mapping
};

struct MappedSafetensors {
    std::string path;
    uint64_t file_bytes = 0;
    std::map<std::string, MappedTensor> tensors;
    std::shared_ptr<const void> mapping;  // the tensors' data stays valid while a copy of this lives
};

// Maps and validates `path`; errors start with "weights '<path>': ".
Result<MappedSafetensors> safetensors_map(const std::string& path);

// Elements [first, first + n) of t, widened to float32 into dst.
void tensor_to_f32(float* dst, const MappedTensor& t, uint64_t first, uint64_t n);
// The reference conversions, one value at a time (BF16: the high half of an F32; F16: IEEE binary16).
float bf16_to_f32(uint16_t h);
float f16_to_f32(uint16_t h);

// "[4, 8]".
std::string shape_text(const std::vector<int64_t>& shape);

}  // namespace rl
