// Atomic writes (util/atomic_file.h) and the full disk: every file a user keeps is replaced whole or
// not at all. The full disk is a file-size limit in a forked child (file_limit.h), so these tests
// also hold for root, whom permission bits do not stop.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "config/presets.h"
#include "file_limit.h"
#include "subprocess.h"
#include "io/resume.h"
#include "io/run_store.h"
#include "train/trainer.h"
#include "util/atomic_file.h"

using namespace rl;
namespace fs = std::filesystem;

namespace {

std::string read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every file of a folder (hidden ones included: that is where temporaries would be) and its bytes.
std::map<std::string, std::string> folder(const fs::path& dir) {
    std::map<std::string, std::string> m;
    for (const auto& e : fs::directory_iterator(dir))
        m[e.path().filename().string()] = e.is_directory() ? "<folder>" : read_bytes(e.path());
    return m;
}

std::vector<std::string> names(const std::map<std::string, std::string>& m) {
    std::vector<std::string> n;
    for (const auto& [k, v] : m) n.push_back(k);
    return n;
}

class AtomicFile : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("routelab_atomic_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) +
                                            "_" + std::to_string(::getpid()));
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    fs::path dir_;
};

#define EXPECT_HAS(msg, part) EXPECT_NE((msg).find(part), std::string::npos) << (msg)

std::vector<CurvePoint> curve(int n) {
    std::vector<CurvePoint> c;
    for (int i = 1; i <= n; i++) c.push_back({i, 4.f - 0.001f * i});
    return c;
}

}  // namespace

TEST_F(AtomicFile, ReplacesTheFileWholeKeepsItsModeAndLeavesNoTemporary) {
    const std::string path = (dir_ / "run.csv").string();
    ASSERT_TRUE(atomic_file_write(path, std::string("old\n")));
    ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
    ASSERT_TRUE(atomic_file_write(path, std::string("new\n")));
    EXPECT_EQ(read_bytes(path), "new\n");
    struct stat st;
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0640u);
    EXPECT_EQ(names(folder(dir_)), std::vector<std::string>{"run.csv"});
    // A new file gets the usual 0644, not mkstemp's 0600.
    ASSERT_TRUE(atomic_file_write((dir_ / "fresh.txt").string(), std::string("x")));
    ASSERT_EQ(::stat((dir_ / "fresh.txt").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0644u);
}

TEST_F(AtomicFile, MessagesNameThePathAndWhatToDo) {
    const std::string missing = (dir_ / "no" / "such" / "f.json").string();
    Status s = atomic_file_write(missing, std::string("{}"));
    ASSERT_FALSE(s);
    EXPECT_HAS(s.msg, missing);
    EXPECT_HAS(s.msg, "the folder does not exist");
    fs::create_directories(dir_ / "taken");
    s = atomic_file_write((dir_ / "taken").string(), std::string("x"));
    ASSERT_FALSE(s);
    EXPECT_HAS(s.msg, "a folder has that name");
    EXPECT_TRUE(fs::is_directory(dir_ / "taken"));
    EXPECT_EQ(names(folder(dir_)), std::vector<std::string>{"taken"});  // the temporary is gone
    EXPECT_HAS(atomic_file_cause(ENOSPC), "the disk is full (or the file size limit was reached): free space or choose another folder");
    EXPECT_HAS(atomic_file_cause(EFBIG), "the disk is full");
    EXPECT_HAS(atomic_file_cause(EACCES), "the folder is read-only");
    EXPECT_HAS(atomic_file_cause(EROFS), "the folder is read-only");
}

TEST_F(AtomicFile, AWriterThatFailsLeavesTheOldFileAndItsMessage) {
    const std::string path = (dir_ / "preset.json").string();
    ASSERT_TRUE(atomic_file_write(path, std::string("{\"old\": 1}\n")));
    const Status s = atomic_file_write(path, [](std::FILE* f) {
        std::fputs("{\"half", f);
        return Status::error("the config could not be serialised");
    });
    EXPECT_EQ(s.msg, "the config could not be serialised");
    EXPECT_EQ(folder(dir_), (std::map<std::string, std::string>{{"preset.json", "{\"old\": 1}\n"}}));
}

// A CSV export (the window's CSV... and Table..., routelab-cli runs export --csv: curve_to_csv
// through atomic_file_write) on a full disk.
TEST_F(AtomicFile, FullDiskCsvExportKeepsTheOldFileByteForByte) {
    const std::string path = (dir_ / "curves.csv").string();
    ASSERT_TRUE(atomic_file_write(path, curve_to_csv(curve(20))));
    const auto before = folder(dir_);
    const std::string big = curve_to_csv(curve(5000));
    ASSERT_GT(big.size(), 64u * 1024);
    const LimitedWrite w = write_with_file_limit(16 * 1024, [&] { return atomic_file_write(path, big); });
    ASSERT_TRUE(w.exited);
    EXPECT_FALSE(w.ok);
    EXPECT_HAS(w.msg, "cannot write '" + path + "'");
    EXPECT_HAS(w.msg, "the disk is full (or the file size limit was reached): free space or choose another folder");
    EXPECT_HAS(w.msg, "unchanged");
    EXPECT_EQ(folder(dir_), before);  // same names (no temporary), same bytes
    // Without the limit the same write goes through.
    ASSERT_TRUE(atomic_file_write(path, big));
    EXPECT_EQ(read_bytes(path), big);
}

// A run's save (checkpoint + its training-state companion, run_save) on a full disk: the previous
// pair stays whole, byte for byte, resumable, with no temporary and no companion of the failed save.
TEST_F(AtomicFile, FullDiskCheckpointSaveKeepsThePreviousPair) {
    Config cfg = *preset_load("tiny");
    cfg.train.steps = 10;
    auto st = trainer_create(cfg);
    ASSERT_TRUE(st.is_ok()) << st.status.msg;
    TrainState& s = **st;
    for (int i = 0; i < 3; i++) trainer_step(s);
    const std::string ck = (dir_ / "checkpoint.safetensors").string();
    ASSERT_TRUE(run_save(s, ck));
    const auto before = folder(dir_);
    ASSERT_EQ(before.size(), 2u);
    const size_t ck_bytes = before.at("checkpoint.safetensors").size(), state_bytes = before.at("checkpoint.train-3.safetensors").size();
    for (int i = 0; i < 2; i++) trainer_step(s);

    // Both files too large: the companion (written first) fails.
    const rlim_t small = std::min(ck_bytes, state_bytes) / 2;
    LimitedWrite w = write_with_file_limit(small, [&] { return run_save(s, ck); });
    ASSERT_TRUE(w.exited);
    EXPECT_FALSE(w.ok);
    EXPECT_HAS(w.msg, "checkpoint not saved");
    EXPECT_HAS(w.msg, "the disk is full");
    EXPECT_HAS(w.msg, "train-5");
    EXPECT_EQ(folder(dir_), before);

    // Room for one file but not the other: the save stops at the second, and the first (a companion no
    // checkpoint names, or a checkpoint without its companion) is not left behind.
    const rlim_t between = (std::min(ck_bytes, state_bytes) + std::max(ck_bytes, state_bytes)) / 2;
    if (ck_bytes != state_bytes) {
        w = write_with_file_limit(between, [&] { return run_save(s, ck); });
        ASSERT_TRUE(w.exited);
        EXPECT_FALSE(w.ok);
        EXPECT_HAS(w.msg, "the disk is full");
        EXPECT_EQ(folder(dir_), before) << "limit " << between << ", checkpoint " << ck_bytes << ", state " << state_bytes;
    }

    // The old pair still resumes exactly, at its step.
    auto r = run_resume(ck);
    ASSERT_TRUE(r.is_ok()) << r.status.msg;
    EXPECT_TRUE(r->exact) << r->note;
    EXPECT_EQ(r->state->step, 3);
}

// The checkpoint cannot take its name (a folder has it): the companion just written is removed again.
TEST_F(AtomicFile, AFailedCheckpointLeavesNoCompanionBehind) {
    Config cfg = *preset_load("tiny");
    auto st = trainer_create(cfg);
    ASSERT_TRUE(st.is_ok()) << st.status.msg;
    trainer_step(**st);
    fs::create_directories(dir_ / "checkpoint.safetensors");
    const Status s = run_save(**st, (dir_ / "checkpoint.safetensors").string());
    ASSERT_FALSE(s);
    EXPECT_HAS(s.msg, "a folder has that name");
    EXPECT_EQ(names(folder(dir_)), std::vector<std::string>{"checkpoint.safetensors"});
}

// routelab-cli on a full disk (sh's ulimit -f 0, SIGXFSZ ignored with trap, both inherited by the
// CLI): a train into the folder of an earlier run and an export over an earlier file fail with the
// reason, exit 1, and leave every earlier file whole.
TEST_F(AtomicFile, FullDiskCliKeepsTheRunFolderAndTheExport) {
    const std::string cli = ROUTELAB_CLI, ws = (dir_ / "ws").string(), run = (dir_ / "run").string();
    auto limited = [&](const std::string& args) {
        return rl::test::run_captured("sh -c " + rl::test::shell_quoted("trap \"\" XFSZ; ulimit -f 0; exec " + cli + " " + args));
    };
    rl::test::Captured t = rl::test::run_captured(cli + " train --preset tiny --steps 10 --out " + run + " --workspace " + ws);
    ASSERT_EQ(t.code, 0) << t.out;
    const auto before = folder(run);
    ASSERT_TRUE(before.count("checkpoint.safetensors") && before.count("metrics.csv") && before.count("summary.json"));
    t = limited("train --preset tiny --steps 10 --out " + run + " --workspace " + ws);
    EXPECT_EQ(t.code, 1) << t.out;
    EXPECT_HAS(t.out, "the disk is full (or the file size limit was reached): free space or choose another folder");
    EXPECT_HAS(t.out, run + "/config.json");
    EXPECT_HAS(t.out, "check the disk has space");  // the run store's warning names the disk, not a corrupt file
    EXPECT_EQ(folder(run), before);

    const std::string args = (dir_ / "megatron.txt").string();
    ASSERT_TRUE(atomic_file_write(args, std::string("# earlier arguments\n")));
    t = limited("export --preset tiny --format megatron --out " + args);
    EXPECT_EQ(t.code, 1) << t.out;
    EXPECT_HAS(t.out, "cannot write '" + args + "'");
    EXPECT_EQ(read_bytes(args), "# earlier arguments\n");
    EXPECT_TRUE(names(folder(dir_)) == (std::vector<std::string>{"megatron.txt", "run", "ws"})) << "no temporary left";
}
