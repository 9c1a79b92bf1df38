// Training end to end on small data: the loss must fall below a stated bar, runs are reproducible,
// checkpoints round-trip, and data errors are explained.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <malloc.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/presets.h"
#include "infer/generate.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "optim/optim.h"
#include "train/corpus.h"
#include "train/memory.h"
#include "train/trainer.h"
#include "util/threads.h"

using namespace rl;
namespace fs = std::filesystem;

namespace {
fs::path temp_dir(const std::string& name) {
    fs::path p = fs::temp_directory_path() / ("routelab_test_" + name + "_" + std::to_string(::getpid()));
    fs::create_directories(p);
    return p;
}
}  // namespace

TEST(Train, TinyLossFallsBelowHalfLnV) {
    auto cfg = preset_load("tiny");
    ASSERT_TRUE(cfg.is_ok());
    cfg->train.steps = 250;
    auto s = trainer_create(*cfg);
    ASSERT_TRUE(s.is_ok()) << s.status.msg;
    const float v0 = trainer_eval(**s);
    for (int i = 0; i < cfg->train.steps; i++) trainer_step(**s);
    const float v1 = trainer_eval(**s);
    const float bar = 0.5f * std::log((float)(*s)->cfg.model.vocab_size);
    std::printf("[train] tiny: val loss %.3f -> %.3f after %d steps (bar 0.5 ln V = %.3f)\n", v0, v1,
                cfg->train.steps, bar);
    EXPECT_GT(v0, std::log((float)(*s)->cfg.model.vocab_size) - 1.f) << "starts near uniform";
    EXPECT_LT(v1, bar);
}

TEST(Train, SubwordTokenizersTrainToo) {
    for (const char* kind : {"bpe", "unigram"}) {
        auto cfg = preset_load("tiny");
        cfg->data.tokenizer = kind;
        cfg->data.vocab_size = 400;
        cfg->train.steps = 150;
        auto s = trainer_create(*cfg);
        ASSERT_TRUE(s.is_ok()) << kind << ": " << s.status.msg;
        const int V = (*s)->cfg.model.vocab_size;
        EXPECT_LE(V, 400);
        const float v0 = trainer_eval(**s);
        for (int i = 0; i < cfg->train.steps; i++) trainer_step(**s);
        const float v1 = trainer_eval(**s);
        std::printf("[train] tiny with %s (V %d): val loss %.3f -> %.3f\n", kind, V, v0, v1);
        EXPECT_LT(v1, 0.65f * v0) << kind;
        const std::string text = "User: What is two plus two? Assistant: Four.";
        EXPECT_EQ((*s)->data->tok.decode((*s)->data->tok.encode(text)), text) << kind;
    }
}

TEST(Train, SameSeedGivesIdenticalLossCurve) {
    auto cfg = preset_load("tiny");
    cfg->train.steps = 20;
    std::vector<float> curves[2];
    for (int run = 0; run < 2; run++) {
        auto s = trainer_create(*cfg);
        ASSERT_TRUE(s.is_ok());
        for (int i = 0; i < cfg->train.steps; i++) curves[run].push_back(trainer_step(**s).loss);
    }
    for (int i = 0; i < cfg->train.steps; i++) ASSERT_EQ(curves[0][i], curves[1][i]) << "step " << i + 1;
    cfg->train.seed += 1;
    auto s = trainer_create(*cfg);
    EXPECT_NE(trainer_step(**s).loss, curves[0][0]) << "a different seed gives a different run";
}

TEST(Train, HeadsPathSkipAndDenseMaskedGiveTheSameRun) {
    // MoH on the tiny preset: the trainer's default skip path and dense-masked training (the official
    // code's way) take the same steps, up to float rounding that the optimizer carries along.
    auto cfg = preset_load("tiny");
    cfg->model.attention.heads.kind = HeadSelection::moh;
    cfg->model.attention.heads.n_shared = 1;
    cfg->model.attention.heads.n_active_routed = 1;
    cfg->train.steps = 10;
    ASSERT_EQ(cfg->train.heads_path, HeadsPath::skip) << "skip is the default";
    std::vector<float> curves[2], val(2);
    for (int run = 0; run < 2; run++) {
        cfg->train.heads_path = run == 0 ? HeadsPath::skip : HeadsPath::dense_masked;
        auto s = trainer_create(*cfg);
        ASSERT_TRUE(s.is_ok()) << s.status.msg;
        for (int i = 0; i < cfg->train.steps; i++) curves[run].push_back(trainer_step(**s).loss);
        EXPECT_EQ((*s)->acts.skip, run == 0);
        val[run] = trainer_eval(**s);
    }
    for (int i = 0; i < cfg->train.steps; i++) EXPECT_NEAR(curves[0][i], curves[1][i], 1e-4 * curves[1][i]) << "step " << i + 1;
    EXPECT_NEAR(val[0], val[1], 1e-4 * val[1]);
}

TEST(Checkpoint, RoundTripGivesIdenticalLogitsAndTokenizer) {
    auto cfg = preset_load("tiny");
    cfg->train.steps = 5;
    auto s = trainer_create(*cfg);
    ASSERT_TRUE(s.is_ok());
    for (int i = 0; i < 5; i++) trainer_step(**s);
    const fs::path dir = temp_dir("ckpt");
    const std::string path = (dir / "c.safetensors").string();
    ASSERT_TRUE(checkpoint_save(path, (*s)->model, (*s)->cfg, (*s)->data->tok, {5, 1.5f}).is_ok());
    auto ck = checkpoint_load(path);
    ASSERT_TRUE(ck.is_ok()) << ck.status.msg;
    EXPECT_EQ((*ck)->info.step, 5);
    EXPECT_EQ((*ck)->model.params.data, (*s)->model.params.data);
    const std::string text = "User: What is the sky? Assistant:";
    EXPECT_EQ((*ck)->tok.encode(text), (*s)->data->tok.encode(text));
    SampleOptions o;
    o.temperature = 0;
    auto ids = (*s)->data->tok.encode(text);
    const int W = model_window((*s)->cfg.model, (*s)->cfg.model.seq_len, 0);
    EXPECT_EQ(generate((*ck)->model, ids, 10, o, -1, W), generate((*s)->model, ids, 10, o, -1, W));

    // A checkpoint of another shape is refused with the tensor's name and both shapes.
    auto other = *cfg;
    other.model.d_model = 48;
    other.model.head_dim = 12;
    auto s2 = trainer_create(other);
    ASSERT_TRUE(s2.is_ok()) << s2.status.msg;
    // tiny's tensors under the other config's metadata
    std::vector<TensorView> views;
    for (const TensorSpec& t : (*s)->model.layout.specs())
        views.push_back({t.name, std::vector<int64_t>(t.shape.begin(), t.shape.end()), (*s)->model.params.data.data() + t.offset});
    ASSERT_TRUE(safetensors_write(path, views, {{"routelab_config", config_to_json((*s2)->cfg)},
                                                {"routelab_tokenizer", (*s2)->data->tok.to_json()}}).is_ok());
    auto bad = checkpoint_load(path);
    ASSERT_FALSE(bad.is_ok());
    EXPECT_NE(bad.status.msg.find("has shape"), std::string::npos) << bad.status.msg;
    EXPECT_NE(bad.status.msg.find("but the config needs"), std::string::npos) << bad.status.msg;
    fs::remove_all(dir);
}

// What is not a regular file is refused with what it is, before it is opened: /dev/zero never ends
// (it used to end in std::bad_alloc), a FIFO would block the open until a writer came, forever.
TEST(Corpus, NotAFileIsAMessageNotAHang) {
    const fs::path dir = temp_dir("corpus_kinds");
    const std::string fifo = (dir / "pipe").string();
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    const std::pair<std::string, const char*> cases[] = {{"/dev/zero", "is a device"}, {fifo, "is a FIFO"}, {dir.string(), "is a folder"}};
    for (const auto& [path, what] : cases) {
        DataConfig d;
        d.corpus = path;
        auto ds = dataset_build(d);
        ASSERT_FALSE(ds.is_ok()) << path;
        EXPECT_NE(ds.status.msg.find(what), std::string::npos) << ds.status.msg;
        EXPECT_NE(ds.status.msg.find("head -c"), std::string::npos) << "says what to do: " << ds.status.msg;
    }
    fs::remove_all(dir);
}

// A corpus whose preparation cannot fit is refused before a byte of it is read, naming its size and
// how much of it would fit; a 200 GiB sparse file costs no disk.
TEST(Corpus, TooLargeToPrepareIsRefusedUpFront) {
    const fs::path dir = temp_dir("corpus_huge");
    const fs::path big = dir / "huge.txt";
    std::ofstream(big) << "a line\n";
    fs::resize_file(big, 200ull << 30);
    DataConfig d;
    d.corpus = big.string();
    auto ds = dataset_build(d);
    ASSERT_FALSE(ds.is_ok());
    EXPECT_NE(ds.status.msg.find("is 200.0 GiB: preparing it"), std::string::npos) << ds.status.msg;
    EXPECT_NE(ds.status.msg.find("use the first"), std::string::npos) << ds.status.msg;
    // The window's form says it too, before Train (memory_check_config).
    Config cfg = *preset_load("tiny");
    cfg.data.corpus = big.string();
    MemoryEstimate e;
    EXPECT_FALSE(memory_check_config(cfg, false, &e).is_ok());
    EXPECT_GT(e.prepare, 200.0 * (1ull << 30));
    fs::remove_all(dir);
}

// The preparation estimate against a real preparation (BPE on a few MB): not below what it took.
TEST(Corpus, PrepareEstimateCoversTheMeasuredPeak) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "a sanitizer's shadow memory and quarantine are in the resident set: measured in the plain build";
#endif
    const fs::path dir = temp_dir("corpus_peak");
    const fs::path path = dir / "text.txt";
    size_t bytes = 0;
    {
        std::ofstream f(path);
        for (uint32_t seed = 1; bytes < (6u << 20); seed++)
            for (const Document& doc : corpus_embedded(200, seed)) f << doc.text << "\n", bytes += doc.text.size() + 1;
    }
    DataConfig d;
    d.corpus = path.string();
    const PrepareEstimate p = memory_prepare_file(d.corpus, (double)bytes);
    malloc_trim(0);
    const double before = memory_rss_bytes();
    if (!memory_reset_peak()) GTEST_SKIP() << "no /proc/self/clear_refs: the peak cannot be measured here";
    auto ds = dataset_build(d);
    ASSERT_TRUE(ds.is_ok()) << ds.status.msg;
    const double took = memory_peak_rss_bytes() - before, tokens = (double)(ds->train.ids.size() + ds->val.ids.size());
    std::printf("prepare %.1f MB: predicted %.1f MiB, took %.1f MiB; tokens predicted %.0f, made %.0f\n", bytes / 1e6,
                p.bytes / 1048576, took / 1048576, p.tokens, tokens);
    EXPECT_GE(p.bytes, took);
    EXPECT_LE(p.bytes, 6 * took + (64 << 20)) << "so far above it that it would refuse files that fit";
    EXPECT_GE(p.tokens, tokens);
    fs::remove_all(dir);
}

TEST(Corpus, UserFilesAndErrors) {
    const fs::path dir = temp_dir("corpus");
    {
        std::ofstream(dir / "a.txt") << "the cat sat on the mat.\n\nthe dog ran.\n";
        std::ofstream(dir / "b.json") << R"(["hello world </s>", "second line"])";
        std::ofstream(dir / "bad.json") << R"({"not": "an array"})";
        std::ofstream(dir / "empty.txt") << "\n\n";
        std::ofstream(dir / "latin1.txt") << "caf\xe9\n";
    }
    auto a = corpus_load_file((dir / "a.txt").string());
    ASSERT_TRUE(a.is_ok());
    EXPECT_EQ(a->size(), 2u);
    auto b = corpus_load_file((dir / "b.json").string());
    ASSERT_TRUE(b.is_ok());
    EXPECT_EQ((*b)[0].text.find("</s>"), std::string::npos);
    EXPECT_NE(corpus_load_file((dir / "missing.txt").string()).status.msg.find("cannot open"), std::string::npos);
    EXPECT_NE(corpus_load_file((dir / "bad.json").string()).status.msg.find("JSON array of strings"), std::string::npos);
    EXPECT_NE(corpus_load_file((dir / "empty.txt").string()).status.msg.find("empty"), std::string::npos);
    EXPECT_NE(corpus_load_file((dir / "latin1.txt").string()).status.msg.find("UTF-8 at line 1"), std::string::npos);
    // Too small to train at seq_len 80: a message, not a crash.
    Config cfg = *preset_load("seed-baseline");
    cfg.data.corpus = (dir / "a.txt").string();
    auto s = trainer_create(cfg);
    ASSERT_FALSE(s.is_ok());
    EXPECT_FALSE(s.status.msg.empty());
    fs::remove_all(dir);
}

TEST(Corpus, EmbeddedHasEveryDomainLabelledAndAFixedSplit) {
    auto cfg = preset_load("tiny");
    auto d1 = dataset_build(cfg->data);
    auto d2 = dataset_build(cfg->data);
    ASSERT_TRUE(d1.is_ok()) << d1.status.msg;
    EXPECT_EQ(d1->domains_present, (std::vector<int>{dom_facts, dom_stories, dom_arithmetic, dom_code, dom_dialogue}));
    EXPECT_EQ(d1->train.ids, d2->train.ids);
    EXPECT_EQ(d1->val.ids, d2->val.ids);
    ASSERT_EQ(d1->train.ids.size(), d1->train.domain.size());
    std::vector<int> seen(dom_count, 0);
    for (auto dom : d1->val.domain) seen[dom]++;
    for (int k = 0; k < dom_arithmetic + 3; k++) EXPECT_GT(seen[k], 0) << domain_name(k) << " missing from validation";
    std::mt19937 rng(3);
    const std::string arith = corpus_gen_arithmetic(rng);
    // Every equation the generator writes is true.
    std::istringstream in(arith);
    long a, b, r;
    char op, eq, dotc;
    int n = 0;
    while (in >> a >> op >> b >> eq >> r >> dotc) {
        EXPECT_EQ(r, op == '+' ? a + b : op == '-' ? a - b : a * b) << arith;
        n++;
    }
    EXPECT_GE(n, 3);
}

TEST(Generate, SamplingRespectsTopKTopPAndSeed) {
    std::vector<float> logits = {1.f, 3.f, 2.f, 3.f, -1.f};
    std::mt19937_64 rng(1);
    SampleOptions greedy;
    greedy.temperature = 0;
    EXPECT_EQ(sample_token(logits.data(), 5, greedy, rng), 1) << "ties go to the lowest index";
    SampleOptions k2;
    k2.top_k = 2;
    for (int i = 0; i < 200; i++) {
        int t = sample_token(logits.data(), 5, k2, rng);
        EXPECT_TRUE(t == 1 || t == 3);
    }
    SampleOptions p;
    p.top_p = 0.3f;  // the top token alone holds 0.40 of the mass: the nucleus is just index 1
    for (int i = 0; i < 100; i++) EXPECT_EQ(sample_token(logits.data(), 5, p, rng), 1);
    SampleOptions s1;
    s1.seed = 9;
    std::mt19937_64 r1(9), r2(9);
    for (int i = 0; i < 20; i++) EXPECT_EQ(sample_token(logits.data(), 5, s1, r1), sample_token(logits.data(), 5, s1, r2));
}

// min_new (HF's min_new_tokens): the end token cannot be picked before that many new tokens. A
// model whose LM-head bias makes the end token everyone's first pick shows it, and the report says
// how the text ended.
TEST(Generate, MinNewTokensHoldsOffTheEndToken) {
    auto cfg = preset_load("tiny");
    cfg->model.lm_head_bias = true;
    auto st = trainer_create(*cfg);
    ASSERT_TRUE(st.is_ok()) << st.status.msg;
    TrainState& s = **st;
    const Tokenizer& tok = s.data->tok;
    const TensorSpec* bias = s.model.layout.find("lm_head_bias");
    ASSERT_NE(bias, nullptr);
    s.model.params.data[bias->offset + tok.eos_id()] = 100.f;  // eos wins every greedy pick
    SampleOptions o;
    o.temperature = 0;
    const GenerationReport first = generate_report(s.model, tok, "The sky", 20, o, s.prev_entropy);
    EXPECT_EQ(first.new_ids, std::vector<int>{tok.eos_id()});
    EXPECT_TRUE(first.ended_at_eos);
    EXPECT_NE(first.note().find("came first"), std::string::npos) << first.note();
    o.min_new = 5;
    const GenerationReport held = generate_report(s.model, tok, "The sky", 20, o, s.prev_entropy);
    ASSERT_EQ(held.new_ids.size(), 6u);  // five others, then the end token as soon as it may come
    for (int i = 0; i < 5; i++) EXPECT_NE(held.new_ids[i], tok.eos_id());
    EXPECT_EQ(held.new_ids.back(), tok.eos_id());
    EXPECT_NE(held.note().find("after 5 tokens"), std::string::npos) << held.note();
    o.min_new = 30;  // past max_new: no end token at all
    const GenerationReport none = generate_report(s.model, tok, "The sky", 20, o, s.prev_entropy);
    EXPECT_EQ(none.new_ids.size(), 20u);
    EXPECT_FALSE(none.ended_at_eos);
    EXPECT_TRUE(none.note().empty());
}

// The generation report the CLI and the window share: text, new tokens and the probe window agree.
TEST(Generate, ReportKeepsPromptNewTokensAndProbeWindowTogether) {
    auto cfg = preset_load("tiny");
    auto st = trainer_create(*cfg);
    ASSERT_TRUE(st.is_ok()) << st.status.msg;
    const TrainState& s = **st;
    const Tokenizer& tok = s.data->tok;
    SampleOptions o;
    o.seed = 5;
    const std::string prompt = "User: What is the sky? Assistant:";
    const GenerationReport g = generate_report(s.model, tok, prompt, 12, o, s.prev_entropy);
    ASSERT_TRUE(g.error.empty()) << g.error;
    EXPECT_EQ(g.prompt_ids, tok.encode(prompt));
    const int W = model_window(s.model.cfg, s.model.cfg.seq_len, s.prev_entropy);
    EXPECT_EQ(g.new_ids, generate(s.model, g.prompt_ids, 12, o, tok.eos_id(), W));
    EXPECT_EQ(g.new_text, tok.decode(g.new_ids));
    std::vector<int> all = g.prompt_ids;
    all.insert(all.end(), g.new_ids.begin(), g.new_ids.end());
    EXPECT_EQ(g.text, tok.decode(all));
    EXPECT_EQ(g.window_ids, all);  // shorter than seq_len: the whole text
    EXPECT_EQ(g.window_prompt_tokens, (int)g.prompt_ids.size());

    // A prompt longer than seq_len: the window is the last seq_len tokens, prompt tokens counted.
    std::string long_prompt;
    for (int i = 0; i < 20; i++) long_prompt += "The sky is blue. ";
    const GenerationReport l = generate_report(s.model, tok, long_prompt, 5, o, s.prev_entropy);
    const int T = s.model.cfg.seq_len;
    ASSERT_GT((int)l.prompt_ids.size(), T);
    ASSERT_EQ((int)l.window_ids.size(), T);
    EXPECT_EQ(l.window_prompt_tokens, T - (int)l.new_ids.size());
    EXPECT_EQ(l.window_ids.back(), l.new_ids.back());

    // Nothing to encode: generation starts from eos, as generate() does.
    EXPECT_EQ(generate_report(s.model, tok, "", 3, o, s.prev_entropy).prompt_ids, std::vector<int>{tok.eos_id()});

    // Expert choice is not causal: a reason, and nothing generated.
    Model ec;
    ModelConfig mc = s.model.cfg;
    mc.moe.kind = FfnRouting::moe;
    mc.moe.routing = MoeRouting::expert_choice;
    mc.moe.n_experts = 4;
    mc.moe.d_ff_expert = 16;
    model_create(ec, mc, 1, 0.02f);
    const GenerationReport e = generate_report(ec, tok, prompt, 5, o, 0.f);
    EXPECT_NE(e.error.find("expert_choice"), std::string::npos) << e.error;
    EXPECT_TRUE(e.new_ids.empty() && e.text.empty());
}

// The thread governor on made-up step times: it must settle on the faster count, keep
// re-measuring the other, and follow the machine when the slower one becomes the faster.
TEST(ThreadGovernor, RunsTheFasterCountAndFollowsTheMachine) {
    const int saved = thread_count();
    ThreadGovernor g;
    g.max_threads = g.current = 2;
    g.use_load = false;  // the timing fallback
    double us_one = 4, us_all = 10;  // a contended machine: one thread is faster
    auto run = [&](int steps) {
        int on_one = 0;
        for (int i = 0; i < steps; i++) {
            const int n = governor_begin(g);
            EXPECT_EQ(thread_count(), n);
            on_one += n == 1;
            governor_end(g, (n == 1 ? us_one : us_all) * 1e-6 * 1000, 1000);
            EXPECT_EQ(thread_count(), 2) << "between steps every thread is back";
        }
        return on_one;
    };
    run(40);                       // measures both
    const int one = run(340);      // then mostly one thread (2.5x ahead: a 2-step probe every 128)
    EXPECT_GT(one, 340 - 340 / 128 * ThreadGovernor::k_probe_steps - 4);
    EXPECT_LT(one, 340);
    us_one = 8, us_all = 4;        // the other process ends: all threads are faster now
    run(260);                      // by the next probe it notices
    EXPECT_LT(run(100), 100 / 32 * ThreadGovernor::k_probe_steps + 2);
    set_thread_count(saved);
}

// cpu_load sees another process's busy core and not our own work.
TEST(CpuLoad, CountsOtherProcessesNotOurs) {
    CpuLoad l;
    ASSERT_TRUE(cpu_load_update(l)) << "/proc/stat must be readable on Linux";
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {  // another process, busy for 0.8 s
        const double t0 = now_seconds();
        volatile double x = 0;
        while (now_seconds() - t0 < 0.8) x = x + 1;
        _exit(0);
    }
    usleep(400 * 1000);
    ASSERT_TRUE(cpu_load_update(l, 0.1));
    EXPECT_GT(l.others, 0.5) << "a busy child process is another process's core";
    int status = 0;
    waitpid(child, &status, 0);
    // our own busy loop is our CPU time, which is taken out of the machine's busy time (the
    // machine may be busy with other tests, so `others` itself has no upper bound to check here)
    cpu_load_update(l, 0.0);
    const double own0 = l.own, t0 = now_seconds();
    volatile double x = 0;
    while (now_seconds() - t0 < 0.4) x = x + 1;
    ASSERT_TRUE(cpu_load_update(l, 0.1));
    EXPECT_GT(l.own - own0, 0.1) << "our busy 0.4 s must show as our own CPU time (a fifth of a core at least)";
    EXPECT_GE(l.others, 0.0);
}

// The optimizer's fast loops (fixed slices over the threads, vector lanes) against plain loops.
TEST(Optim, GradClipAndAdamWMatchPlainLoops) {
    for (size_t n : {size_t(1), size_t(1000), size_t(65536 * 3 + 17)}) {
        std::mt19937 rng(7);
        std::normal_distribution<float> nd(0.f, 0.05f);
        std::vector<float> g(n), p(n), m(n, 0.f), v(n, 0.f);
        std::vector<unsigned char> mask(n);
        for (size_t i = 0; i < n; i++) g[i] = nd(rng), p[i] = nd(rng), mask[i] = i % 3 != 0;
        double ss = 0;
        for (float x : g) ss += (double)x * x;
        const double norm = std::sqrt(ss);
        auto gc = g;
        const float got = grad_clip(gc.data(), n, 1.f);
        EXPECT_NEAR(got, norm, 1e-5 * norm) << n;
        const double scale = norm > 1.0 ? 1.0 / (norm + 1e-6) : 1.0;
        for (size_t i = 0; i < n; i += 97) EXPECT_NEAR(gc[i], g[i] * scale, 1e-6) << n;
        auto pr = p, mr = m, vr = v;
        const AdamWParams ap{1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 3};
        adamw_update(p.data(), gc.data(), m.data(), v.data(), mask.data(), n, ap);
        const float bc1 = 1.f - std::pow(ap.beta1, 3.f), bc2 = 1.f - std::pow(ap.beta2, 3.f);
        for (size_t i = 0; i < n; i++) {
            mr[i] = ap.beta1 * mr[i] + (1 - ap.beta1) * gc[i];
            vr[i] = ap.beta2 * vr[i] + (1 - ap.beta2) * gc[i] * gc[i];
            pr[i] -= ap.lr * ((mr[i] / bc1) / (std::sqrt(vr[i] / bc2) + ap.eps) + (mask[i] ? ap.weight_decay * pr[i] : 0.f));
        }
        for (size_t i = 0; i < n; i++) ASSERT_NEAR(p[i], pr[i], 1e-6) << n << " at " << i;
    }
}

// The memory estimate counts what trainer_create really allocates: the parameters, gradients, AdamW
// moments and the (B, T) activations, byte for byte, for a dense, an MoH, an MoE, an MH-MoE and an
// aux-loss-free (expert biases) preset;
// a machine with less memory than the estimate refuses the config naming the part to lower.
TEST(Memory, EstimateIsWhatTheTrainerAllocatesAndTooLargeIsRefused) {
    for (const char* p : {"seed-baseline", "seed-moh", "moe-top2-8", "mh-moe-h2", "deepseek-v3-style"}) {
        SCOPED_TRACE(p);
        auto cfg = preset_load(p);
        ASSERT_TRUE(cfg.is_ok());
        auto s = trainer_create(*cfg);
        ASSERT_TRUE(s.is_ok()) << s.status.msg;
        const TrainState& t = **s;
        const MemoryEstimate& e = t.memory;
        const double P = t.model.params.data.size() * sizeof(float);
        EXPECT_EQ(e.grads, P);
        EXPECT_EQ(e.optimizer, (t.adam_m.size() + t.adam_v.size()) * sizeof(float) + t.decay_mask.size());
        EXPECT_EQ(e.params, P + t.model.buffers.data.size() * sizeof(float));  // with the selection biases
        if (std::string(p) == "deepseek-v3-style") EXPECT_GT(t.model.buffers.data.size(), 0u) << "expert biases counted";
        const double acts = (t.acts.arena.data.size() + t.acts.scratch_arena.data.size()) * sizeof(float);
        EXPECT_GE(e.activations, acts);
        EXPECT_LT(e.activations, acts * 1.02) << "the side vectors are a small part";
        EXPECT_EQ(e.data, (t.data->train.ids.size() + t.data->val.ids.size()) * 5.0);
    }
    auto cfg = *preset_load("seed-baseline");
    cfg.model.vocab_size = 2000;
    const MemoryEstimate e = memory_estimate(cfg);
    EXPECT_TRUE(memory_check(e, {e.total() * 1.01, "test"}).is_ok());
    const Status no = memory_check(e, {e.total() * 0.5, "test"});
    ASSERT_FALSE(no.is_ok());
    EXPECT_EQ(no.msg.rfind("this config needs " + memory_bytes_text(e.total()) + " (parameters ", 0), 0u) << no.msg;
    EXPECT_NE(no.msg.find("lower train.batch_size, model.seq_len or model.ffn.d_ff"), std::string::npos)
        << "seed-baseline's activations outweigh its weights: " << no.msg;
    cfg.model.d_model = 1024, cfg.model.head_dim = 128;  // now the weights do
    const Status wide = memory_check(memory_estimate(cfg), {1e6, "test"});
    EXPECT_NE(wide.msg.find("lower model.d_model"), std::string::npos) << wide.msg;
    // The machine's memory is read from the kernel (and the cgroup): some, and less than the machine has.
    const MemoryAvailable a = memory_available();
    EXPECT_GT(a.bytes, 64e6) << a.source;
    EXPECT_FALSE(a.source.empty());
    EXPECT_GT(memory_rss_bytes(), 1e6);
    EXPECT_GE(memory_peak_rss_bytes(), memory_rss_bytes());
}
