#include "io/hf_inspect.h"

#include <filesystem>

#include "io/hf_model.h"

namespace rl {

Result<std::unique_ptr<TrainState>> hf_inspect_state(const std::string& dir, const DataProgress& progress) {
    auto say = [&](const std::string& stage) {
        if (progress) progress(stage, -1);
    };
    say("opening the model folder");
    auto hf = hf_model_open(dir);
    if (!hf) return hf.status;
    HfModel& m = **hf;
    if (!m.tok)
        return Status::error("'" + dir + "': no tokenizer.json or tokenizer.model; the window reads text through the "
                             "model: download the folder's tokenizer too (routelab-cli probe --ids works without one)");
    auto st = std::make_unique<TrainState>();
    st->cfg = m.cfg;
    st->cfg.name = std::filesystem::path(dir).filename().string();
    if (st->cfg.name.empty()) st->cfg.name = std::filesystem::path(dir).parent_path().filename().string();
    st->cfg.train.steps = 0;
    say("reading the embedded corpus with the model's tokenizer");
    DataConfig d = st->cfg.data;
    d.corpus = "embedded";
    auto data = dataset_build(d, &*m.tok, progress);
    if (!data) return Status::error("'" + dir + "': the embedded corpus could not be read with its tokenizer: " + data.status.msg);
    st->data = std::make_unique<Dataset>(std::move(*data));
    st->model = std::move(m.model);
    return st;
}

}  // namespace rl
