#include "train/memory.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "model/model.h"
#include "train/corpus.h"
#include "util/strfmt.h"
#include "util/threads.h"

namespace rl {

namespace {

// The bytes of a "Key:   12345 kB" line of a /proc file (/proc/self/status, /proc/meminfo), read a
// line at a time, so a line without a unit cannot shift the ones after it; 0 when the key is absent.
double proc_bytes(const char* path, const char* key) {
    std::ifstream f(path);
    std::string line;
    const size_t n = std::strlen(key);
    while (std::getline(f, line))
        if (line.compare(0, n, key) == 0) return std::atof(line.c_str() + n) * 1024.0;
    return 0;
}

// A number of bytes from a cgroup file; < 0 for "max", a missing file or garbage.
double cgroup_bytes(const std::string& path) {
    std::ifstream f(path);
    std::string v;
    if (!(f >> v) || v == "max") return -1;
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    return end && *end == '\0' ? x : -1;
}

// The cgroup (v2: "0::/path"; v1: the memory controller's line) this process is in.
std::string cgroup_dir() {
    std::ifstream f("/proc/self/cgroup");
    std::string line, v1;
    while (std::getline(f, line)) {
        if (line.rfind("0::", 0) == 0) return "/sys/fs/cgroup" + line.substr(3);
        const size_t a = line.find(":memory:");
        if (a != std::string::npos) v1 = "/sys/fs/cgroup/memory" + line.substr(a + 8);
    }
    return v1;
}

}  // namespace

MemoryEstimate memory_estimate(const Config& cfg, size_t tokens, bool with_cost) {
    const ModelConfig& c = cfg.model;
    const int B = cfg.train.batch_size, T = c.seq_len;
    const bool moe = c.moe.kind != FfnRouting::dense, routed = moe || c.attention.heads.kind != HeadSelection::all_heads;
    MemoryEstimate e;
    e.batch = B, e.seq_len = T, e.vocab = c.vocab_size;
    const double P = (double)model_param_layout(c).total() * sizeof(float);  // as laid out (64-byte aligned views)
    // The selection biases (buffers beside the weights, no gradient) count with the parameters.
    e.params = P + (double)model_buffer_layout(c).total() * sizeof(float);
    e.grads = P;
    e.optimizer = 2 * P + P / sizeof(float);  // AdamW m and v, the decay mask (a byte a parameter)
    e.activations = (double)activations_bytes(c, B, T).total();
    e.data = (double)tokens * (sizeof(int) + sizeof(uint8_t));  // ids and their domains
    // The probe (batch 1 over T) and generation's KV cache, always.
    e.measure = (double)activations_bytes(c, 1, T).total() + 2.0 * c.n_layers * T * c.n_kv_heads * c.head_dim * sizeof(float);
    // MoE: the specialization (every 100 steps in the window, at the end in the CLI) runs its own batch
    // of 16 and, against a random router, a second model (weights and gradients).
    const double act16 = (double)activations_bytes(c, 16, T).total();
    if (moe) e.measure += act16 + 2 * P;
    // The window's speedup measurement of a routed run: two trainable copies (the routed and the plain
    // model) and three activation sets of batch 16 (cost_measure).
    if (with_cost && routed) e.measure += 4 * P + 3 * act16;
    // Measured on seed-baseline and moe-top2-8 (peak resident against the rest of this estimate): about
    // 4 MiB plus 3 MiB a thread for thread stacks, malloc arenas, GEMM packing and JIT code.
    e.runtime = (4.0 + 3.0 * thread_count()) * 1024 * 1024;
    // Before the corpus is read (tokens 0): a text file's preparation, and the tokens it will make.
    if (tokens == 0 && cfg.data.corpus != "embedded") {
        std::error_code ec;
        const auto bytes = std::filesystem::file_size(cfg.data.corpus, ec);
        if (!ec) {
            const PrepareEstimate p = memory_prepare_file(cfg.data.corpus, (double)bytes);
            e.prepare = p.bytes;
            e.data = p.tokens * (sizeof(int) + sizeof(uint8_t));
        }
    }
    return e;
}

namespace {
constexpr double k_line_overhead = 32 + 16 + 2 * 8;  // std::string, its malloc header, the split's two pointers
constexpr double k_tokens_per_byte = 0.3;             // English text: ~0.27 (BPE 2-8k) and ~0.22 (words) measured
constexpr double k_sample_bytes = 64.0 * 1024 * 1024; // dataset_build's tokenizer sample
constexpr double k_tokenizer_factor = 6;              // a tokenizer's training peak over its sample (measured, BPE)
}  // namespace

double memory_count_lines(const std::string& path, double file_bytes) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return 0;
    std::vector<char> buf(1 << 20);
    const size_t n = std::fread(buf.data(), 1, buf.size(), f);
    std::fclose(f);
    if (n == 0) return 0;
    const double nl = (double)std::count(buf.begin(), buf.begin() + (std::ptrdiff_t)n, '\n');
    return std::max(1.0, nl) * file_bytes / (double)n;
}

PrepareEstimate memory_prepare_estimate(double file_bytes, double lines) {
    if (lines <= 0) lines = file_bytes / 100;
    PrepareEstimate p;
    p.tokens = k_tokens_per_byte * file_bytes + lines;  // and an end marker a document
    const double docs = file_bytes + k_line_overhead * lines;
    const double streams = p.tokens * (sizeof(int) + sizeof(uint8_t));
    const double tokenizer = k_tokenizer_factor * std::min(file_bytes, k_sample_bytes);
    p.bytes = docs + streams + tokenizer + 16.0 * 1024 * 1024;  // and the program itself
    return p;
}

PrepareEstimate memory_prepare_file(const std::string& path, double file_bytes) {
    return memory_prepare_estimate(file_bytes, memory_count_lines(path, file_bytes));
}

Status memory_check_prepare(const DataConfig& d) {
    if (const char* off = std::getenv("ROUTELAB_MEMORY_CHECK"); off && std::string(off) == "0") return Status::ok();
    if (d.corpus == "embedded") return Status::ok();
    size_t bytes = 0;
    if (Status s = corpus_check_file(d.corpus, &bytes); !s) return s;
    const PrepareEstimate p = memory_prepare_file(d.corpus, (double)bytes);
    const MemoryAvailable a = memory_available();
    if (a.bytes <= 0 || p.bytes <= a.bytes) return Status::ok();
    const double fits = (double)bytes * a.bytes / p.bytes;  // the peak grows about linearly with the file
    return Status::error(str_printf("corpus '%s' is %s: preparing it (reading, the tokenizer, encoding) needs about %s and %s is "
                                    "available (%s); use the first %s of it (head -c %.0fM FILE > part.txt) or free memory",
                                    d.corpus.c_str(), memory_bytes_text((double)bytes).c_str(), memory_bytes_text(p.bytes).c_str(),
                                    memory_bytes_text(a.bytes).c_str(), a.source.c_str(), memory_bytes_text(fits).c_str(),
                                    std::floor(fits / (1024.0 * 1024))));
}

int memory_vocab_guess(const Config& cfg) {
    if (cfg.model.vocab_size > 0) return cfg.model.vocab_size;
    if (cfg.data.corpus == "embedded") return cfg.data.vocab_size > 0 ? cfg.data.vocab_size : 2000;
    std::error_code ec;
    const auto bytes = std::filesystem::file_size(cfg.data.corpus, ec);
    const TokenizerChoice t = tokenizer_choose(cfg.data, ec ? 0 : (size_t)bytes);
    return t.vocab_size > 0 ? t.vocab_size : 8000;
}

MemoryAvailable memory_available() {
    MemoryAvailable a;
    if (const double b = proc_bytes("/proc/meminfo", "MemAvailable:"); b > 0) a.bytes = b, a.source = "MemAvailable";
    const std::string dir = cgroup_dir();
    if (!dir.empty()) {
        // v2: memory.max and memory.current; v1: memory.limit_in_bytes and memory.usage_in_bytes. A
        // v1 "no limit" is a huge number, which loses to MemAvailable below.
        double limit = cgroup_bytes(dir + "/memory.max"), used = cgroup_bytes(dir + "/memory.current");
        const char* name = "cgroup memory.max";
        if (limit < 0 && used < 0) {
            limit = cgroup_bytes(dir + "/memory.limit_in_bytes"), used = cgroup_bytes(dir + "/memory.usage_in_bytes");
            name = "cgroup memory.limit_in_bytes";
        }
        if (limit > 0 && used >= 0 && (a.bytes <= 0 || limit - used < a.bytes)) a.bytes = std::max(0.0, limit - used), a.source = name;
    }
    return a;
}

double memory_rss_bytes() { return proc_bytes("/proc/self/status", "VmRSS:"); }
double memory_peak_rss_bytes() { return proc_bytes("/proc/self/status", "VmHWM:"); }

bool memory_reset_peak() {
    std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
    if (!f) return false;
    const bool ok = std::fputs("5", f) >= 0;
    return std::fclose(f) == 0 && ok;
}

std::string memory_bytes_text(double b) {
    if (b >= 1024.0 * 1024 * 1024) return str_printf("%.1f GiB", b / (1024.0 * 1024 * 1024));
    if (b >= 1024.0 * 1024) return str_printf("%.1f MiB", b / (1024.0 * 1024));
    return str_printf("%.0f KiB", b / 1024.0);
}

std::string memory_estimate_text(const MemoryEstimate& e) {
    return memory_bytes_text(e.total()) + " (parameters " + memory_bytes_text(e.params) + ", gradients " +
           memory_bytes_text(e.grads) + ", AdamW " + memory_bytes_text(e.optimizer) + ", activations " +
           memory_bytes_text(e.activations) + str_printf(" at batch %d x %d", e.batch, e.seq_len) +
           (e.data > 0 ? ", tokens " + memory_bytes_text(e.data) : std::string()) + ", measurements " +
           memory_bytes_text(e.measure) + ", runtime " + memory_bytes_text(e.runtime) + ")" +
           (e.prepare > 0 ? "; preparing the corpus first peaks at " + memory_bytes_text(e.prepare) : std::string());
}

Status memory_check(const MemoryEstimate& e, const MemoryAvailable& a) {
    if (const char* off = std::getenv("ROUTELAB_MEMORY_CHECK"); off && std::string(off) == "0") return Status::ok();
    if (a.bytes <= 0 || e.total() <= a.bytes) return Status::ok();
    // Name the keys that shrink the biggest part: the weights (and their gradients and moments) or the
    // activations of the batch.
    const double weights = e.params + e.grads + e.optimizer;
    const char* fix = e.prepare > e.steady() ? "use a smaller corpus file (head -c 200M FILE > part.txt)"
                      : weights > e.activations ? "lower model.d_model, model.ffn.d_ff, model.n_layers or model.moe.n_experts"
                                                : "lower train.batch_size, model.seq_len or model.ffn.d_ff";
    return Status::error("this config needs " + memory_estimate_text(e) + "; " + memory_bytes_text(a.bytes) + " is available (" +
                         a.source + "): " + fix);
}

Status memory_check_config(const Config& cfg, bool with_cost, MemoryEstimate* out, MemoryAvailable* avail) {
    Config c = cfg;
    c.model.vocab_size = memory_vocab_guess(cfg);
    const MemoryEstimate e = memory_estimate(c, 0, with_cost);
    const MemoryAvailable a = memory_available();
    if (out) *out = e;
    if (avail) *avail = a;
    return memory_check(e, a);
}

}  // namespace rl
