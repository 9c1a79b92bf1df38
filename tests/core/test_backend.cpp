// The backend seam (docs/architecture.md §6): the train.device key, the choice of backend for every
// kind of machine, and the op table every forward, backward, decode and update goes through.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>

#include "backend/device.h"
#include "backend/ops.h"
#include "config/presets.h"
#include "model/model.h"
#include "train/trainer.h"

using namespace rl;

namespace {

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// ---- a table that counts its calls and forwards each to the CPU op ----
enum OpIndex {
#define OP_INDEX(name) op_##name,
    ROUTELAB_OPS(OP_INDEX)
#undef OP_INDEX
    op_count
};
std::array<std::atomic<long>, op_count> g_calls;

template <int I, auto Fn>
struct Counted;
template <int I, class R, class... A, R (*Fn)(A...)>
struct Counted<I, Fn> {
    static R call(A... a) {
        g_calls[I]++;
        return Fn(a...);
    }
};

const Ops& counting_ops() {
    static const Ops ops = [] {
        Ops o;
        o.device = "counting";
#define OP_COUNTED(name) o.name = &Counted<op_##name, &::rl::name>::call;
        ROUTELAB_OPS(OP_COUNTED)
#undef OP_COUNTED
        return o;
    }();
    return ops;
}

Config small(const std::string& name) {
    auto cfg = preset_load(name);
    EXPECT_TRUE(cfg.is_ok()) << name << ": " << cfg.status.msg;
    cfg->model.seq_len = 64;  // the adaptive window's largest (64) fits
    cfg->train.batch_size = 2;
    cfg->train.steps = 4;
    cfg->train.warmup_steps = 1;
    cfg->data.synthetic_docs = 100;
    cfg->train.device = DeviceKind::cpu;
    return *cfg;
}

}  // namespace

TEST(Device, KeyTakesCpuCudaOrAutoAndNamesItOtherwise) {
    EXPECT_EQ(Config{}.train.device, DeviceKind::automatic) << "auto is the default";
    Config c;
    ASSERT_TRUE(config_apply_override(c, "train.device=cpu").is_ok());
    EXPECT_EQ(c.train.device, DeviceKind::cpu);
    ASSERT_TRUE(config_apply_override(c, "train.device=cuda").is_ok());
    EXPECT_EQ(c.train.device, DeviceKind::cuda);
    const Status bad = config_apply_override(c, "train.device=gpu");
    ASSERT_FALSE(bad.is_ok());
    EXPECT_TRUE(has(bad.msg, "train.device")) << bad.msg;
    for (const char* choice : {"auto", "cpu", "cuda"}) EXPECT_TRUE(has(bad.msg, choice)) << bad.msg;
    EXPECT_EQ(config_key_choices("train.device"), (std::vector<std::string>{"auto", "cpu", "cuda"}));
    auto back = config_from_json(config_to_json(c));
    ASSERT_TRUE(back.is_ok()) << back.status.msg;
    EXPECT_EQ(back->train.device, DeviceKind::cuda) << "the key round-trips through the JSON";
}

// Every machine a user can have, as probes: the choice and what is said.
TEST(Device, ChoiceForEachKindOfMachine) {
    CudaProbe none;  // a build without the CUDA backend
    none.error = "this build has no CUDA backend";
    CudaProbe no_driver;
    no_driver.built = true;
    no_driver.error = "no NVIDIA driver is installed";
    CudaProbe gpu;
    gpu.built = true;
    gpu.devices = 1;
    gpu.name = "NVIDIA H200";
    gpu.memory = 150ull << 30;

    for (const CudaProbe* p : {&none, &no_driver, &gpu}) {
        auto cpu = device_select(DeviceKind::cpu, *p, &counting_ops());
        ASSERT_TRUE(cpu.is_ok());
        EXPECT_EQ(cpu->ops, &ops_cpu()) << "cpu is the CPU wherever a GPU is";
        EXPECT_EQ(cpu->note, "") << "an explicit choice needs no note";
    }
    for (const CudaProbe* p : {&none, &no_driver}) {
        auto a = device_select(DeviceKind::automatic, *p, &counting_ops());
        ASSERT_TRUE(a.is_ok());
        EXPECT_EQ(a->ops, &ops_cpu());
        EXPECT_TRUE(has(a->note, p->error) && has(a->note, "training on the CPU")) << a->note;
        auto c = device_select(DeviceKind::cuda, *p, &counting_ops());
        ASSERT_FALSE(c.is_ok());
        EXPECT_TRUE(has(c.status.msg, "'train.device'") && has(c.status.msg, p->error) &&
                    has(c.status.msg, "set train.device to cpu or auto"))
            << c.status.msg;
        EXPECT_EQ(has(c.status.msg, "-DROUTELAB_CUDA=ON"), !p->built) << "only a CPU-only build is told to rebuild";
    }
    // A GPU, but no kernels: refused / the CPU, naming the GPU.
    auto c = device_select(DeviceKind::cuda, gpu, nullptr);
    ASSERT_FALSE(c.is_ok());
    EXPECT_TRUE(has(c.status.msg, "NVIDIA H200 (150.0 GiB)") && has(c.status.msg, "no kernels")) << c.status.msg;
    auto a = device_select(DeviceKind::automatic, gpu, nullptr);
    ASSERT_TRUE(a.is_ok());
    EXPECT_EQ(a->ops, &ops_cpu());
    EXPECT_TRUE(has(a->note, "NVIDIA H200") && has(a->note, "training on the CPU")) << a->note;
    // A GPU and a table: both cuda and auto take it.
    for (DeviceKind k : {DeviceKind::cuda, DeviceKind::automatic}) {
        auto g = device_select(k, gpu, &counting_ops());
        ASSERT_TRUE(g.is_ok()) << g.status.msg;
        EXPECT_EQ(g->ops, &counting_ops());
        EXPECT_TRUE(has(g->note, "NVIDIA H200")) << g->note;
    }
}

// This machine and this build, end to end: the probe agrees with the build, a cuda run is refused
// before its corpus is read, and an auto run trains on the CPU and says why in its note.
TEST(Device, ThisMachineAndBuild) {
    const CudaProbe& p = cuda_probe();
#ifdef ROUTELAB_HAVE_CUDA
    EXPECT_TRUE(p.built);
    EXPECT_GE(p.runtime_version, 12000) << "the CUDA runtime this build links";
#else
    EXPECT_FALSE(p.built);
#endif
    if (p.devices == 0) {
        EXPECT_FALSE(p.error.empty()) << "no device and no reason";
    }
    EXPECT_EQ(&cuda_probe(), &p) << "probed once";
    ASSERT_EQ(ops_cuda(), nullptr) << "a CUDA table with kernels: this test's expectations below change";

    Config cfg = small("tiny");
    cfg.train.device = DeviceKind::cuda;
    cfg.data.corpus = "/nonexistent/corpus.txt";
    auto refused = trainer_create(cfg);
    ASSERT_FALSE(refused.is_ok());
    EXPECT_TRUE(has(refused.status.msg, "'train.device' is \"cuda\""))
        << "the device is checked before the corpus: " << refused.status.msg;
    cfg = small("tiny");
    cfg.train.device = DeviceKind::automatic;
    auto s = trainer_create(cfg);
    ASSERT_TRUE(s.is_ok()) << s.status.msg;
    EXPECT_EQ((*s)->model.ops, &ops_cpu());
    EXPECT_TRUE(has((*s)->device_note, "training on the CPU") && has((*s)->device_note, p.error)) << (*s)->device_note;
    cfg.train.device = DeviceKind::cpu;
    auto c = trainer_create(cfg);
    ASSERT_TRUE(c.is_ok()) << c.status.msg;
    EXPECT_EQ((*c)->device_note, "");
}

TEST(Ops, CpuTableHasEveryOp) {
    const Ops& o = ops_cpu();
    EXPECT_STREQ(o.device, "cpu");
    ASSERT_EQ(ops_names().size(), (size_t)op_count);
    std::set<const void*> seen;
    for (size_t i = 0; i < ops_names().size(); i++) {
        ASSERT_NE(ops_entry(o, i), nullptr) << ops_names()[i];
        EXPECT_TRUE(seen.insert(ops_entry(o, i)).second) << ops_names()[i] << " shares its function with another op";
    }
    EXPECT_EQ(ops_entry(o, ops_names().size()), nullptr);
    EXPECT_EQ(o.linear_forward, &linear_forward);
    EXPECT_EQ(o.attn_skip_backward, &attn_skip_backward);
}

// Training steps and KV-cache decode on every preset and the variants no preset has, once on the CPU
// table and once on a table that counts each call before forwarding it: the same losses and weights
// bit for bit (nothing is computed beside the table), and every op of the table is called (none is
// dead, and a backend that implements the table runs every path).
TEST(Ops, EveryOpGoesThroughTheTable) {
    std::vector<Config> cfgs;
    for (const std::string& n : preset_names()) cfgs.push_back(small(n));
    auto variant = [&](const char* base, std::initializer_list<const char*> sets) {
        Config c = small(base);
        for (const char* s : sets) EXPECT_TRUE(config_apply_override(c, s).is_ok()) << s;
        cfgs.push_back(c);
    };
    variant("tiny", {"model.norm=layernorm", "model.ffn.kind=gelu"});
    variant("tiny", {"model.ffn.kind=relu", "model.norm_position=post"});
    variant("seed-moh", {"train.heads_path=dense_masked"});
    variant("seed-moh",
            {"model.attention.heads.kind=static_pruning", "model.attention.heads.n_active=3"});  // kv groups 2, 3 unread
    variant("seed-moh", {"model.attention.positional=rope"});
    variant("tiny", {"model.attention.positional=rope", "train.heads_path=dense_masked"});
    auto data = dataset_build(cfgs[0].data);
    ASSERT_TRUE(data.is_ok()) << data.status.msg;
    for (auto& n : g_calls) n = 0;
    for (const Config& cfg : cfgs) {
        SCOPED_TRACE(cfg.name + " (config " + std::to_string(&cfg - cfgs.data()) + ")");
        ASSERT_TRUE(config_validate(cfg).is_ok()) << config_validate(cfg).msg;
        auto a = trainer_create(cfg, std::make_unique<Dataset>(*data));
        auto b = trainer_create(cfg, std::make_unique<Dataset>(*data));
        ASSERT_TRUE(a.is_ok() && b.is_ok()) << a.status.msg;
        (*b)->model.ops = &counting_ops();
        for (TrainState* s : {&**a, &**b}) s->threads.max_threads = s->threads.current = 1;  // the same reductions
        for (int i = 0; i < cfg.train.steps; i++) {
            const StepStats sa = trainer_step(**a), sb = trainer_step(**b);
            ASSERT_EQ(sa.loss, sb.loss) << "step " << i + 1;
            ASSERT_EQ(sa.grad_norm, sb.grad_norm) << "step " << i + 1;
        }
        ASSERT_EQ((*a)->model.params.data, (*b)->model.params.data);
        if (config_generation_blocker(cfg.model).empty()) {  // KV-cache decode, dense and skipping heads
            for (bool skip : {false, true}) {
                std::vector<float> last[2];
                for (int k = 0; k < 2; k++) {
                    const Model& m = k == 0 ? (*a)->model : (*b)->model;
                    Activations acts;
                    activations_create(acts, m.cfg, 1, 1);
                    KVCache kv;
                    kvcache_create(kv, m.cfg, 8);
                    for (int t = 0; t < 8; t++)
                        model_decode_step(m, acts, kv, (t * 7) % m.cfg.vocab_size, {.skip = skip});
                    last[k].assign(acts.logits, acts.logits + m.cfg.vocab_size);
                }
                ASSERT_EQ(last[0], last[1]) << (skip ? "skip" : "dense") << " decode";
            }
        }
    }
    // A forward-only config (vocabulary 50) through the plain table and the counting one: the same logits
    // (with_backward: also the same gradients of a backward with targets, as router tuning runs it).
    auto forward_both_ways = [](const Config& c, bool with_backward = false) {
        std::vector<float> logits[2], grads[2];
        for (int k = 0; k < 2; k++) {
            Model m;
            model_create(m, c.model, 3, 0.1f);
            if (k == 1) m.ops = &counting_ops();
            Activations acts;
            activations_create(acts, c.model, 1, 8);
            const int ids[8] = {1, 5, 9, 2, 7, 3, 4, 8}, tgt[8] = {5, 9, 2, 7, 3, 4, 8, 1};
            model_forward(m, acts, ids, with_backward ? tgt : nullptr, 1, 8, {.training = with_backward});
            logits[k].assign(acts.logits, acts.logits + 8 * 50);
            if (!with_backward) continue;
            model_zero_grad(m);
            model_backward(m, acts, ids, tgt);
            grads[k].assign(m.grads.data.begin(), m.grads.data.end());
        }
        ASSERT_EQ(logits[0], logits[1]);
        ASSERT_EQ(grads[0], grads[1]);
    };
    {  // the settings of imported Hugging Face models run forward only (config_training_blocker)
        Config c = small("moe-top2-8");
        for (const char* s : {"model.embedding_multiplier=12", "model.residual_multiplier=0.2", "model.logits_scaling=6",
                              "model.attention.qk_norm=head", "model.attention.qkv_bias=true"})
            EXPECT_TRUE(config_apply_override(c, s).is_ok()) << s;
        c.model.vocab_size = 50;
        ASSERT_TRUE(config_validate(c).is_ok());
        forward_both_ways(c);
    }
    {  // MoH-LLaMA3's query-norm head rule, forward only as well
        Config c = small("seed-moh");
        ASSERT_TRUE(config_apply_override(c, "model.attention.heads.router=query_norm").is_ok());
        c.model.vocab_size = 50;
        ASSERT_TRUE(config_validate(c).is_ok()) << config_validate(c).msg;
        forward_both_ways(c);
    }
    {  // JetMoE's attention experts: the forward, and the router's backward (tune-router's) through both tables
        Config c = small("seed-moh");
        for (const char* s : {"model.attention.heads.n_shared=0", "model.attention.heads.router=experts",
                              "model.attention.heads.n_experts=2"})
            ASSERT_TRUE(config_apply_override(c, s).is_ok()) << s;
        c.model.attention.heads.n_active_routed = c.model.n_heads / 2;
        c.model.vocab_size = 50;
        ASSERT_TRUE(config_validate(c).is_ok()) << config_validate(c).msg;
        forward_both_ways(c, true);
    }
    std::string never;
    for (size_t i = 0; i < op_count; i++)
        if (g_calls[i] == 0) never += std::string(" ") + ops_names()[i];
    EXPECT_EQ(never, "") << "ops no run called:" << never;
}

// The other half of the seam, read from the source: the model and the trainer call no op but through
// the table (the CPU's own fused ops, the skip path, are in model/skip_cpu.cpp). A
// direct call there would run on the CPU whatever the device, and the counting test above cannot see
// it when the same op is also called through the table elsewhere.
TEST(Ops, ModelAndTrainerCallNoOpDirectly) {
    auto read = [](const char* rel) {
        std::ifstream in(std::filesystem::path(ROUTELAB_SOURCE_DIR) / rel);
        return std::string(std::istreambuf_iterator<char>(in), {});
    };
    // The whole of model.cpp: the skip path's CPU kernels, which call layer functions inside their
    // loops, are in model/skip_cpu.cpp, behind the table like every other op.
    for (const auto& [file, text] : {std::pair{"core/model/model.cpp", read("core/model/model.cpp")},
                                     {"core/train/trainer.cpp", read("core/train/trainer.cpp")}}) {
        ASSERT_GT(text.size(), 1000u) << file;
        for (const char* name : ops_names()) {
            const std::regex direct(std::string(R"((^|[^\w.>:])(::)?(rl::)?)") + name + R"(\s*\()");
            for (std::sregex_iterator it(text.begin(), text.end(), direct), end; it != end; ++it) {
                const size_t at = it->position();
                const size_t line_start = text.rfind('\n', at) + 1;
                const std::string line = text.substr(line_start, text.find('\n', at) - line_start);
                if (line.find("//") != std::string::npos && line.find("//") < at - line_start) continue;  // a comment
                if (std::regex_search(line, std::regex(R"(^(int|void|double|float)\s)")))
                    continue;  // its definition (at column 0)
                ADD_FAILURE() << file << ": " << name << " called directly: " << line;
            }
        }
    }
}
