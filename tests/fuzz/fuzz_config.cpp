// Bytes as a config JSON -> config_from_json, config_validate; a valid config must also survive its
// own round trip (config_to_json then config_from_json), since runs and checkpoints store it that way.
// Bytes of the form key=value also go to config_apply_override (--set, sweep points).
#include <cstdint>
#include <string>

#include "config/config.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    if (text.find('=') != std::string::npos && text.find('\n') == std::string::npos) {
        rl::Config base;
        rl::Status s = rl::config_apply_override(base, text);
        rl_fuzz::require(s || !s.msg.empty(), "config_apply_override failed without a message");
    }
    auto cfg = rl::config_from_json(text);
    if (!cfg) {
        rl_fuzz::require(!cfg.status.msg.empty(), "config_from_json failed without a message");
        return 0;
    }
    rl::Status valid = rl::config_validate(*cfg);
    if (!valid) {
        rl_fuzz::require(!valid.msg.empty(), "config_validate failed without a message");
        return 0;
    }
    (void)rl::config_warnings(*cfg);
    (void)rl::config_generation_blocker(cfg->model);
    auto again = rl::config_from_json(rl::config_to_json(*cfg));
    rl_fuzz::require(again.is_ok(), "a valid config does not parse back from config_to_json");
    rl_fuzz::require(rl::config_validate(*again).is_ok(), "a valid config is invalid after its round trip");
    return 0;
}
