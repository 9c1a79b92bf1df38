// The weights of a Hugging Face model folder into the one model (docs/hf-models.md, "Weights"): every
// tensor of RouteLab's layout has one source, a tensor of the checkpoint under its hub name (or a
// slice of one: GraniteMoe fuses its experts); each is checked for its shape, then widened to float32
// from the mapped shard (or, a BF16 expert matrix, read where the shard has it), and a checkpoint
// tensor nothing reads is refused (a setting we would ignore).
#include "io/hf_model.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <new>
#include <set>

#include <sys/mman.h>
#include <unistd.h>

#include "io/hf_model_internal.h"
#include "io/safetensors_map.h"
#include "tensor/gemm_bf16.h"
#include "train/hf_tokenizer.h"
#include "train/memory.h"
#include "util/threads.h"

namespace rl {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Tensor `ours` of the layout is elements [first, first + its numel) of checkpoint tensor `hf`, whose
// shape is src_shape (empty: the same shape as ours). With run > 0 it is those elements reordered:
// viewed as (dims..., run), each run contiguous, ours holds the axes in `order` (ours axis a is
// source axis order[a]): JetMoE's attention experts, whose heads RouteLab numbers expert-fastest.
struct Source {
    std::string ours, hf;
    uint64_t first = 0;
    std::vector<int64_t> src_shape;
    std::vector<int64_t> dims;
    std::vector<int> order;
    int64_t run = 0;
};

// The source element where ours' run r starts (a reordered source), relative to `first`.
uint64_t source_run_offset(const Source& s, uint64_t r) {
    const size_t k = s.dims.size();
    std::vector<int64_t> at(k);
    for (size_t a = k; a-- > 0;) {  // ours' index, last axis fastest
        const int64_t n = s.dims[s.order[a]];
        at[s.order[a]] = (int64_t)(r % n);
        r /= n;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < k; i++) off = off * s.dims[i] + at[i];
    return off * s.run;
}

// JetMoE (modeling_jetmoe.py JetMoeMoA / JetMoeAttention): expert e's query rows input_linear[e]
// (KV*D, C) and output columns output_linear[e] (C, KV*D) become heads i*E + e, i its kv head (the
// attention repeats K/V by tiling, so query head j of expert e reads kv head j: with heads numbered
// expert-fastest, head h reads kv head h / E, the standard grouping); kv_proj is [K; V].
void jetmoe_attention_sources(const ModelConfig& c, int l, std::vector<Source>& s) {
    const std::string o = "layers." + std::to_string(l) + ".", a = "model.layers." + std::to_string(l) + ".self_attention.";
    const int64_t E = c.attention.heads.n_experts, KV = c.n_kv_heads, D = c.head_dim, C = c.d_model, A = KV * D;
    s.push_back({o + "attn.wq", a + "experts.input_linear.weight", 0, {E, A, C}, {E, KV}, {1, 0}, D * C});
    s.push_back({o + "attn.wk", a + "kv_proj.weight", 0, {2 * A, C}});
    s.push_back({o + "attn.wv", a + "kv_proj.weight", (uint64_t)(A * C), {2 * A, C}});
    s.push_back({o + "attn.wo", a + "experts.output_linear.weight", 0, {E, C, A}, {E, C, KV}, {1, 2, 0}, D});
    s.push_back({o + "attn.router.w_routed", a + "experts.router.layer.weight"});
    if (c.attention.out_bias) s.push_back({o + "attn.bo", a + "experts.bias"});
}

void expert_sources(const ModelConfig& c, HfFamily f, int l, std::vector<Source>& s) {
    const std::string o = "layers." + std::to_string(l) + ".moe.", p = "model.layers." + std::to_string(l) + ".";
    const int64_t E = c.moe.n_experts, I = c.moe.d_ff_expert, C = c.d_model;
    if (f == HfFamily::granitemoe || f == HfFamily::jetmoe) {
        // GraniteMoeMoE / JetMoeMoE: input_linear (E, 2I, C) = [gate; up], output_linear (E, C, I)
        const std::string b = p + (f == HfFamily::jetmoe ? "mlp." : "block_sparse_moe.");
        s.push_back({o + "router", b + "router.layer.weight"});
        for (int64_t e = 0; e < E; e++) {
            const std::string x = o + "experts." + std::to_string(e) + ".";
            s.push_back({x + "w_gate", b + "input_linear.weight", (uint64_t)(e * 2 * I * C), {E, 2 * I, C}});
            s.push_back({x + "w_up", b + "input_linear.weight", (uint64_t)((e * 2 + 1) * I * C), {E, 2 * I, C}});
            s.push_back({x + "w_down", b + "output_linear.weight", (uint64_t)(e * C * I), {E, C, I}});
        }
        if (c.moe.out_bias) s.push_back({o + "out_bias", b + "bias"});
        return;
    }
    const bool mixtral = f == HfFamily::mixtral;
    const std::string blk = p + (mixtral ? "block_sparse_moe." : "mlp.");
    s.push_back({o + "router", blk + "gate.weight"});
    for (int64_t e = 0; e < E; e++) {  // Mixtral: w1 gate, w3 up, w2 down
        const std::string x = o + "experts." + std::to_string(e) + ".", h = blk + "experts." + std::to_string(e) + ".";
        s.push_back({x + "w_gate", h + (mixtral ? "w1.weight" : "gate_proj.weight")});
        s.push_back({x + "w_up", h + (mixtral ? "w3.weight" : "up_proj.weight")});
        s.push_back({x + "w_down", h + (mixtral ? "w2.weight" : "down_proj.weight")});
    }
    for (int e = 0; e < c.moe.n_shared_experts; e++) {  // Qwen2-MoE: one shared expert and its gate
        const std::string x = o + "shared." + std::to_string(e) + ".";
        s.push_back({x + "w_gate", blk + "shared_expert.gate_proj.weight"});
        s.push_back({x + "w_up", blk + "shared_expert.up_proj.weight"});
        s.push_back({x + "w_down", blk + "shared_expert.down_proj.weight"});
    }
    if (c.moe.shared_expert_gate) s.push_back({o + "shared_gate", blk + "shared_expert_gate.weight"});
}

// Every tensor of the layout and where it comes from, in layout order.
std::vector<Source> hf_sources(const ModelConfig& c, HfFamily f) {
    std::vector<Source> s;
    s.push_back({"tok_emb", "model.embed_tokens.weight"});
    for (int l = 0; l < c.n_layers; l++) {
        const std::string o = "layers." + std::to_string(l) + ".", p = "model.layers." + std::to_string(l) + ".";
        s.push_back({o + "attn_norm", p + "input_layernorm.weight"});
        if (f == HfFamily::jetmoe) jetmoe_attention_sources(c, l, s);
        else
            for (const char* x : {"q", "k", "v", "o"})
                s.push_back({o + "attn.w" + x, p + "self_attn." + x + "_proj.weight"});
        if (c.attention.qkv_bias)
            for (const char* x : {"q", "k", "v"}) s.push_back({o + "attn.b" + x, p + "self_attn." + x + "_proj.bias"});
        if (c.attention.qk_norm != QkNorm::none) {
            s.push_back({o + "attn.q_norm", p + "self_attn.q_norm.weight"});
            s.push_back({o + "attn.k_norm", p + "self_attn.k_norm.weight"});
        }
        s.push_back({o + "ffn_norm", p + "post_attention_layernorm.weight"});
        if (config_layer_sparse(c, l)) {
            expert_sources(c, f, l, s);
        } else {
            for (const char* x : {"gate", "up", "down"})
                s.push_back({o + "ffn.w_" + x, p + "mlp." + x + "_proj.weight"});
        }
    }
    s.push_back({"final_norm", "model.norm.weight"});
    if (!c.tie_embeddings) s.push_back({"lm_head", "lm_head.weight"});
    return s;
}

// The weight files: the shards the index names, or model.safetensors.
Result<std::vector<std::string>> shard_files(const std::string& dir) {
    const fs::path index = fs::path(dir) / "model.safetensors.index.json";
    std::error_code ec;
    if (!fs::exists(index, ec)) {
        const fs::path one = fs::path(dir) / "model.safetensors";
        if (fs::is_regular_file(one, ec)) return std::vector<std::string>{one.string()};
        return Status::error("'" + dir + "': no model.safetensors or model.safetensors.index.json; download the "
                             "*.safetensors weights into the folder (RouteLab does not read .bin or .gguf files)");
    }
    auto j = hf_json_read(index.string(), "download model.safetensors.index.json again");
    if (!j) return j.status;
    if (!j->is_object() || !j->contains("weight_map") || !(*j)["weight_map"].is_object())
        return Status::error("'" + index.string() + "': no \"weight_map\" object; download it again");
    std::set<std::string> names;
    for (const json& v : (*j)["weight_map"]) {
        const std::string n = v.is_string() ? v.get<std::string>() : "";
        if (n.empty() || n.find('/') != std::string::npos || n == "." || n == "..")
            return Status::error("'" + index.string() + "': the weight map names a shard " + hf_json_short(v) +
                                 " that is not a file name; download it again");
        names.insert(n);
    }
    std::vector<std::string> out;
    for (const auto& n : names) {
        const fs::path p = fs::path(dir) / n;
        if (!fs::is_regular_file(p, ec))
            return Status::error("'" + index.string() + "': shard '" + n + "' is not in the folder; the download is "
                                 "incomplete: download the missing shard");
        out.push_back(p.string());
    }
    return out;
}

struct Found {
    const MappedTensor* t;
    const std::string* file;
};
using TensorIndex = std::map<std::string, Found>;

// Every checkpoint tensor by name, each in one shard only.
Result<TensorIndex> tensor_index(const std::vector<MappedSafetensors>& files) {
    TensorIndex index;
    for (const MappedSafetensors& f : files)
        for (const auto& [name, t] : f.tensors)
            if (!index.emplace(name, Found{&t, &f.path}).second)
                return Status::error("'" + f.path + "': tensor '" + name + "' is also in another shard; download the "
                                     "model again");
    return index;
}

// Before a byte is allocated: every source is in the checkpoint with the shape config.json gives it,
// and every checkpoint tensor is some source's.
Status sources_check(const Layout& layout, const std::vector<Source>& sources, const TensorIndex& index,
                     const HfModelInfo& info) {
    std::set<std::string> used;
    for (const Source& s : sources) {
        const TensorSpec* spec = layout.find(s.ours);
        if (!spec) return Status::error("'" + info.dir + "': internal: no tensor " + s.ours + " in the layout");
        auto it = index.find(s.hf);
        if (it == index.end())
            return Status::error("'" + info.dir + "': tensor '" + s.hf + "' is missing from the weights; the download is "
                                 "incomplete or config.json does not match them: download the model again");
        const std::vector<int64_t> want = s.src_shape.empty()
                                              ? std::vector<int64_t>(spec->shape.begin(), spec->shape.end())
                                              : s.src_shape;
        if (it->second.t->shape != want)
            return Status::error("'" + *it->second.file + "': tensor '" + s.hf + "' has shape " +
                                 shape_text(it->second.t->shape) + " but config.json makes it " + shape_text(want) +
                                 "; the weights and config.json are from different models: download both again");
        used.insert(s.hf);
    }
    // Left alone: RoPE tables some older files store, and a tied model's copy of its LM head, which
    // transformers replaces with embed_tokens at load (PreTrainedModel.tie_weights) and never reads.
    const bool tied = !layout.find("lm_head");
    for (const auto& [name, found] : index)
        if (!used.count(name) && name.find("rotary_emb.inv_freq") == std::string::npos && !(tied && name == "lm_head.weight"))
            return Status::error("'" + *found.file + "': tensor '" + name + "' has no place in a " + info.architecture +
                                 " as config.json describes it; RouteLab would ignore it and compute something "
                                 "else, so the model is not opened");
    return Status::ok();
}

bool bf16_in_place(const Source& s, const TensorIndex& index) {
    if (s.run > 0) return false;  // reordered: copied as float32
    const MappedTensor& t = *index.at(s.hf).t;
    return t.dtype == Dtype::bf16 && reinterpret_cast<uintptr_t>(t.data) % alignof(uint16_t) == 0;
}

// The tensors of a BF16 checkpoint read in place from the mapped file (their views: mapped_bind):
// every matrix the forward only multiplies x W^T by (hf_held_name), and, when the embeddings are tied,
// tok_emb for the LM head's product (its lookup keeps reading the float32 copy).
std::set<std::string> mapped_names(const ModelConfig& c, const std::vector<Source>& sources, const TensorIndex& index) {
    std::set<std::string> out;
    for (const Source& s : sources)
        if ((hf_held_name(s.ours) || (c.tie_embeddings && s.ours == "tok_emb")) && bf16_in_place(s, index))
            out.insert(s.ours);
    return out;
}

// Where each tensor held as BF16 lies: in the mapped file (mapped_views) or packed (mapped_pack).
using Bf16Views = std::map<std::string, Bf16Weight>;

Bf16Views mapped_views(const std::vector<Source>& sources, const TensorIndex& index, const std::set<std::string>& mapped) {
    Bf16Views at;
    for (const Source& s : sources)
        if (mapped.count(s.ours)) at[s.ours] = {reinterpret_cast<const uint16_t*>(index.at(s.hf).t->data) + s.first, false};
    return at;
}

// The model's BF16 views pointed at `at`.
void mapped_bind(Model& m, const Bf16Views& at) {
    auto get = [&](const std::string& name) {
        auto it = at.find(name);
        return it == at.end() ? Bf16Weight{} : it->second;
    };
    auto bind = [&](ExpertWeights& e, const std::string& prefix) {
        e.bf16_gate = get(prefix + ".w_gate"), e.bf16_up = get(prefix + ".w_up"), e.bf16_down = get(prefix + ".w_down");
    };
    for (int l = 0; l < m.cfg.n_layers; l++) {
        const std::string p = "layers." + std::to_string(l) + ".";
        LayerWeights& L = m.w.layers[l];
        L.bf16_wq = get(p + "attn.wq"), L.bf16_wk = get(p + "attn.wk"), L.bf16_wv = get(p + "attn.wv");
        L.bf16_wo = get(p + "attn.wo");
        L.bf16_gate = get(p + "ffn.w_gate"), L.bf16_up = get(p + "ffn.w_up"), L.bf16_down = get(p + "ffn.w_down");
        MoeWeights& w = L.moe;
        for (size_t e = 0; e < w.experts.size(); e++) bind(w.experts[e], p + "moe.experts." + std::to_string(e));
        for (size_t e = 0; e < w.shared.size(); e++) bind(w.shared[e], p + "moe.shared." + std::to_string(e));
    }
    m.w.bf16_head = get(m.cfg.tie_embeddings ? "tok_emb" : "lm_head");
}

// The mapped experts' pages brought in at open, in 64 MiB pieces over the threads (MADV_POPULATE_READ:
// the kernel fills the page tables in bulk; found per 4 KiB fault in the first forward, the 2.4 GB of
// granite-3.0-1b-a400m's experts cost that forward ~2.5 s more). Where the kernel predates it (5.14),
// the first forward faults them in.
void mapped_prefault(const std::vector<Source>& sources, const TensorIndex& index, const std::set<std::string>& mapped) {
    std::vector<std::pair<uintptr_t, uintptr_t>> ranges;  // page-aligned [begin, end)
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), piece = (uintptr_t)64 << 20;
    std::set<const MappedTensor*> seen;  // Granite's fused tensors are the source of 2E slices
    for (const Source& s : sources) {
        const MappedTensor* t = index.at(s.hf).t;
        if (!mapped.count(s.ours) || !seen.insert(t).second) continue;
        const uintptr_t b = reinterpret_cast<uintptr_t>(t->data) / page * page,
                        e = reinterpret_cast<uintptr_t>(t->data) + t->numel * sizeof(uint16_t);
        for (uintptr_t p = b; p < e; p += piece) ranges.push_back({p, std::min(e, p + piece)});
    }
    parallel_for((int)ranges.size(), true, [&](int i) {
        ::madvise(reinterpret_cast<void*>(ranges[i].first), ranges[i].second - ranges[i].first, MADV_POPULATE_READ);
    }, /*dynamic=*/true);
}

// madvise over the whole pages inside [p, p + bytes).
void pages_advise(const void* p, uint64_t bytes, int advice) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = reinterpret_cast<uintptr_t>(p);
    const uintptr_t b = (a + page - 1) / page * page, e = (a + bytes) / page * page;
    if (e > b) ::madvise(reinterpret_cast<void*>(b), e - b, advice);
}

// With the AVX512-BF16 kernel asked for (gemm_bf16_kernel() == bf16), the mapped matrices are packed once
// into one buffer (bf16_pack: what gemm_bf16w_packed reads without copying weight blocks per product),
// which m.held keeps. One source tensor at a time over the threads: its pages read in
// (MADV_POPULATE_READ), its matrices packed, then its pages dropped from this process (MADV_DONTNEED;
// they stay in the page cache), so the peak stays near one copy of the weights, not two.
Bf16Views mapped_pack(Model& m, const std::vector<Source>& sources, const TensorIndex& index,
                      const std::set<std::string>& mapped) {
    struct Job {
        std::string ours;
        const uint16_t* src;
        int N, K;
        uint64_t at;  // offset in the packed buffer, elements
    };
    const Layout full = model_param_layout(m.cfg);
    std::map<const MappedTensor*, std::vector<Job>> by_tensor;  // Granite's fused tensors hold 2E matrices
    uint64_t total = 0;
    for (const Source& s : sources) {
        if (!mapped.count(s.ours)) continue;
        const TensorSpec& spec = *full.find(s.ours);
        const MappedTensor* t = index.at(s.hf).t;
        const Job j{s.ours, reinterpret_cast<const uint16_t*>(t->data) + s.first, spec.shape[0], spec.shape[1], total};
        total += bf16_packed_elements(j.N, j.K);  // a multiple of 64 elements: every matrix starts 64-byte aligned
        by_tensor[t].push_back(j);
    }
    auto buffer = std::shared_ptr<uint16_t>(static_cast<uint16_t*>(::operator new(total * sizeof(uint16_t), std::align_val_t{64})),
                                            [](uint16_t* p) { ::operator delete(p, std::align_val_t{64}); });
    pages_advise(buffer.get(), total * sizeof(uint16_t), MADV_HUGEPAGE);
    std::vector<std::pair<const MappedTensor*, const std::vector<Job>*>> tensors;
    for (const auto& kv : by_tensor) tensors.push_back({kv.first, &kv.second});
    parallel_for((int)tensors.size(), true, [&](int i) {
        const MappedTensor& t = *tensors[i].first;
        const uint64_t bytes = t.numel * sizeof(uint16_t);
        pages_advise(t.data, bytes, MADV_POPULATE_READ);
        for (const Job& j : *tensors[i].second) bf16_pack(j.src, j.N, j.K, buffer.get() + j.at);
        pages_advise(t.data, bytes, MADV_DONTNEED);
    }, /*dynamic=*/true);
    Bf16Views at;
    for (const auto& kv : by_tensor)
        for (const Job& j : kv.second) at[j.ours] = {buffer.get() + j.at, true};
    m.held.push_back(std::shared_ptr<const void>(buffer, buffer.get()));
    return at;
}

// The checked sources held in m's parameters, widened in 1M-element pieces over the threads: the time
// goes to page faults (the mapped file read in, the arena written), which both cores take at once.
void weights_fill(Model& m, const std::vector<Source>& sources, const TensorIndex& index) {
    struct Piece {
        const Source* s;
        uint64_t begin, n;  // elements of the source's slice
    };
    constexpr uint64_t k_piece = 1 << 20;
    std::vector<Piece> pieces;
    for (const Source& s : sources) {
        const TensorSpec* spec = m.layout.find(s.ours);
        if (!spec) continue;  // held in the mapping (mapped_bind)
        const uint64_t run = s.run > 0 ? (uint64_t)s.run : 1, step = std::max<uint64_t>(1, k_piece / run) * run;
        for (uint64_t b = 0; b < spec->numel; b += step) pieces.push_back({&s, b, std::min(step, spec->numel - b)});
    }
    parallel_for((int)pieces.size(), true, [&](int i) {
        const Piece& p = pieces[i];
        float* dst = m.params.data.data() + m.layout.find(p.s->ours)->offset;
        const MappedTensor& t = *index.at(p.s->hf).t;
        if (p.s->run == 0) return tensor_to_f32(dst + p.begin, t, p.s->first + p.begin, p.n);
        const uint64_t run = (uint64_t)p.s->run;
        for (uint64_t e = p.begin; e < p.begin + p.n; e += run)
            tensor_to_f32(dst + e, t, p.s->first + source_run_offset(*p.s, e / run), run);
    }, /*dynamic=*/true);
}

// need: bytes the step will hold in all (already held ones included); what: what they are.
Status memory_fits(const HfModelInfo& info, double need, const std::string& what) {
    if (const char* off = std::getenv("ROUTELAB_MEMORY_CHECK"); off && std::string(off) == "0") return Status::ok();
    const MemoryAvailable a = memory_available();
    if (a.bytes <= 0 || need <= a.bytes) return Status::ok();
    return Status::error("'" + info.dir + "': " + info.architecture + " needs " + memory_bytes_text(need) + " (" + what +
                         "); " + memory_bytes_text(a.bytes) + " is available (" + a.source +
                         "): close other programs, use a machine with more memory or probe fewer tokens");
}

}  // namespace

double hf_model_bytes(const ModelConfig& c, int tokens, uint64_t mapped_elements, bool bf16_tied_head) {
    const double head = bf16_tied_head ? (double)c.vocab_size * c.d_model * sizeof(uint16_t) : 0.0;
    return ((double)model_param_layout(c).total() - (double)mapped_elements) * sizeof(float) +
           (double)mapped_elements * sizeof(uint16_t) + head +
           (double)activations_bytes(c, 1, std::min(tokens, c.seq_len)).total();
}

bool hf_held_name(const std::string& n) {
    auto ends = [&](const char* tail) {
        const size_t k = std::strlen(tail);
        return n.size() >= k && n.compare(n.size() - k, k, tail) == 0;
    };
    return n.find(".moe.experts.") != std::string::npos || n.find(".moe.shared.") != std::string::npos ||
           ends(".attn.wq") || ends(".attn.wk") || ends(".attn.wv") || ends(".attn.wo") || ends(".ffn.w_gate") ||
           ends(".ffn.w_up") || ends(".ffn.w_down") || n == "lm_head";
}

uint64_t hf_held_elements(const ModelConfig& c) {
    uint64_t n = 0;
    const Layout layout = model_param_layout(c);  // kept: a range-for over a temporary's member dangles
    for (const TensorSpec& s : layout.specs())
        if (hf_held_name(s.name)) n += s.numel;
    return n;
}

namespace {

// The folder's tokenizer, which must not name ids beyond the model's vocabulary.
Status tokenizer_open(HfModel& m) {
    if (m.info.tokenizer_path.empty()) return Status::ok();
    auto t = HfTokenizer::load(m.info.tokenizer_path);
    if (!t) return t.status;
    if (t->vocab_size() > m.cfg.model.vocab_size)
        return Status::error("tokenizer '" + m.info.tokenizer_path + "': " + std::to_string(t->vocab_size()) +
                             " tokens, but config.json's vocab_size is " + std::to_string(m.cfg.model.vocab_size) +
                             "; the tokenizer is from another model: download the folder's own again");
    m.tok = Tokenizer::from_hf(*t, m.info.eos_id);
    return Status::ok();
}

}  // namespace

Result<std::unique_ptr<HfModel>> hf_model_open(const std::string& dir, bool tokenizer) {
    auto out = std::make_unique<HfModel>();
    auto cfg = hf_config_read(dir, &out->info);
    if (!cfg) return cfg.status;
    out->cfg = *cfg;
    if (tokenizer)
        if (Status s = tokenizer_open(*out); !s) return s;
    auto names = shard_files(dir);
    if (!names) return names.status;
    std::vector<MappedSafetensors> files;
    std::set<std::string> dtypes;
    for (const std::string& n : *names) {
        auto f = safetensors_map(n);
        if (!f) return f.status;
        out->info.weight_bytes += f->file_bytes;
        for (const auto& kv : f->tensors) dtypes.insert(dtype_name(kv.second.dtype));
        files.push_back(std::move(*f));
    }
    out->info.shards = *names;
    out->info.dtype = dtypes.size() == 1 ? *dtypes.begin() : "mixed";
    auto index = tensor_index(files);
    if (!index) return index.status;
    const std::vector<Source> sources = hf_sources(out->cfg.model, hf_family(out->info.architecture));
    if (Status s = sources_check(model_param_layout(out->cfg.model), sources, *index, out->info); !s) return s;
    const std::set<std::string> mapped = mapped_names(out->cfg.model, sources, *index);
    std::set<std::string> elsewhere = mapped;  // no float32 copy: all but a tied tok_emb, which the lookup reads
    elsewhere.erase("tok_emb");
    uint64_t mapped_elements = 0;
    const Layout full = model_param_layout(out->cfg.model);
    for (const std::string& n : elsewhere) mapped_elements += full.find(n)->numel;
    const std::string what = std::string(mapped.empty() ? "its weights as float32" : "its matrices as BF16, norms and embeddings as float32") +
                             " and a 256-token probe; " + memory_bytes_text((double)out->info.weight_bytes) +
                             " on disk as " + out->info.dtype;
    const double bytes = hf_model_bytes(out->cfg.model, 256, mapped_elements, mapped.count("tok_emb") > 0);
    if (Status s = memory_fits(out->info, bytes, what); !s) return s;
    model_create_frozen(out->model, out->cfg.model, elsewhere);
    weights_fill(out->model, sources, *index);
    out->packed = !mapped.empty() && gemm_bf16_kernel() == Bf16Kernel::bf16;
    if (out->packed) {
        try {
            mapped_bind(out->model, mapped_pack(out->model, sources, *index, mapped));
        } catch (const std::bad_alloc&) {  // reachable with ROUTELAB_MEMORY_CHECK=0
            return Status::error("'" + dir + "': no memory to pack " + out->info.architecture +
                                 "'s BF16 matrices for --bf16-activations; open it without that option or close other programs");
        }
    } else {
        mapped_bind(out->model, mapped_views(sources, *index, mapped));
        mapped_prefault(sources, *index, mapped);
    }
    for (const MappedSafetensors& f : files) out->model.held.push_back(f.mapping);
    out->mapped_elements = mapped_elements;
    return out;
}

Status hf_probe_fits(const HfModel& m, int tokens) {
    // The weights are held already; the activations of `tokens` (every layer's attention map among them)
    // come on top.
    const double acts = (double)activations_bytes(m.cfg.model, 1, std::max(1, tokens)).total();
    if (Status s = memory_fits(m.info, acts, "the activations of a " + std::to_string(tokens) + "-token probe"); !s)
        return s;
    return Status::ok();
}

}  // namespace rl
