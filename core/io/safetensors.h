// Safetensors checkpoints (F32 only): the format other tools (PyTorch, HF safetensors) read, so a
// RouteLab checkpoint can be inspected or loaded elsewhere. Reading treats the file as untrusted
// bytes: every failure is a Status naming the file, never a crash or an exception.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "util/status.h"

namespace rl {

// One tensor to write; `data` holds product(shape) floats and must outlive the call.
struct TensorView {
    std::string name;
    std::vector<int64_t> shape;
    const float* data;
};

struct StoredTensor {
    std::vector<int64_t> shape;
    std::vector<float> data;
};

struct SafetensorsFile {
    std::map<std::string, std::string> metadata;
    std::map<std::string, StoredTensor> tensors;
};

// Writes `tensors` (data laid out in the order given) and `metadata` to `path` atomically
// (util/atomic_file.h), so a crash or a full disk never replaces a good checkpoint with a partial one.
Status safetensors_write(const std::string& path, const std::vector<TensorView>& tensors,
                         const std::map<std::string, std::string>& metadata);

// Reads and fully validates a checkpoint; errors start with "checkpoint '<path>': ".
Result<SafetensorsFile> safetensors_read(const std::string& path);

}  // namespace rl
