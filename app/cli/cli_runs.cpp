// routelab-cli runs: list, show, export and delete the workspace's stored runs.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli.h"
#include "io/run_recorder.h"
#include "util/atomic_file.h"

using namespace rl;
namespace fs = std::filesystem;

namespace cli {

namespace {

std::string fmt_loss(float v) {
    char b[24];
    if (v < 0 || !std::isfinite(v)) return "-";
    std::snprintf(b, sizeof b, "%.4f", v);
    return b;
}

nlohmann::json run_json(const RunRecord& r) {
    return {{"id", r.id}, {"name", r.name}, {"status", run_status_name(r.status)}, {"status_message", r.status_message},
            {"steps", r.steps}, {"final_loss", r.final_loss}, {"val_loss", r.val_loss}, {"started", r.created},
            {"ended", r.ended}, {"corpus", r.corpus}, {"seed", r.seed}, {"sweep", r.sweep}, {"tags", r.tags},
            {"colour", r.colour}, {"checkpoint", r.checkpoint}, {"load_cv", r.load_cv}, {"head_cv", r.head_cv},
            {"dropped", r.dropped}, {"tok_per_s", r.tok_per_s}, {"wall_s", r.wall_s}};
}

}  // namespace

int cmd_runs(const Args& a) {
    if (a.pos.empty()) return usage("runs needs list, show ID, export ID --csv F or delete ID");
    const std::string sub = a.pos[0];
    const std::string ws = workspace_of(a), db = workspace_store_path(ws);
    if (!fs::exists(db)) return fail("no run store in '" + ws + "' (runs.sqlite); train a run first or pass --workspace DIR");
    auto st = run_store_open(db);
    if (!st) return fail(st.status.msg);
    if (sub == "list") {
        if (a.pos.size() > 1) return usage("runs list takes no id");
        auto runs = run_store_list(*st);
        if (!runs) return fail(runs.status.msg);
        if (a.flag("json")) {
            nlohmann::json j = nlohmann::json::array();
            for (const auto& r : *runs) j.push_back(run_json(r));
            std::cout << j.dump(2) << "\n";
            return 0;
        }
        std::printf("%5s  %-24s %-12s %7s %10s %10s  %-20s %s\n", "id", "name", "status", "steps", "final", "val", "started", "sweep");
        for (const auto& r : *runs)
            std::printf("%5lld  %-24s %-12s %7d %10s %10s  %-20s %s\n", (long long)r.id, r.name.substr(0, 24).c_str(),
                        run_status_name(r.status), r.steps, fmt_loss(r.final_loss).c_str(), fmt_loss(r.val_loss).c_str(),
                        r.created.c_str(), r.sweep.c_str());
        return 0;
    }
    if (a.pos.size() != 2) return usage("runs " + sub + " needs a run id (routelab-cli runs list shows them)");
    long long id;
    if (!parse_int(a.pos[1], 1, (1LL << 62), id)) return usage("'" + a.pos[1] + "' is not a run id");
    auto r = run_store_get(*st, id);
    if (!r) return fail(r.status.msg);
    if (sub == "show") {
        nlohmann::json j = run_json(*r);
        j["config"] = nlohmann::json::parse(r->config_json, nullptr, false);
        auto cks = run_store_checkpoints(*st, id);
        if (cks)
            for (const auto& [step, path] : *cks) j["checkpoints"].push_back({{"step", step}, {"path", path}});
        std::cout << j.dump(2) << "\n";
        return 0;
    }
    if (sub == "export") {
        if (!a.has("csv")) return usage("runs export ID needs --csv F");
        auto c = run_store_curve(*st, id);
        if (!c) return fail(c.status.msg);
        const std::string f = a.opt.at("csv");
        if (Status w = atomic_file_write(f, curve_to_csv(*c)); !w) return fail(w.msg);
        std::fprintf(stderr, "wrote %s: %zu steps of run %lld\n", f.c_str(), c->size(), id);
        return 0;
    }
    if (sub == "delete") {
        if (r->status == RunStatus::running)
            return fail("run " + std::to_string(id) + " is running; stop it first (or it reads interrupted once its process is gone)");
        if (Status s = run_store_delete(*st, id); !s) return fail(s.msg);
        std::fprintf(stderr, "deleted run %lld (%s); its files on disk are kept\n", id, r->name.c_str());
        return 0;
    }
    return usage("runs has list, show, export and delete, not '" + sub + "'");
}

}  // namespace cli
