// Bytes as a Hugging Face model folder -> hf_config_read, hf_model_open (shard index, the mapped
// safetensors, every tensor against config.json) and HfTokenizer (tokenizer.json), then a forward and an
// encode/decode with what loaded. The input is up to four files, split at k_part: config.json,
// model.safetensors.index.json, model.safetensors (the index names it as its one shard), tokenizer.json.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.h"
#include "io/hf_model.h"
#include "model/model.h"
#include "train/hf_tokenizer.h"

namespace {

constexpr std::string_view k_part = "\n--routelab-part--\n";
const char* k_files[] = {"config.json", "model.safetensors.index.json", "model.safetensors", "tokenizer.json"};

void folder_from(const std::string& dir, std::string_view in) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    for (int i = 0; i < 4; i++) {
        const size_t end = std::min(in.find(k_part), in.size());
        const std::string_view part = in.substr(0, end);
        if (!part.empty())
            rl_fuzz::write_file(dir + "/" + k_files[i], reinterpret_cast<const uint8_t*>(part.data()), part.size());
        if (end == in.size()) break;
        in.remove_prefix(end + k_part.size());
    }
}

void model_part(const std::string& dir) {
    auto cfg = rl::hf_config_read(dir, nullptr);
    if (!cfg) {
        rl_fuzz::require(!cfg.status.msg.empty(), "hf_config_read failed without a message");
        return;
    }
    if (rl::hf_model_bytes(cfg->model, 16) > 64e6) return;  // a config whose estimate alone is large
    auto hf = rl::hf_model_open(dir);
    if (!hf) {
        rl_fuzz::require(!hf.status.msg.empty(), "hf_model_open failed without a message");
        return;
    }
    const rl::Model& m = (*hf)->model;
    const int T = std::min(4, m.cfg.seq_len);
    std::vector<int> ids(T);
    for (int t = 0; t < T; t++) ids[t] = t % m.cfg.vocab_size;
    rl::Activations a;
    rl::activations_create(a, m.cfg, 1, T);
    rl::model_forward(m, a, ids.data(), nullptr, 1, T);
}

void tokenizer_part(const std::string& dir) {
    auto tok = rl::HfTokenizer::load(dir + "/tokenizer.json");
    if (!tok) {
        rl_fuzz::require(!tok.status.msg.empty(), "HfTokenizer::load failed without a message");
        return;
    }
    for (bool special : {true, false}) {
        const std::vector<int> ids = tok->encode("Hello  world\n\tcode 12345 caf\xC3\xA9 \xE4\xB8\xAD <s></s>", special);
        (void)tok->decode(ids, !special);
        for (int id : ids) rl_fuzz::require(id >= 0 && id < tok->vocab_size(), "an id outside the vocabulary");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::string dir = rl_fuzz::temp_path("hf_model");
    folder_from(dir, std::string_view(reinterpret_cast<const char*>(data), size));
    model_part(dir);
    tokenizer_part(dir);
    return 0;
}
