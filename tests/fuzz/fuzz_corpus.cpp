// Bytes as a user's corpus, written once as .txt and once as .json (RustGPT's array of strings) ->
// corpus_load_file, dataset_build (split, word tokenizer capped at a small vocabulary so each input
// stays fast, encoding) and the batch samplers when the streams are long enough.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "train/corpus.h"

namespace {

void fuzz_one(const std::string& path) {
    auto docs = rl::corpus_load_file(path);
    if (!docs) {
        rl_fuzz::require(!docs.status.msg.empty(), "corpus_load_file failed without a message");
        return;
    }
    rl::DataConfig d;
    d.corpus = path;
    d.tokenizer = "word";
    d.vocab_size = 64;
    auto ds = rl::dataset_build(d);
    if (!ds) {
        rl_fuzz::require(!ds.status.msg.empty(), "dataset_build failed without a message");
        return;
    }
    constexpr int B = 2, T = 8;
    std::vector<int> tokens(B * T), targets(B * T);
    std::vector<uint8_t> domains(B * T);
    std::mt19937_64 rng(1);
    if (ds->train.ids.size() > T) rl::batch_sample(ds->train, B, T, rng, tokens.data(), targets.data(), domains.data());
    if (ds->val.ids.size() > T) rl::batch_fixed(ds->val, B, T, 0, 2, tokens.data(), targets.data(), domains.data());
    (void)ds->tok.decode(ds->val.ids);
    auto again = rl::Tokenizer::from_json(ds->tok.to_json());
    rl_fuzz::require(again.is_ok() && again->vocab_size() == ds->tok.vocab_size(),
                     "a trained word tokenizer does not load back from its own JSON");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::string txt = rl_fuzz::temp_path("corpus.txt"), json = rl_fuzz::temp_path("corpus.json");
    rl_fuzz::write_file(txt, data, size);
    rl_fuzz::write_file(json, data, size);
    fuzz_one(txt);
    fuzz_one(json);
    return 0;
}
