// Memory up front (docs/hardening.md, "Memory"): the bytes a training run of a config will hold,
// counted from the same layouts the trainer allocates from, against the memory this process may
// still take, so that a config too large for the machine is refused with a message before a byte of
// it is allocated, instead of the kernel killing the program (and the window with its runs).
#pragma once
#include <algorithm>
#include <cstddef>
#include <string>

#include "config/config.h"
#include "util/status.h"

namespace rl {

// What trainer_create() and a run then hold, in bytes.
struct MemoryEstimate {
    int batch = 0, seq_len = 0, vocab = 0;
    double params = 0;       // parameters and buffers (the selection biases)
    double grads = 0;        // one gradient per parameter
    double optimizer = 0;    // AdamW's two moments and the weight-decay mask
    double activations = 0;  // the (B, T) activations, the backward scratch and their side vectors
    double data = 0;         // the token streams (train and validation)
    double measure = 0;      // measurements beside the step: the probe, a KV cache, the specialization, the speedup
    double runtime = 0;      // threads, GEMM packing buffers, JIT code: measured, a few MiB a thread
    double prepare = 0;      // the peak while a text file is read, its tokenizer trained and the text encoded
    double steady() const { return params + grads + optimizer + activations + data + measure + runtime; }
    // Preparation comes first and ends before the model is made: the larger of the two is the peak.
    double total() const { return std::max(steady(), prepare); }
};

// Preparing a text file of `file_bytes` (train/corpus.cpp dataset_build): its documents (the text
// plus a string, a heap block and two pointers a line), the token streams (reserved at their size),
// and the tokenizer trained on at most a 64 MiB sample. lines: the file's lines (0: a line a 100 bytes).
struct PrepareEstimate {
    double bytes = 0;   // the peak
    double tokens = 0;  // the tokens the text will make (train and validation)
};
PrepareEstimate memory_prepare_estimate(double file_bytes, double lines);
// The lines of a file, from its first MiB; 0 when it cannot be read.
double memory_count_lines(const std::string& path, double file_bytes);
// The estimate for the file at path, of file_bytes, its lines counted by memory_count_lines.
PrepareEstimate memory_prepare_file(const std::string& path, double file_bytes);
// Before a corpus file is read: refused when preparing it will not fit, naming its size and what to do.
Status memory_check_prepare(const DataConfig& d);

// For a validated config whose model.vocab_size is resolved (> 0); tokens: the corpus's token count
// (train + validation), 0 when not known yet. with_cost: the run ends with the window's speedup
// measurement (cost_measure: trainable copies of the weights and three activation sets of batch 16).
MemoryEstimate memory_estimate(const Config& cfg, size_t tokens = 0, bool with_cost = false);
// The vocabulary a config will train with, before its corpus is tokenized: model.vocab_size when set,
// else the subword size or word cap data.tokenizer / vocab_size choose for the file, and for the
// embedded corpus about 2000 words (1,912 at the default corpus seed).
int memory_vocab_guess(const Config& cfg);

// Memory this process may still take: the smaller of the kernel's MemAvailable and, in a cgroup with
// a limit (a container, a systemd slice), the limit less what the cgroup already uses.
struct MemoryAvailable {
    double bytes = 0;
    std::string source;  // "MemAvailable", "cgroup memory.max", ...
};
MemoryAvailable memory_available();
// This process's resident set now and at its peak (VmRSS, VmHWM), in bytes; 0 when unknown.
double memory_rss_bytes();
double memory_peak_rss_bytes();
// Starts the peak (VmHWM) again from the resident set now (/proc/self/clear_refs), so that a later
// peak is the run's own and not the corpus preparation's; false where the kernel does not allow it.
bool memory_reset_peak();

// "412.3 MiB (parameters 2.2 MiB, gradients 2.2 MiB, AdamW 4.9 MiB, activations 38.6 GiB at batch 16 x 80, ...)".
std::string memory_estimate_text(const MemoryEstimate& e);
// "1.5 GiB", "412.3 MiB".
std::string memory_bytes_text(double bytes);
// Refuses a run that does not fit: "this config needs ...; 22.9 GiB is available: lower ...", naming
// the keys that shrink the biggest part. ROUTELAB_MEMORY_CHECK=0 in the environment turns it off (a
// machine with swap the user means to use).
Status memory_check(const MemoryEstimate& e, const MemoryAvailable& a);
// The check before the corpus is read (the window's form, Train): a validated config with its
// vocabulary guessed (memory_vocab_guess); the estimate lands in *out.
Status memory_check_config(const Config& cfg, bool with_cost, MemoryEstimate* out = nullptr, MemoryAvailable* avail = nullptr);

}  // namespace rl
