#include "prepare_dialog.h"

#include <QCoreApplication>
#include <QEventLoop>
#include <QProgressDialog>
#include <optional>
#include <thread>

#include "session.h"

rl::Result<std::unique_ptr<rl::TrainState>> prepareWithDialog(QWidget* parent, const rl::Config& cfg, QStringList& stages) {
    stages.clear();
    if (cfg.data.corpus == "embedded") return Session::prepare(cfg);
    QProgressDialog dialog("Preparing " + QString::fromStdString(cfg.data.corpus) + "...", QString(), 0, 0, parent);
    dialog.setWindowTitle("Preparing the run");
    dialog.setWindowModality(Qt::WindowModal);  // no second Train while this one tokenizes
    dialog.setMinimumDuration(400);             // a small file is done before it would show
    dialog.setMinimumWidth(520);
    QEventLoop loop;
    std::optional<rl::Result<std::unique_ptr<rl::TrainState>>> result;
    std::thread worker([&] {
        result.emplace(Session::prepare(cfg, [&stages, &dialog](const std::string& stage, double fraction) {
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
