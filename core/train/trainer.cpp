#include "train/trainer.h"

#include "train/memory.h"

#include <algorithm>
#include <malloc.h>

#include <chrono>
#include <cmath>

#include "backend/device.h"
#include "optim/optim.h"
#include "util/threads.h"

namespace rl {

namespace {
// Probing the slower count costs its slowdown for k_probe_steps: when one count is far ahead
// (1.5x or more), look again four times less often.
int probe_interval(const ThreadGovernor& g) {
    const double a = g.sec_per_tok[0], b = g.sec_per_tok[1];
    const bool far = a > 0 && b > 0 && std::max(a, b) > 1.5 * std::min(a, b);
    return far ? 4 * ThreadGovernor::k_probe_every : ThreadGovernor::k_probe_every;
}
}  // namespace

int governor_begin(ThreadGovernor& g) {
    int want = g.max_threads;
    if (g.max_threads > 1 && g.use_load && cpu_load_update(g.load)) {
        if (g.load.others >= 0) {  // free cores, rounded: a process using 0.6 of a core already costs a barrier
            const int free_cores = (int)(g.cores - g.load.others + 0.5);
            want = std::clamp(free_cores, 1, g.max_threads);
        }
    } else if (g.max_threads > 1) {
        const int best = g.sec_per_tok[0] > 0 && g.sec_per_tok[1] > 0 && g.sec_per_tok[0] < g.sec_per_tok[1] ? 0 : 1;
        int use = best;
        if (g.probe_left > 0) use = 1 - best;                        // re-measuring the other count
        else if (g.sec_per_tok[0] == 0 && g.since_probe >= 2) use = 0;  // first look at one thread
        want = use == 0 ? 1 : g.max_threads;
    }
    g.current = want;
    set_thread_count(want);
    return want;
}

void governor_end(ThreadGovernor& g, double secs, int tokens) {
    set_thread_count(g.max_threads);
    if (g.max_threads <= 1 || tokens <= 0) return;
    const int slot = g.current == 1 ? 0 : 1;
    const double x = secs / tokens;
    double& avg = g.sec_per_tok[slot];
    avg = avg == 0 ? x : 0.7 * avg + 0.3 * x;
    if (g.probe_left > 0) {
        g.probe_left--;
    } else if (++g.since_probe >= probe_interval(g)) {
        g.since_probe = 0;
        g.probe_left = ThreadGovernor::k_probe_steps;
    }
}

Result<std::unique_ptr<TrainState>> trainer_create(const Config& cfg, const DataProgress& progress) {
    if (Status s = config_validate(cfg); !s) return s;
    if (std::string why = config_training_blocker(cfg.model); !why.empty()) return Status::error(why);
    if (auto d = device_select(cfg.train.device); !d) return d.status;  // before the corpus is tokenized
    Config guess = cfg;
    guess.model.vocab_size = memory_vocab_guess(cfg);
    const double predicted = memory_estimate(guess).prepare;
    const double t0 = now_seconds();
    auto data = dataset_build(cfg.data, nullptr, progress);
    if (!data) return data.status;
    const double peak = memory_peak_rss_bytes(), seconds = now_seconds() - t0;
    if (progress) progress("building the model", -1);
    // Training the tokenizer leaves freed heap that glibc keeps mapped; hand it back before the
    // arenas are made, so the resident set is the run's, not the tokenizer trainer's peak.
    malloc_trim(0);
    memory_reset_peak();  // the run's peak from here on is its own
    auto s = trainer_create(cfg, std::make_unique<Dataset>(std::move(*data)));
    if (s) (*s)->prepare_predicted = predicted, (*s)->prepare_peak = peak, (*s)->prepare_seconds = seconds;
    return s;
}

Result<std::unique_ptr<TrainState>> trainer_create(const Config& cfg, std::unique_ptr<Dataset> data) {
    if (Status s = config_validate(cfg); !s) return s;
    if (std::string why = config_training_blocker(cfg.model); !why.empty()) return Status::error(why);
    auto device = device_select(cfg.train.device);
    if (!device) return device.status;
    const int T = cfg.model.seq_len, B = cfg.train.batch_size;
    if (data->train.ids.size() <= (size_t)T + 1 || data->val.ids.size() <= (size_t)T + 1)
        return Status::error("corpus: the training or validation split has fewer than seq_len+2 (" +
                             std::to_string(T + 2) + ") tokens; use a larger corpus or a smaller model.seq_len");
    auto s = std::make_unique<TrainState>();
    s->cfg = cfg;
    s->device_note = device->note;
    s->cfg.model.vocab_size = data->tok.vocab_size();
    if (cfg.model.vocab_size != 0 && cfg.model.vocab_size != s->cfg.model.vocab_size)
        return Status::error("config: 'model.vocab_size' is " + std::to_string(cfg.model.vocab_size) +
                             " but the tokenizer has " + std::to_string(s->cfg.model.vocab_size) +
                             " tokens; set it to 0 to take the tokenizer's size");
    // Before a byte of the model is allocated: a config too large for this machine is a message, not
    // the kernel's OOM kill (docs/hardening.md, "Memory").
    s->memory = memory_estimate(s->cfg, data->train.ids.size() + data->val.ids.size());
    if (Status m = memory_check(s->memory, memory_available()); !m) return m;
    s->rss_before = memory_rss_bytes();
    s->data = std::move(data);
    model_create(s->model, s->cfg.model, cfg.train.seed, cfg.train.init_std);
    s->model.ops = device->ops;  // the CPU's while no other backend has kernels (device_select)
    activations_create(s->acts, s->cfg.model, B, T);
    const size_t n = s->model.params.data.size();
    s->adam_m.assign(n, 0.f);
    s->adam_v.assign(n, 0.f);
    s->decay_mask.assign(n, 0);
    for (const TensorSpec& t : s->model.layout.specs())
        if (t.decay) std::fill_n(s->decay_mask.begin() + t.offset, t.numel, 1);
    s->tokens.resize((size_t)B * T);
    s->targets.resize((size_t)B * T);
    s->rng.seed(cfg.train.seed);
    s->prev_entropy = std::log((float)T);  // as if attention were uniform: the widest adaptive window
    s->threads.max_threads = s->threads.current = thread_count();
    s->threads.cores = cpu_count();
    return s;
}

StepStats trainer_step(TrainState& s) {
    const auto t0 = std::chrono::steady_clock::now();
    governor_begin(s.threads);
    const TrainConfig& tc = s.cfg.train;
    const int B = tc.batch_size, T = s.cfg.model.seq_len;
    batch_sample(s.data->train, B, T, s.rng, s.tokens.data(), s.targets.data());
    model_zero_grad(s.model);
    StepStats st;
    st.loss = model_forward(s.model, s.acts, s.tokens.data(), s.targets.data(), B, T,
                            {.prev_entropy = s.prev_entropy, .training = true, .seed = (uint64_t)s.step + 1,
                             .skip = tc.heads_path == HeadsPath::skip});
    if (s.inject_nan_at > 0 && s.step + 1 == s.inject_nan_at) st.loss = std::nanf("");  // --inject-nan-at (tests)
    stats_collect(st, s.model.cfg, s.acts);
    st.lr = lr_schedule(s.step, tc.steps, tc.warmup_steps, tc.lr, tc.min_lr);
    // A non-finite loss or gradient would put NaN into every weight and both AdamW moments for good:
    // stop before the update, so the model still holds the last good step's weights.
    auto refuse = [&](int what) {
        st.non_finite = what;
        st.step = s.step + 1;
        st.window = s.acts.window;
        st.wall_s = (float)s.wall_s;
        governor_end(s.threads, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), B * T);
        return st;
    };
    if (!std::isfinite(st.loss)) return refuse(StepStats::loss_non_finite);
    model_backward(s.model, s.acts, s.tokens.data(), s.targets.data());
    s.prev_entropy = s.acts.entropy;
    st.grad_norm = s.model.ops->grad_clip(s.model.grads.data.data(), s.model.grads.data.size(), tc.grad_clip);
    if (!std::isfinite(st.grad_norm)) return refuse(StepStats::grad_non_finite);
    AdamWParams p{st.lr, tc.beta1, tc.beta2, tc.eps, tc.weight_decay, s.step + 1};
    s.model.ops->adamw_update(s.model.params.data.data(), s.model.grads.data.data(), s.adam_m.data(), s.adam_v.data(),
                              s.decay_mask.data(), s.model.params.data.size(), p);
    model_route_update(s.model, s.acts);  // aux-loss-free biases and the global-balance window
    stats_collect_bias(st, s.model);
    s.step++;
    st.step = s.step;
    st.window = s.acts.window;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    governor_end(s.threads, secs, B * T);
    st.tok_per_s = (float)(B * T / std::max(secs, 1e-9));
    s.wall_s += secs;
    st.wall_s = (float)s.wall_s;
    st.threads = s.threads.current;
    return st;
}

std::string non_finite_message(const StepStats& st) {
    const bool loss = st.non_finite == StepStats::loss_non_finite;
    const float v = loss ? st.loss : st.grad_norm;
    return "step " + std::to_string(st.step) + ": the " + (loss ? "loss" : "gradient norm") + " is " +
           (std::isnan(v) ? "NaN" : "infinite");
}

float trainer_eval(TrainState& s) {
    const int B = s.cfg.train.batch_size, T = s.cfg.model.seq_len, n = s.cfg.train.eval_batches;
    double total = 0;
    for (int k = 0; k < n; k++) {
        batch_fixed(s.data->val, B, T, k, n, s.tokens.data(), s.targets.data());
        {
            model_forward(s.model, s.acts, s.tokens.data(), s.targets.data(), B, T,
                          {.prev_entropy = s.prev_entropy, .skip = s.cfg.train.heads_path == HeadsPath::skip});
            total += s.acts.ce;  // validation reports the cross-entropy alone
        }
    }
    return (float)(total / n);
}

}  // namespace rl
