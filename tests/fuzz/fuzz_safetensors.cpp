// Bytes as a .safetensors file -> safetensors_read (header, dtypes, offsets) and checkpoint_load
// (stored config, tokenizer, every tensor's name and shape against the config).
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::string path = rl_fuzz::temp_path("checkpoint.safetensors");
    rl_fuzz::write_file(path, data, size);
    auto file = rl::safetensors_read(path);
    if (!file) {
        rl_fuzz::require(!file.status.msg.empty(), "safetensors_read failed without a message");
        return 0;
    }
    auto ck = rl::checkpoint_load(path);
    if (!ck) {
        rl_fuzz::require(!ck.status.msg.empty(), "checkpoint_load failed without a message");
        return 0;
    }
    // A loaded checkpoint's tokenizer is used at once by generate and probe.
    const rl::Tokenizer& tok = (*ck)->tok;
    (void)tok.decode(tok.encode("The capital of France is Paris. </s>"));
    return 0;
}
