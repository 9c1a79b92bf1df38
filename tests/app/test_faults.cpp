// The window under faults (issue 13): closed or retrained while a checkpoint is being written, its
// corpus deleted while it trains, its workspace's disk full while it runs, a full disk under Save as
// preset and CSV export. Each ends in a status-bar message (or the stored run's status), whole files
// or none, no crash and no lost run.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <QApplication>
#include <QDir>
#include <QFile>
#include <QTemporaryDir>

#include "../core/file_limit.h"
#include "config/presets.h"
#include "io/checkpoint.h"
#include "io/run_store.h"
#include "main_window.h"
#include "train/corpus.h"
#include "stored_run.h"
#include "wait_for.h"

namespace {

std::vector<rl::CurvePoint> storedCurve(const QString& ws, int64_t id) {
    auto store = rl::run_store_open(QDir(ws).filePath("runs.sqlite").toStdString());
    auto c = store ? rl::run_store_curve(*store, id) : rl::Result<std::vector<rl::CurvePoint>>(store.status);
    EXPECT_TRUE(c) << c.status.msg;
    return c ? *c : std::vector<rl::CurvePoint>{};
}

// The stored curve holds every step the window received (the GUI's stats ring may drop steps when
// its thread stalls, counted in droppedStats(); those never reach the window), each once, in order.
bool storedAllReceived(const std::vector<rl::CurvePoint>& stored, const std::vector<int>& received) {
    std::vector<int> steps;
    for (const auto& p : stored) steps.push_back(p.step);
    EXPECT_EQ(steps, received) << steps.size() << " stored, " << received.size() << " received";
    return steps == received;
}

std::vector<int> receivedSteps(const MainWindow& w) {
    std::vector<int> s;
    for (const auto& p : w.runs().data().curve) s.push_back(p.step);
    return s;
}

// Strictly increasing steps ending at `last`: none twice, the run's last step there.
bool increasingTo(const std::vector<rl::CurvePoint>& c, int last) {
    for (size_t i = 1; i < c.size(); i++)
        if (c[i].step <= c[i - 1].step) return false;
    return !c.empty() && c.back().step == last;
}

// Files a failed or cut-short write would leave: temporaries of util/atomic_file.h or anything *.tmp.
QStringList temporaries(const QString& dir) {
    QStringList t;
    for (const QString& f : QDir(dir).entryList(QDir::Files | QDir::Hidden))
        if (f.contains(".tmp")) t << f;
    return t;
}

QByteArray bytesOf(const QString& path) {
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

// The whole process's files may not grow past `limit` bytes while it lives (SIGXFSZ ignored, so
// writes fail with EFBIG): the window's disk is full. Only the soft limit moves, so it is restored.
class FileLimit {
public:
    explicit FileLimit(rlim_t limit) {
        old_ = ::signal(SIGXFSZ, SIG_IGN);
        ::getrlimit(RLIMIT_FSIZE, &saved_);
        rlimit r = saved_;
        r.rlim_cur = limit;
        ok_ = ::setrlimit(RLIMIT_FSIZE, &r) == 0;
    }
    ~FileLimit() {
        ::setrlimit(RLIMIT_FSIZE, &saved_);
        ::signal(SIGXFSZ, old_);
    }
    bool ok() const { return ok_; }

private:
    rlimit saved_{};
    sighandler_t old_ = SIG_DFL;
    bool ok_ = false;
};

}  // namespace

// Closed while a checkpoint it asked for is being written: the file is whole (it loads), the run is
// stored interrupted with every step it took.
TEST(Faults, ClosedDuringACheckpointWriteKeepsTheRunAndAWholeFile) {
    QTemporaryDir ws;
    const QString ck = QDir(ws.path()).filePath("closing.safetensors");
    int64_t id = 0;
    int last = 0;
    std::vector<int> received;
    {
        MainWindow w(ws.path());
        ASSERT_TRUE(w.startRun(tiny(100000))) << w.statusMessage().toStdString();
        id = w.runs().currentRunId();
        ASSERT_TRUE(waitFor([&] { return w.runs().lastStep() >= 5; }));
        w.runs().saveCheckpoint(ck);
        w.close();
        last = w.runs().lastStep();
        received = receivedSteps(w);
    }
    const rl::RunRecord r = stored(ws.path(), id);
    EXPECT_EQ(r.status, rl::RunStatus::interrupted);
    EXPECT_EQ(r.steps, last);
    EXPECT_TRUE(storedAllReceived(storedCurve(ws.path(), id), received));
    if (QFile::exists(ck)) {  // written on the way out, whole
        auto l = rl::checkpoint_load(ck.toStdString());
        EXPECT_TRUE(l.is_ok()) << l.status.msg;
    }
    EXPECT_TRUE(temporaries(ws.path()).isEmpty()) << temporaries(ws.path()).join(", ").toStdString();
}

// Retrain right after Save checkpoint..., three times: each file is whole or absent, the new run
// starts and trains, the replaced runs are stored interrupted with their steps, and the checkpoint
// is kept with the run it was asked for.
TEST(Faults, RetrainDuringACheckpointWrite) {
    QTemporaryDir ws;
    MainWindow w(ws.path());
    ASSERT_TRUE(w.startRun(tiny(100000))) << w.statusMessage().toStdString();
    QStringList saved;
    QObject::connect(&w.runs(), &RunController::checkpointSaved, [&](const QString& p) { saved << p; });
    for (int i = 0; i < 3; i++) {
        const int64_t before = w.runs().currentRunId();
        ASSERT_TRUE(waitFor([&] { return w.runs().lastStep() >= 3; }));
        const QString ck = QDir(ws.path()).filePath(QString("retrain-%1.safetensors").arg(i));
        w.runs().saveCheckpoint(ck);
        ASSERT_TRUE(w.startRun(tiny(100000))) << w.statusMessage().toStdString();  // Retrain
        ASSERT_NE(w.runs().currentRunId(), before);
        ASSERT_TRUE(waitFor([&] { return saved.contains(ck); })) << w.statusMessage().toStdString();
        auto l = rl::checkpoint_load(ck.toStdString());
        ASSERT_TRUE(l.is_ok()) << l.status.msg;
        EXPECT_GE((*l)->info.step, 3);
        const rl::RunRecord old = stored(ws.path(), before);
        EXPECT_EQ(old.status, rl::RunStatus::interrupted);
        EXPECT_TRUE(increasingTo(storedCurve(ws.path(), before), old.steps));
        EXPECT_EQ(old.checkpoint, ck.toStdString()) << "the checkpoint belongs to the run it was asked for";
        EXPECT_TRUE(stored(ws.path(), w.runs().currentRunId()).checkpoint.empty());
    }
    const int now = w.runs().lastStep();
    ASSERT_TRUE(waitFor([&] { return w.runs().lastStep() > now; })) << "the new run trains";
    EXPECT_TRUE(w.runs().session().running());
    EXPECT_TRUE(temporaries(ws.path()).isEmpty()) << temporaries(ws.path()).join(", ").toStdString();
    w.runs().session().stop();
}

// The corpus file deleted while it trains: the run goes on (its tokens are in memory); Retrain then
// says the file is missing, and the current run keeps going.
TEST(Faults, CorpusDeletedWhileTraining) {
    QTemporaryDir ws;
    const QString path = QDir(ws.path()).filePath("corpus.txt");
    {
        QFile f(path);
        ASSERT_TRUE(f.open(QIODevice::WriteOnly));
        for (const rl::Document& d : rl::corpus_embedded(300, 7)) f.write((d.text + "\n").c_str());
    }
    MainWindow w(ws.path());
    auto cfg = tiny(100000);
    cfg.data.corpus = path.toStdString();
    ASSERT_TRUE(w.startRun(cfg)) << w.statusMessage().toStdString();
    ASSERT_TRUE(waitFor([&] { return w.runs().lastStep() >= 2; }));
    ASSERT_TRUE(QFile::remove(path));
    int before = w.runs().lastStep();
    ASSERT_TRUE(waitFor([&] { return w.runs().lastStep() >= before + 3; })) << "training goes on without the file";
    const int64_t id = w.runs().currentRunId();
    EXPECT_FALSE(w.startRun(cfg));  // Retrain
    EXPECT_TRUE(w.statusMessage().contains(path)) << w.statusMessage().toStdString();
    EXPECT_EQ(w.runs().currentRunId(), id);
    EXPECT_TRUE(w.runs().session().running());
    before = w.runs().lastStep();
    ASSERT_TRUE(waitFor([&] { return w.runs().lastStep() > before; })) << "the current run keeps going";
    EXPECT_EQ(stored(ws.path(), id).status, rl::RunStatus::running);
    w.runs().session().stop();
}

// The workspace's disk full while a run trains (a file-size limit: permission bits would not stop
// root): the store refuses the curve, the status bar says so, a Save checkpoint fails with its
// reason, training goes on; once there is room again every step reaches the store.
TEST(Faults, FullWorkspaceWhileRunningLosesNoStep) {
    QTemporaryDir ws;
    MainWindow w(ws.path());
    ASSERT_TRUE(w.startRun(tiny(100000))) << w.statusMessage().toStdString();
    const int64_t id = w.runs().currentRunId();
    ASSERT_TRUE(waitFor([&] { return w.runs().lastStep() >= 3; }));
    QString failedSave;
    QObject::connect(&w.runs().session(), &Session::checkpointFailed, [&](const QString& m) { failedSave = m; });
    const QString ck = QDir(ws.path()).filePath("full.safetensors");
    {
        FileLimit full(1);
        ASSERT_TRUE(full.ok());
        const int at = w.runs().lastStep();
        ASSERT_TRUE(waitFor([&] { return w.statusMessage().contains("run store"); }, 60000)) << w.statusMessage().toStdString();
        EXPECT_TRUE(w.statusMessage().contains("the disk has space")) << w.statusMessage().toStdString();
        ASSERT_TRUE(waitFor([&] { return w.runs().lastStep() >= at + 5; })) << "training goes on";
        w.runs().saveCheckpoint(ck);
        ASSERT_TRUE(waitFor([&] { return !failedSave.isEmpty(); }, 60000));
    }
    EXPECT_TRUE(failedSave.contains("the disk is full")) << failedSave.toStdString();
    EXPECT_TRUE(failedSave.contains("'" + ck + "'")) << failedSave.toStdString();
    EXPECT_FALSE(QFile::exists(ck));
    EXPECT_TRUE(temporaries(ws.path()).isEmpty()) << temporaries(ws.path()).join(", ").toStdString();
    const int after = w.runs().lastStep() + 3;
    ASSERT_TRUE(waitFor([&] { return w.runs().lastStep() >= after; }));
    w.close();  // the last poll stores the rest
    const rl::RunRecord r = stored(ws.path(), id);
    EXPECT_EQ(r.status, rl::RunStatus::interrupted);
    EXPECT_EQ(r.steps, w.runs().lastStep());
    EXPECT_TRUE(storedAllReceived(storedCurve(ws.path(), id), receivedSteps(w))) << w.runs().session().droppedStats() << " dropped by the stats ring";
}

// Save as preset and Export curves as CSV on a full disk (a forked child with a file-size limit):
// the old preset and CSV are unchanged byte for byte, no temporary is left, and the status bar says why.
TEST(Faults, FullDiskPresetSaveAndCsvExportKeepTheOldFiles) {
    QTemporaryDir ws;
    MainWindow w(ws.path());
    w.selectPreset("seed-moh");
    ASSERT_TRUE(w.savePresetAs("mine")) << w.statusMessage().toStdString();
    const QString presets = QDir(ws.path()).filePath("presets"), preset = QDir(presets).filePath("mine.json");
    const QByteArray old = bytesOf(preset);
    ASSERT_FALSE(old.isEmpty());
    ASSERT_TRUE(w.configDock()->setField("model.attention.heads.beta", "0.05"));
    LimitedWrite r = write_with_file_limit(64, [&] {
        return w.savePresetAs("mine") ? rl::Status::ok() : rl::Status::error(w.statusMessage().toStdString());
    });
    ASSERT_TRUE(r.exited);
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.msg.find("the disk is full (or the file size limit was reached): free space or choose another folder"), std::string::npos) << r.msg;
    EXPECT_NE(r.msg.find(preset.toStdString()), std::string::npos) << r.msg;
    EXPECT_EQ(bytesOf(preset), old);
    EXPECT_EQ(QDir(presets).entryList(QDir::Files | QDir::Hidden), QStringList{"mine.json"});
    ASSERT_TRUE(w.savePresetAs("mine")) << "with room the same save goes through";
    EXPECT_NE(bytesOf(preset), old);

    ASSERT_TRUE(w.startRun(tiny(40)));
    ASSERT_TRUE(waitFor([&] { return w.runs().lastStep() >= 40; }));
    const QString csv = QDir(ws.path()).filePath("curves.csv");
    {
        QFile f(csv);
        ASSERT_TRUE(f.open(QIODevice::WriteOnly));
        f.write("step,loss\n1,4\n");
    }
    r = write_with_file_limit(64, [&] { return w.exports().exportCsv(csv) ? rl::Status::ok() : rl::Status::error(w.statusMessage().toStdString()); });
    ASSERT_TRUE(r.exited);
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.msg.find("the disk is full"), std::string::npos) << r.msg;
    EXPECT_EQ(bytesOf(csv), QByteArray("step,loss\n1,4\n"));
    EXPECT_TRUE(temporaries(ws.path()).isEmpty()) << temporaries(ws.path()).join(", ").toStdString();
    w.runs().session().stop();
}
