// Speed probe: training, forward and decode throughput of a config, measured in one process so the
// figures can be compared as ratios. Medians of repeated timings (the machine is shared and noisy).
#pragma once
#include "config/config.h"

namespace rl {

struct SpeedReport {
    double train_tok_s_b1 = 0, train_tok_s_b16 = 0, forward_tok_s_b16 = 0, decode_ms_per_token = 0;
    double achieved_gflops = 0;       // training FLOP model (3x forward) at B=16 / time
    double peak_gflops = 0;           // the FMA microkernel on the same threads (speed_peak_gflops)
    double flops_per_token_fwd = 0;   // FLOP model, forward, at T = seq_len
    // The LM head alone at B = 16 as a training step runs it: logits = x W^T, cross-entropy and its
    // backward, dx and dW (3 GEMMs of 2 N C V FLOPs); large vocabularies make it most of a step.
    double lm_head_gflops = 0;
    int threads = 1;
};

// cfg.model.vocab_size must be set. Uses random tokens (speed does not depend on the text).
// seconds: minimum time per measurement; repeats: medians over this many measurements.
SpeedReport speed_measure(const Config& cfg, double seconds = 1.0, int repeats = 3);
// fp32 FMA peak of this machine on thread_count() threads: each thread runs independent chains of
// vector multiply-adds on registers (no memory traffic), the ceiling a GEMM can approach.
// The best of `repeats` measurements (a ceiling: other work only lowers it), `seconds` in all.
double speed_peak_gflops(double seconds = 0.3, int repeats = 3);

}  // namespace rl
