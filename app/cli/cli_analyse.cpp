// routelab-cli analyse: what a model's experts specialise in on the user's own text (issue 24;
// metrics/domain_analysis.h):
//   analyse --model DIR | --checkpoint F [--domain NAME=FILE ...] [--tokens N] [--context N]
//           [the probe's routing interventions] [--bf16-activations] --json F
// Without --domain, the embedded corpus's domains (facts, stories, arithmetic, code, dialogue).
#include <chrono>
#include <cstdio>

#include "cli.h"
#include "metrics/domain_analysis.h"
#include "util/atomic_file.h"

using namespace rl;

namespace cli {

namespace {

std::string layer_line(const LayerAnalysis& l) {
    char b[256];
    std::snprintf(b, sizeof b, "layer %d: NMI(first expert; domain) %.3f (random router of the same load %.3f), "
                               "vocabulary specialisation %.2f", l.layer, l.nmi_domain, l.nmi_domain_random_router,
                  l.vocab_specialisation);
    std::string s = b;
    if (l.next_layer >= 0) {
        std::snprintf(b, sizeof b, ", NMI(first expert; first expert in layer %d) %.3f", l.next_layer, l.nmi_next);
        s += b;
    }
    return s;
}

}  // namespace

int cmd_analyse(const Args& a) {
    if (!a.has("json")) return usage("analyse needs --json F (the file to write)");
    long long cap = 50000, context = 512;
    if (a.has("tokens") && !parse_int(a.opt.at("tokens"), 1, 100000000, cap))
        return usage("--tokens must be an integer in 1..100000000 (tokens per domain)");
    Interventions iv;
    if (int rc = interventions_from_args(a, iv)) return rc;
    auto om = open_model(a, "analyse");
    if (!om) return fail(om.status.msg);
    if (Status s = om->intervene(iv); !s) return fail("analyse: " + s.msg);
    if (int rc = routing_files_from_args(a, om->model_mut())) return rc;
    const ModelConfig& c = om->model().cfg;
    if (c.moe.kind == FfnRouting::dense) return fail("analyse: this model has no experts (its FFN is dense)");
    context = std::min<long long>(context, c.seq_len);
    if (a.has("context") && !parse_int(a.opt.at("context"), 1, c.seq_len, context))
        return usage("--context must be an integer in 1.." + std::to_string(c.seq_len) + " (the model's)");
    if (om->hf)
        if (Status s = hf_probe_fits(*om->hf, (int)context); !s) return fail(s.msg + " (or pass a smaller --context)");
    std::vector<AnalysisDomain> domains;
    if (auto d = analysis_domains_read(a.domains, om->tok(), (size_t)cap); !d) {
        const bool spec = d.status.msg.rfind("a domain is", 0) == 0;  // the flag's form, not a file
        return spec ? usage("--domain: " + d.status.msg) : fail("analyse: " + d.status.msg);
    } else {
        domains = std::move(*d);
    }
    AnalysisOptions o;
    o.context = (int)context;
    const auto start = std::chrono::steady_clock::now();
    auto last = start;
    o.progress = [&](int64_t done, int64_t total) {  // a line every 5 s
        if (seconds_since(last) < 5 && (done < total || seconds_since(start) < 5)) return;
        last = std::chrono::steady_clock::now();
        std::fprintf(stderr, "analyse: %lld of %lld tokens\n", (long long)done, (long long)total);
    };
    const Analysis an = analysis_run(om->model(), om->tok(), domains, o);
    nlohmann::json j = analysis_to_json(an);
    j["interventions"] = iv.describe();
    Status s = atomic_file_write(a.opt.at("json"), [&](std::FILE* f) {
        // Byte-level tokens may be part of a UTF-8 character: written with U+FFFD in their place.
        const std::string out = j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
        std::fwrite(out.data(), 1, out.size(), f);
        return Status::ok();
    });
    if (!s) return fail("analyse: " + s.msg);
    for (const LayerAnalysis& l : an.layers) std::printf("%s\n", layer_line(l).c_str());
    std::fprintf(stderr, "analyse: %lld tokens of %zu domains in %.1f s -> %s\n", (long long)an.tokens, domains.size(),
                 an.seconds, a.opt.at("json").c_str());
    return 0;
}

}  // namespace cli
