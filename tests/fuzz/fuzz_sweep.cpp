// Bytes as a sweep file -> sweep_parse; a sweep that parses is searched (tune_begin, then up to 300
// jobs of tune_next / tune_report with made-up metrics, one run in seven failing; the first 20 jobs'
// run configs built, each a JSON round trip of the config under the sanitizers) over the default
// config. The search must keep its own rules: a run goes on from the step it stopped at, the steps it
// spends stay within the budget, a pruned point has a reason, and its summaries, front and importance
// come out for whatever it reached.
#include <cmath>
#include <cstdint>
#include <map>
#include <string>

#include "config/sweep_search.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    auto sw = rl::sweep_parse(text, "fuzz");
    if (!sw) {
        rl_fuzz::require(!sw.status.msg.empty(), "sweep_parse failed without a message");
        return 0;
    }
    auto t = rl::tune_begin(*sw, rl::Config{});
    if (!t) {
        rl_fuzz::require(!t.status.msg.empty(), "tune_begin failed without a message");
        return 0;
    }
    std::map<std::pair<int, int>, int> at;  // (point, seed) -> the step its run stopped at
    long long spent = 0;
    for (int n = 0; n < 300; n++) {
        auto j = rl::tune_next(*t);
        if (!j) break;
        rl_fuzz::require(j->point >= 0 && j->point < (int)t->points.size() && j->replicate >= 0 && j->replicate < sw->seeds,
                         "a job names a run the search does not have");
        if (j->kind == rl::TuneJob::Kind::prune) {
            rl_fuzz::require(!j->why.empty(), "a pruned run without a reason");
            continue;
        }
        int& stopped = at[{j->point, j->replicate}];
        rl_fuzz::require(j->from_step == stopped && j->to_step > j->from_step, "a run does not go on from where it stopped");
        stopped = j->to_step;
        spent += j->to_step - j->from_step;
        if (n < 20) (void)rl::tune_job_config(*t, *j);
        rl::TuneMetrics m;
        m.ok = (n % 7) != 6;
        for (size_t k = 0; k < m.v.size(); k++) m.v[k] = std::fmod(0.37 * (j->point + 1) * (k + 1) + 0.01 * j->replicate, 5.0);
        rl::tune_report(*t, *j, m);
    }
    rl_fuzz::require(sw->budget == 0 || spent <= sw->budget, "the search spent more steps than its budget");
    (void)rl::tune_summaries(*t);
    (void)rl::tune_front(*t);
    (void)rl::tune_importances(*t);
    return 0;
}
