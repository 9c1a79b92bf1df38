// routelab-cli: presets, params, train, sweep, lesson, runs, generate, probe, bench, export. Command
// and flag names are fixed (scripts and other tools call them). Exit codes: 0 ok, 1 a user error
// (message on stderr), 2 bad usage. The commands live in cli_*.cpp, one file per group (cli.h).
#include <iostream>
#include <string>
#include <vector>

#include "cli.h"
#include "tensor/gemm_bf16.h"

namespace cli {

namespace {

const char* k_usage_head = "routelab-cli — train and inspect RouteLab transformers from the terminal\n\n";
const char* k_usage_set = "--set takes any config key, e.g. --set model.attention.use_wo=true --set train.lr=0.001\n";

// One row per command: its usage lines, the options that take a value, and what runs it.
struct Command {
    const char* name;
    const char* usage;
    std::vector<std::string> options;
    int (*run)(const Args&);
    int positionals = 0;  // words that are not --options (runs: list | show ID ...)
};

// The commands that train, run and inspect models.
const std::vector<Command>& commands_run() {
    static const std::vector<Command> c = {
        {"presets", "  routelab-cli presets\n", {}, cmd_presets},
        {"params", "  routelab-cli params   --preset P | --config F | --model DIR [--vocab-size N] [--json]\n",
         {"preset", "config", "vocab-size", "set", "model"}, cmd_params},
        {"train",
         "  routelab-cli train    --preset P | --config F [--steps N] [--batch B] [--seed S]\n"
         "                        [--corpus PATH] [--out DIR] [--workspace DIR] [--set key=value ...]\n"
         "                        [--device cpu|cuda|auto]\n"
         "                        [--inject-nan-at STEP]   (tests: that step's loss is NaN; the run fails there)\n"
         "  routelab-cli train    --resume DIR [--steps N]   (go on from DIR's last save; N more steps)\n",
         {"preset", "config", "steps", "batch", "seed", "corpus", "out", "set", "workspace", "resume", "inject-nan-at",
          "device"},
         cmd_train},
        {"sweep", "  routelab-cli sweep    --grid F [--out DIR] [--workspace DIR] [--json F]   (grid, random, halving or tpe: docs/tuning.md)\n",
         {"grid", "out", "workspace", "json"}, cmd_sweep},
        {"tune-bench",
         "  routelab-cli tune-bench [--trials N] [--repeats R] [--csv F] [--svg F]\n"
         "                        (the sweeps' TPE against random search on Branin and Hartmann-6: median regret curves)\n",
         {"trials", "repeats", "csv", "svg"}, cmd_tune_bench},
        {"lesson",
         "  routelab-cli lesson   list | NAME   (a guided experiment, concluded from your own run)\n"
         "                        real-model [--model DIR] [--tokens N]  (a real checkpoint's experts, from its numbers)\n",
         {"model", "tokens"}, cmd_lesson, 1},
        {"runs",
         "  routelab-cli runs     list [--json] | show ID | export ID --csv F | delete ID   [--workspace DIR]\n",
         {"workspace", "csv"}, cmd_runs, 2},
        {"generate",
         "  routelab-cli generate --checkpoint F | --model DIR --prompt TEXT [--max-tokens N] [--temperature T]\n"
         "                        [--bf16-activations]  (a BF16 folder's matrices packed at open, at BF16 speed, PyTorch's bf16 rounding)\n"
         "                        [--top-k K] [--top-p P] [--seed S]\n",
         {"checkpoint", "model", "prompt", "max-tokens", "min-tokens", "temperature", "top-k", "top-p", "seed"}, cmd_generate},
        {"probe",
         "  routelab-cli probe    --checkpoint F | --model DIR --text TEXT [--json]\n"
         "  routelab-cli probe    --model DIR --ids 1,17,255,... --json F   (logits [T][V], moe_layers)\n"
         "                        [--bf16-activations]  (as for generate)  [--runs N]  (time N forwards)\n"
         "                        routing interventions (both forms): [--top-k K] [--renorm | --no-renorm]\n"
         "                        [--mask-experts 3,5] [--capacity-factor C] [--expert-bias F]  (calibrate's biases)\n"
         "                        [--router-weights F]  (tune-router's routers)  [--no-expert-bias]  (the selection\n"
         "                        biases held at 0: the router without them)\n",
         {"checkpoint", "text", "model", "ids", "json", "runs", "top-k", "mask-experts", "capacity-factor", "expert-bias",
          "router-weights"},
         cmd_probe},
        {"eval",
         "  routelab-cli eval     --model DIR | --checkpoint F --text-file F | --ids 1,17,... --json G\n"
         "                        [--context N] [--top-k K] [--renorm | --no-renorm] [--mask-experts 3,5]\n"
         "                        [--capacity-factor C] [--expert-bias F | --no-expert-bias] [--router-weights F]\n"
         "                        [--baseline] [--bf16-activations] [--mask-least-used K]  (each layer's K least used\n"
         "                        experts on the text, measured unchanged, masked too; \"masked\" names them)\n"
         "                        (perplexity, tokens, per layer load_cv and dropped; --baseline: the unchanged model too)\n"
         "                        [--top-k-sweep 1,2,4,8]  (one eval per top-k: perplexity against active parameters)\n",
         {"model", "checkpoint", "text-file", "ids", "json", "context", "top-k", "mask-experts", "capacity-factor",
          "expert-bias", "top-k-sweep", "router-weights", "mask-least-used"},
         cmd_eval},
        {"calibrate",
         "  routelab-cli calibrate --model DIR | --checkpoint F --text-file F | --ids 1,17,... --json G\n"
         "                        [--context N] [--rate U] [--passes N] [--bf16-activations]\n"
         "                        (expert biases that balance the load on the text, no gradients; G: the passes and\n"
         "                        the biases, which probe, eval and analyse take with --expert-bias G)\n",
         {"model", "checkpoint", "text-file", "ids", "json", "context", "rate", "passes"}, cmd_calibrate},
        {"tune-router",
         "  routelab-cli tune-router --model DIR | --checkpoint F --text-file F | --ids 1,17,... --json G\n"
         "                        [--steps N] [--lr L] [--batch B] [--context N] [--held-out S] [--save F]\n"
         "                        (router-only fine-tuning: the routers learn, every other weight frozen; G: the memory\n"
         "                        it takes, each step's loss and time, held-out perplexity and load CV before and after;\n"
         "                        --save F: the tuned routers, which probe, eval and analyse take with --router-weights F)\n",
         {"model", "checkpoint", "text-file", "ids", "json", "steps", "lr", "batch", "context", "held-out", "save"},
         cmd_tune_router},
        {"analyse",
         "  routelab-cli analyse  --model DIR | --checkpoint F [--domain NAME=FILE ...] --json G [--tokens N] [--context N]\n"
         "                        [the probe's routing interventions] [--bf16-activations]\n"
         "                        (per layer: expert x domain and its NMI, each expert's top tokens, the next layer's\n"
         "                        experts; without --domain the embedded corpus's domains; N tokens per domain, 50000)\n",
         {"model", "checkpoint", "domain", "json", "tokens", "context", "top-k", "mask-experts", "capacity-factor",
          "expert-bias", "router-weights"},
         cmd_analyse},
    };
    return c;
}

// The commands that cost, tokenize, time and export (the usage lists them after commands_run()'s).
const std::vector<Command>& commands_tools() {
    static const std::vector<Command> c = {
        {"cluster",
         "  routelab-cli cluster  --run ID [--steps N] [--workspace DIR] | --loads F | --model DIR --text-file F |\n"
         "                        --checkpoint F --text-file F  --ep N --gpus-per-node G --json OUT [--capacity-factor C]\n"
         "                        [--pad-to-capacity] [--tokens-per-rank T] [--hidden H] [--top-k K] [--expert-width F] [--dtype bf16|fp8|fp32]\n"
         "                        [--placement contiguous|balanced] [--edp D] [--nvlink GBPS] [--rdma GBPS] [--tokens N]\n"
         "                        [--context N]  (what the routing would cost with expert parallelism: per layer\n"
         "                        imbalance, expert_imbalance, a2a_bytes_per_rank, hottest_rank_bytes, dropped_share,\n"
         "                        expert_bytes_per_gpu, a time range balanced vs measured; --loads F: per layer, each\n"
         "                        expert's share of the routed assignments; --run ID: the loads a stored run kept, its last\n"
         "                        N steps, by default a quarter of the run up to 200)\n",
         {"run", "steps", "workspace", "loads", "model", "checkpoint", "text-file", "json", "ep", "gpus-per-node",
          "capacity-factor", "tokens-per-rank", "hidden", "top-k", "expert-width", "dtype", "placement", "edp", "nvlink", "rdma", "tokens", "context"},
         cmd_cluster},
        {"tokenize",
         "  routelab-cli tokenize --model DIR | --tokenizer FILE --text-file F [--no-special] --json G\n"
         "                        (ids of the whole file and of each line; FILE a tokenizer.json or tokenizer.model)\n",
         {"model", "tokenizer", "text-file", "json"}, cmd_tokenize},
        {"bench",
         "  routelab-cli bench    [--preset P | --config F] [--json F] [--seconds S] [--vocab-size N]\n"
         "                        [--checkpoint F] [--peer torch] [--set key=value ...] [--device cpu|cuda|auto]\n",
         {"preset", "config", "json", "seconds", "set", "vocab-size", "checkpoint", "peer", "device"}, cmd_bench},
        {"export",
         "  routelab-cli export   --preset P | --config F | --checkpoint F --format hf|megatron\n"
         "                        [--out F] [--weights] [--set key=value ...]\n"
         "                        [--ep N [--gpus-per-node G] [--capacity-factor C] [--pad-to-capacity]]\n"
         "                        (hf: --out is a folder for config.json, and model.safetensors with --weights;\n"
         "                        megatron with --ep: the cluster's parallelism, node-limited routing and capacity flags)\n",
         {"preset", "config", "checkpoint", "format", "out", "set", "ep", "gpus-per-node", "capacity-factor"}, cmd_export},
    };
    return c;
}

const std::vector<Command>& commands() {
    static const std::vector<Command> c = [] {
        std::vector<Command> all = commands_run();
        all.insert(all.end(), commands_tools().begin(), commands_tools().end());
        return all;
    }();
    return c;
}

bool takes(const Command& c, const std::string& option) {
    return std::find(c.options.begin(), c.options.end(), option) != c.options.end();
}


// `<command> --help`: that command's lines (and the --set note where it takes --set), exit 0.
int command_help(const Command& c) {
    std::cout << c.usage;
    if (takes(c, "set")) std::cout << "\n" << k_usage_set;
    return 0;
}

}  // namespace

std::string usage_text() {
    std::string u = k_usage_head;
    for (const Command& c : commands()) u += c.usage;
    return u + "\n" + k_usage_set;
}

}  // namespace cli

int main(int argc, char** argv) {
    using namespace cli;
    if (argc < 2) return usage("no command given");
    Args a;
    a.cmd = argv[1];
    if (a.cmd == "--help" || a.cmd == "-h" || a.cmd == "help") {
        std::cout << usage_text();
        return 0;
    }
    const auto& table = commands();
    auto it = std::find_if(table.begin(), table.end(), [&](const Command& c) { return a.cmd == c.name; });
    if (it == table.end()) return usage("unknown command '" + a.cmd + "'");
    const std::vector<std::string> bool_flags = {"json",     "sample", "weights", "no-special", "bf16-activations",
                                                "renorm", "no-renorm", "baseline", "no-expert-bias", "pad-to-capacity"};
    for (int i = 2; i < argc; i++) {
        std::string k = argv[i];
        if (k == "--help" || k == "-h") return command_help(*it);
        if (k.rfind("--", 0) != 0) {
            if ((int)a.pos.size() >= it->positionals) return usage("unexpected argument '" + k + "'");
            a.pos.push_back(k);
            continue;
        }
        k = k.substr(2);
        // A flag word that the command also takes with a value ("probe --json F") is a flag when no value follows.
        const bool no_value = i + 1 >= argc || std::string(argv[i + 1]).rfind("--", 0) == 0;
        if (std::find(bool_flags.begin(), bool_flags.end(), k) != bool_flags.end() && (!takes(*it, k) || no_value)) {
            a.flags.push_back(k);
            continue;
        }
        if (i + 1 >= argc) return usage("--" + k + " needs a value");
        if (k == "set") a.sets.push_back(argv[++i]);
        else if (k == "domain") a.domains.push_back(argv[++i]);
        else a.opt[k] = argv[++i];
    }
    for (const auto& [k, _] : a.opt)
        if (!takes(*it, k)) return usage("'" + a.cmd + "' has no option --" + k);
    if (!a.sets.empty() && !takes(*it, "set")) return usage("'" + a.cmd + "' has no option --set");
    if (!a.domains.empty() && !takes(*it, "domain")) return usage("'" + a.cmd + "' has no option --domain");
    // A BF16 model folder's experts multiplied with activations rounded to BF16 (tensor/gemm_bf16.h):
    // ~2x faster where the CPU has AVX512-BF16, ~2e-3 relative on each product.
    if (a.flag("bf16-activations")) rl::gemm_bf16_set_kernel(rl::Bf16Kernel::bf16);
    return it->run(a);
}
