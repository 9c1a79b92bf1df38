// Safetensors I/O: round trip, exact byte layout, and that every corrupt or hostile file gives a
// one-line error naming the checkpoint instead of a crash.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include <nlohmann/json.hpp>

#include "file_limit.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& p, const std::string& bytes) {
    std::ofstream(p, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string u64_le(uint64_t v) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    return s;
}

uint64_t read_u64_le(const std::string& s) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<unsigned char>(s[i])} << (8 * i);
    return v;
}

// A hand-built file: length prefix, `header` padded to 8, then `data_bytes` zero bytes.
std::string craft(std::string header, size_t data_bytes) {
    header.append((8 - header.size() % 8) % 8, ' ');
    return u64_le(header.size()) + header + std::string(data_bytes, '\0');
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class SafetensorsTest : public ::testing::Test {
protected:
    void SetUp() override {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        dir_ = fs::temp_directory_path() /
               ("routelab_st_" + std::string(info->name()) + "_" + std::to_string(std::random_device{}()));
        fs::create_directories(dir_);
        path_ = (dir_ / "model.safetensors").string();
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    // Writes a small valid checkpoint to `path_` and returns its bytes.
    std::string write_valid() {
        const std::vector<float> w(12, 0.5f), b = {1, 2, 3};
        EXPECT_TRUE(rl::safetensors_write(path_, {{"w", {3, 4}, w.data()}, {"b", {3}, b.data()}}, {{"step", "7"}}).is_ok());
        return read_bytes(path_);
    }

    // Reads `bytes` as a checkpoint and returns the error message (failing the test if it loaded).
    std::string error_for(const std::string& bytes) {
        write_bytes(path_, bytes);
        return error_at(path_);
    }

    std::string error_at(const std::string& path) {
        const auto r = rl::safetensors_read(path);
        EXPECT_FALSE(r.is_ok());
        const std::string& msg = r.status.msg;
        EXPECT_EQ(msg.rfind("checkpoint '" + path + "': ", 0), 0u) << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
        return msg;
    }

    fs::path dir_;
    std::string path_;
};

#define EXPECT_HAS(msg, part) EXPECT_NE((msg).find(part), std::string::npos) << (msg)

TEST_F(SafetensorsTest, RoundTripKeepsNamesShapesBitsAndMetadata) {
    std::vector<float> emb(12), bias = {std::numeric_limits<float>::quiet_NaN(), -0.0f,
                                        std::numeric_limits<float>::infinity(),
                                        std::numeric_limits<float>::denorm_min(), -1e30f};
    std::vector<float> qkv(24), scalar = {3.25f};
    for (size_t i = 0; i < emb.size(); ++i) emb[i] = 0.1f * static_cast<float>(i) - 0.5f;
    for (size_t i = 0; i < qkv.size(); ++i) qkv[i] = std::sin(static_cast<float>(i));
    uint32_t payload_nan_bits = 0x7fc01234;  // a NaN payload must survive too
    std::memcpy(&bias[0], &payload_nan_bits, 4);
    const std::map<std::string, std::string> meta = {{"config", "{\"d_model\": 4}"}, {"step", "100"}, {"empty", ""}};

    ASSERT_TRUE(rl::safetensors_write(path_,
                                      {{"tok_emb.weight", {3, 4}, emb.data()},
                                       {"norm.bias", {5}, bias.data()},
                                       {"layers.0.attn.qkv", {2, 3, 4}, qkv.data()},
                                       {"scale", {}, scalar.data()},
                                       {"unused", {0, 7}, nullptr}},
                                      meta)
                    .is_ok());
    EXPECT_FALSE(fs::exists(path_ + ".tmp"));

    const auto r = rl::safetensors_read(path_);
    ASSERT_TRUE(r.is_ok()) << r.status.msg;
    EXPECT_EQ(r->metadata, meta);
    ASSERT_EQ(r->tensors.size(), 5u);
    const auto& t = r->tensors;
    EXPECT_EQ(t.at("tok_emb.weight").shape, (std::vector<int64_t>{3, 4}));
    EXPECT_EQ(t.at("norm.bias").shape, (std::vector<int64_t>{5}));
    EXPECT_EQ(t.at("layers.0.attn.qkv").shape, (std::vector<int64_t>{2, 3, 4}));
    EXPECT_EQ(t.at("scale").shape, (std::vector<int64_t>{}));
    EXPECT_EQ(t.at("unused").shape, (std::vector<int64_t>{0, 7}));
    EXPECT_TRUE(same_bits(t.at("tok_emb.weight").data, emb));
    EXPECT_TRUE(same_bits(t.at("norm.bias").data, bias));
    EXPECT_TRUE(same_bits(t.at("layers.0.attn.qkv").data, qkv));
    EXPECT_TRUE(same_bits(t.at("scale").data, scalar));
    EXPECT_TRUE(t.at("unused").data.empty());
}

TEST_F(SafetensorsTest, ByteLayoutMatchesTheFormat) {
    const std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = {7, 8};
    // Given order z, a: data must follow that order, not the (sorted) JSON key order.
    ASSERT_TRUE(rl::safetensors_write(path_, {{"z", {2, 3}, a.data()}, {"a", {2}, b.data()}}, {{"k", "v"}}).is_ok());
    const std::string bytes = read_bytes(path_);
    ASSERT_GE(bytes.size(), 8u);
    const uint64_t n = read_u64_le(bytes);
    EXPECT_EQ(n % 8, 0u);
    ASSERT_EQ(bytes.size(), 8 + n + 4 * (a.size() + b.size()));
    const json h = json::parse(bytes.substr(8, n));
    EXPECT_EQ(h["__metadata__"], json({{"k", "v"}}));
    EXPECT_EQ(h["z"]["dtype"], "F32");
    EXPECT_EQ(h["z"]["shape"], json({2, 3}));
    EXPECT_EQ(h["z"]["data_offsets"], json({0, 24}));
    EXPECT_EQ(h["a"]["data_offsets"], json({24, 32}));
    std::vector<float> data(8);
    std::memcpy(data.data(), bytes.data() + 8 + n, 32);
    EXPECT_EQ(data, (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8}));
}

TEST_F(SafetensorsTest, OverwriteReplacesTheOldFile) {
    write_valid();
    const std::vector<float> x = {42};
    ASSERT_TRUE(rl::safetensors_write(path_, {{"x", {1}, x.data()}}, {}).is_ok());
    const auto r = rl::safetensors_read(path_);
    ASSERT_TRUE(r.is_ok()) << r.status.msg;
    EXPECT_EQ(r->tensors.size(), 1u);
    EXPECT_EQ(r->tensors.at("x").data, x);
    EXPECT_FALSE(fs::exists(path_ + ".tmp"));
}

TEST_F(SafetensorsTest, MissingFile) { EXPECT_HAS(error_at(path_), "not found"); }

TEST_F(SafetensorsTest, DirectoryInsteadOfFile) { EXPECT_HAS(error_at(dir_.string()), "not a regular file"); }

TEST_F(SafetensorsTest, EmptyFile) { EXPECT_HAS(error_for(""), "empty"); }

TEST_F(SafetensorsTest, ShorterThanLengthPrefix) { EXPECT_HAS(error_for("abcde"), "only 5 bytes"); }

TEST_F(SafetensorsTest, TruncatedDataSection) {
    const std::string bytes = write_valid();
    const std::string msg = error_for(bytes.substr(0, bytes.size() - 4));
    EXPECT_HAS(msg, "truncated");
    EXPECT_HAS(msg, "past the end of the data section");
}

TEST_F(SafetensorsTest, TruncatedHeader) {
    const std::string bytes = write_valid();
    EXPECT_HAS(error_for(bytes.substr(0, 20)), "header length");
}

TEST_F(SafetensorsTest, HeaderLengthLargerThanFile) {
    std::string bytes = write_valid();
    bytes.replace(0, 8, u64_le(bytes.size()));
    EXPECT_HAS(error_for(bytes), "header length");
    bytes.replace(0, 8, u64_le(std::numeric_limits<uint64_t>::max()));
    EXPECT_HAS(error_for(bytes), "100 MB");
}

TEST_F(SafetensorsTest, GarbageJson) {
    EXPECT_HAS(error_for(craft("{\"w\": {\"dtype\": \"F32\", oops", 0)), "not valid JSON");
    EXPECT_HAS(error_for(craft(std::string("{\"a\x00\xff\": 1}", 10), 0)), "not valid JSON");
    EXPECT_HAS(error_for(craft("[1, 2]", 0)), "not a JSON object");
}

TEST_F(SafetensorsTest, DeeplyNestedJsonIsRejected) {
    EXPECT_HAS(error_for(craft(std::string(100000, '[') + std::string(100000, ']'), 0)), "nested too deeply");
}

TEST_F(SafetensorsTest, WrongDtype) {
    const std::string msg =
        error_for(craft(R"({"w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}})", 4));
    EXPECT_HAS(msg, "\"w\"");
    EXPECT_HAS(msg, "F16");
    EXPECT_HAS(msg, "F32");
}

TEST_F(SafetensorsTest, OffsetsOutOfRange) {
    EXPECT_HAS(error_for(craft(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})", 8)),
               "past the end of the data section");
    EXPECT_HAS(error_for(craft(R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}})", 8)),
               "begin after end");
    EXPECT_HAS(error_for(craft(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", 8)),
               "data_offsets");
    EXPECT_HAS(error_for(craft(R"({"w": {"dtype": "F32", "shape": [1],
                                  "data_offsets": [18446744073709551612, 18446744073709551615]}})", 8)),
               "past the end of the data section");
}

TEST_F(SafetensorsTest, ShapeOffsetSizeMismatch) {
    const std::string msg =
        error_for(craft(R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}})", 12));
    EXPECT_HAS(msg, "needs 16 bytes");
}

TEST_F(SafetensorsTest, BadShapes) {
    EXPECT_HAS(error_for(craft(R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4)),
               "non-negative integers");
    EXPECT_HAS(error_for(craft(R"({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4)),
               "non-negative integers");
    EXPECT_HAS(error_for(craft(R"({"w": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}})", 8)),
               "no shape list");
    // Product overflows 64 bits: must be caught, not wrapped around to match the offsets.
    EXPECT_HAS(error_for(craft(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 1],
                                  "data_offsets": [0, 0]}})", 0)),
               "too large shape");
}

TEST_F(SafetensorsTest, MissingOrMalformedFields) {
    EXPECT_HAS(error_for(craft(R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", 4)), "no dtype");
    EXPECT_HAS(error_for(craft(R"({"w": {"dtype": "F32", "shape": [1]}})", 4)), "data_offsets");
    EXPECT_HAS(error_for(craft(R"({"w": [1, 2]})", 0)), "not a JSON object");
    EXPECT_HAS(error_for(craft(R"({"__metadata__": {"step": 7}})", 0)), "metadata entry \"step\"");
    EXPECT_HAS(error_for(craft(R"({"__metadata__": "x"})", 0)), "__metadata__");
}

TEST_F(SafetensorsTest, DataMustBeTiledExactly) {
    EXPECT_HAS(error_for(craft(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                  "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})", 12)),
               "gap or overlap");
    EXPECT_HAS(error_for(craft(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                  "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8)),
               "gap or overlap");
    EXPECT_HAS(error_for(craft(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 12)),
               "cover only 4");
}

TEST_F(SafetensorsTest, RandomCorruptionNeverCrashes) {
    const std::string good = write_valid();
    std::mt19937 rng(12345);
    int loaded = 0;
    for (int i = 0; i < 500; ++i) {
        std::string bytes = good;
        if (i % 2 == 0) {
            bytes.resize(std::uniform_int_distribution<size_t>(0, good.size() - 1)(rng));
        } else {
            const int flips = std::uniform_int_distribution<int>(1, 8)(rng);
            for (int k = 0; k < flips; ++k) {
                // Half the flips hit the length prefix and header, where parsing can go wrong.
                const size_t hi = k % 2 ? good.size() - 1 : 8 + read_u64_le(good) - 1;
                bytes[std::uniform_int_distribution<size_t>(0, hi)(rng)] ^=
                    static_cast<char>(std::uniform_int_distribution<int>(1, 255)(rng));
            }
        }
        write_bytes(path_, bytes);
        const auto r = rl::safetensors_read(path_);
        if (r.is_ok()) {
            ++loaded;  // e.g. a flipped float bit or a header space turned into another whitespace
        } else {
            EXPECT_FALSE(r.status.msg.empty());
            EXPECT_EQ(r.status.msg.find('\n'), std::string::npos) << r.status.msg;
        }
    }
    EXPECT_LT(loaded, 500);
}

TEST_F(SafetensorsTest, WriteIntoMissingDirectoryNamesThePath) {
    const std::string bad = (dir_ / "no_such_dir" / "model.safetensors").string();
    const std::vector<float> x = {1};
    const rl::Status s = rl::safetensors_write(bad, {{"x", {1}, x.data()}}, {});
    ASSERT_FALSE(s.is_ok());
    EXPECT_HAS(s.msg, bad);
    EXPECT_HAS(s.msg, "the folder does not exist");
    EXPECT_FALSE(fs::exists(bad));
}

TEST_F(SafetensorsTest, FullDiskKeepsThePreviousCheckpoint) {
    const std::string good = write_valid();
    // The file-size limit of a forked child stands in for a full disk (file_limit.h).
    const std::vector<float> x(100000, 1.0f);
    const LimitedWrite w = write_with_file_limit(4096, [&] { return rl::safetensors_write(path_, {{"x", {100000}, x.data()}}, {}); });
    ASSERT_TRUE(w.exited);
    ASSERT_FALSE(w.ok);
    EXPECT_HAS(w.msg, path_);
    EXPECT_HAS(w.msg, "free space or choose another folder");
    EXPECT_EQ(read_bytes(path_), good);
    EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1) << "a temporary was left behind";
}

TEST_F(SafetensorsTest, InvalidTensorsAreRejectedOnWrite) {
    const std::vector<float> x = {1, 2};
    rl::Status s = rl::safetensors_write(path_, {{"x", {2}, x.data()}, {"x", {2}, x.data()}}, {});
    EXPECT_HAS(s.msg, "twice");
    s = rl::safetensors_write(path_, {{"x", {-2}, x.data()}}, {});
    EXPECT_HAS(s.msg, "shape");
    s = rl::safetensors_write(path_, {{"__metadata__", {2}, x.data()}}, {});
    EXPECT_HAS(s.msg, "reserved");
    s = rl::safetensors_write(path_, {{"x", {2}, x.data()}}, {{"bad\xff", "v"}});
    EXPECT_HAS(s.msg, "UTF-8");
    EXPECT_FALSE(fs::exists(path_));
}

}  // namespace
