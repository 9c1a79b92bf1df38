// Shared by the Hugging Face folder reader's two files (hf_config.cpp, hf_model.cpp); not an interface.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "util/status.h"

namespace rl {

enum class HfFamily { llama, mixtral, granitemoe, olmoe, qwen2moe, qwen3moe, jetmoe };
// The family of a supported architecture name (hf_supported_architectures).
HfFamily hf_family(const std::string& arch);

// A JSON file of the folder; the error names the file and ends with what_to_do.
Result<nlohmann::json> hf_json_read(const std::string& path, const std::string& what_to_do);
// A value of an untrusted file for a message: one line, at most 80 characters.
std::string hf_json_short(const nlohmann::json& v);

}  // namespace rl
