#include "exports.h"

#include <QCoreApplication>
#include <QDir>
#include <QFileDialog>
#include <QMenu>

#include "imgui_widget.h"
#include "views.h"
#include "io/checkpoint.h"
#include "io/export.h"
#include "write_whole.h"

Exports::Exports(RunController& runs, ImGuiWidget* views, QWidget* window, const ClusterState* cluster)
    : QObject(window), runs_(runs), views_(views), window_(window), cluster_(cluster) {
    connect(&runs_, &RunController::exportCheckpointReady, this, [this](const QString& path) {
        if (path == checkpoint_) writeFrom(path);
    });
    connect(&runs_, &RunController::checkpointFailed, this, [this](const QString& m) {
        if (checkpoint_.isEmpty()) return;
        checkpoint_.clear();
        emit finished("export failed: " + m);
    });
}

void Exports::exportRouting(const QString& path, const QString& format) {
    if (!runs_.session().active()) {
        const QString m = "nothing to export yet: train or open a checkpoint first";
        emit message(m);
        emit finished(m);
        return;
    }
    path_ = path, format_ = format;
    checkpoint_ = QDir(QDir::tempPath()).filePath(QString("routelab-export-%1.safetensors").arg(QCoreApplication::applicationPid()));
    runs_.requestExportCheckpoint(checkpoint_);
}

// The checkpoint of an export arrived: write the target's files from it (this thread only reads the file).
void Exports::writeFrom(const QString& checkpoint) {
    checkpoint_.clear();
    auto ck = rl::checkpoint_load(checkpoint.toStdString());
    QFile::remove(checkpoint);
    QString msg;
    if (!ck) {
        msg = "export failed: " + QString::fromStdString(ck.status.msg);
    } else if (format_ == "megatron") {
        rl::ExportCluster c;  // the cluster view's, once it was opened on this run
        if (cluster_ && cluster_->report) c = {cluster_->set.ep, cluster_->set.gpusPerNode, cluster_->set.capacityFactor, cluster_->set.pad};
        const QString err = writeWhole(path_, rl::export_megatron((*ck)->cfg, c));
        msg = err.isEmpty() ? "wrote Megatron-Core arguments to " + path_ : err;
    } else {
        const QString cfgFile = QDir(path_).filePath("config.json");
        QString err = QDir().mkpath(path_) ? writeWhole(cfgFile, rl::export_hf_config((*ck)->cfg).dump(2) + "\n")
                                           : "cannot create the folder " + path_;
        msg = err.isEmpty() ? "wrote " + cfgFile : err;
        if (err.isEmpty() && format_ == "hf-weights") {
            if (rl::Status s = rl::export_hf_weights(path_.toStdString(), (*ck)->model); !s)
                msg += "; weights not written: " + QString::fromStdString(s.msg);
            else
                msg += " and model.safetensors";
        }
    }
    emit message(msg);
    emit finished(msg);
}

bool Exports::exportCsv(const QString& path) {
    const QString err = writeWhole(path, rl::curve_to_csv(runs_.data().curve));
    emit message(err.isEmpty() ? "wrote " + path : err);
    return err.isEmpty();
}

bool Exports::exportView2x(const QString& path, QSize* size) {
    const QImage img = views_->renderImage(2);
    if (img.isNull()) {
        emit message("could not render the view at 2x (no OpenGL context yet)");
        return false;
    }
    if (!img.save(path, "PNG")) {
        emit message("could not write " + path);
        return false;
    }
    if (size) *size = img.size();
    return true;
}

// A save dialog whose name is the folder's (created if missing), since Qt's folder picker accepts
// only folders that already exist.
QString Exports::folderDialog(const QString& caption) {
    QFileDialog dlg(window_, caption, QDir(runs_.workspace()).filePath("export-" + QString::fromStdString(runs_.data().runName)));
    dlg.setAcceptMode(QFileDialog::AcceptSave);
    dlg.setFileMode(QFileDialog::AnyFile);
    dlg.setLabelText(QFileDialog::Accept, "Export here");
    dlg.setLabelText(QFileDialog::FileName, "Folder:");
    dlg.setOption(QFileDialog::DontConfirmOverwrite);
    if (dlg.exec() != QDialog::Accepted || dlg.selectedFiles().isEmpty()) return {};
    const QString d = dlg.selectedFiles().first();
    if (!QDir().mkpath(d)) {
        emit message("cannot create the folder " + d + ": choose another place");
        return {};
    }
    return d;
}

void Exports::addActions(QMenu* file) {
    auto save = [this](const char* caption, const char* name, const char* filter) {
        return QFileDialog::getSaveFileName(window_, caption, name, filter);
    };
    file->addAction("Export view as PNG...", this, [this, save] {
        const QString f = save("Export view as PNG", "routelab-view.png", "PNG (*.png)");
        if (!f.isEmpty() && !views_->grabFramebuffer().save(f)) emit message("could not write " + f);
    });
    file->addAction("Export view as PNG (2x)...", this, [this, save] {
        const QString f = save("Export view as PNG (2x)", "routelab-view@2x.png", "PNG (*.png)");
        QSize size;
        if (!f.isEmpty() && exportView2x(f, &size)) emit message(QString("wrote %1 (%2 x %3 px)").arg(f).arg(size.width()).arg(size.height()));
    });
    file->addAction("Export window as PNG...", this, [this, save] {
        const QString f = save("Export window as PNG", "routelab.png", "PNG (*.png)");
        if (!f.isEmpty() && !window_->grab().save(f)) emit message("could not write " + f);
    });
    file->addAction("Export curves as CSV...", this, [this, save] {
        const QString f = save("Export curves as CSV", "routelab-curves.csv", "CSV (*.csv)");
        if (!f.isEmpty()) exportCsv(f);
    });
    file->addSeparator();
    file->addAction("Export routing for Megatron-Core...", this, [this, save] {
        const QString f = save("Megatron-Core arguments", "routelab-megatron-args.txt", "Text (*.txt)");
        if (!f.isEmpty()) exportRouting(f, "megatron");
    });
    file->addAction("Export as Hugging Face config...", this, [this] {
        const QString d = folderDialog("Export as Hugging Face config: the folder for config.json");
        if (!d.isEmpty()) exportRouting(d, "hf");
    });
    file->addAction("Export as Hugging Face config + weights...", this, [this] {
        const QString d = folderDialog("Export as Hugging Face config + weights: the folder for config.json and model.safetensors");
        if (!d.isEmpty()) exportRouting(d, "hf-weights");
    });
}
