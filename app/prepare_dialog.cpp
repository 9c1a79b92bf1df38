#include "prepare_dialog.h"

#include <QCoreApplication>
#include <QEventLoop>
#include <QProgressDialog>
#include <optional>
#include <thread>

#include "io/hf_inspect.h"
#include "session.h"

namespace {

using Work = std::function<rl::Result<std::unique_ptr<rl::TrainState>>(const rl::DataProgress&)>;

// `work` on a thread of its own behind a modal progress dialog that shows each stage it reports; the
// window keeps painting meanwhile.
rl::Result<std::unique_ptr<rl::TrainState>> behindDialog(QWidget* parent, const QString& title, const QString& label,
                                                        QStringList& stages, const Work& work) {
    QProgressDialog dialog(label, QString(), 0, 0, parent);
    dialog.setWindowTitle(title);
    dialog.setWindowModality(Qt::WindowModal);  // no second Train while this one works
    dialog.setMinimumDuration(400);             // a quick one is done before it would show
    dialog.setMinimumWidth(520);
    QEventLoop loop;
    std::optional<rl::Result<std::unique_ptr<rl::TrainState>>> result;
    std::thread worker([&] {
        result.emplace(work([&stages, &dialog](const std::string& stage, double fraction) {
            // Queued to the dialog: dropped if it is gone (it outlives the worker, but be safe).
            QMetaObject::invokeMethod(&dialog, [&stages, &dialog, s = QString::fromStdString(stage), fraction] {
                if (stages.isEmpty() || stages.back() != s) stages << s;
                dialog.setLabelText(s + (fraction >= 0 ? QString(" (%1%)").arg((int)(100 * fraction)) : QString("...")));
                if (fraction < 0) dialog.setRange(0, 0);  // busy: SentencePiece does not say how far it is
                else dialog.setRange(0, 100), dialog.setValue((int)(100 * fraction));
            }, Qt::QueuedConnection);
        }));
        QMetaObject::invokeMethod(&loop, "quit", Qt::QueuedConnection);
    });
    loop.exec();
    worker.join();
    QCoreApplication::sendPostedEvents(&dialog);  // the last stages reach `stages`
    return std::move(*result);
}

}  // namespace

rl::Result<std::unique_ptr<rl::TrainState>> prepareWithDialog(QWidget* parent, const rl::Config& cfg, QStringList& stages) {
    stages.clear();
    if (cfg.data.corpus == "embedded") return Session::prepare(cfg);
    return behindDialog(parent, "Preparing the run", "Preparing " + QString::fromStdString(cfg.data.corpus) + "...", stages,
                        [&cfg](const rl::DataProgress& p) { return Session::prepare(cfg, p); });
}

rl::Result<std::unique_ptr<rl::TrainState>> openModelWithDialog(QWidget* parent, const std::string& dir, QStringList& stages) {
    stages.clear();
    return behindDialog(parent, "Opening the model", "Opening " + QString::fromStdString(dir) + "...", stages,
                        [&dir](const rl::DataProgress& p) { return rl::hf_inspect_state(dir, p); });
}
