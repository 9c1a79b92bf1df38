// File > Export (docs/export.md): the current run's routing as Megatron-Core arguments (with the
// cluster view's EP and capacity, once opened) or a Hugging Face folder (config.json, and
// model.safetensors where it maps exactly), from a weights-only checkpoint the trainer writes first;
// the curves as CSV; the view or the window as PNG.
#pragma once
#include <QObject>
#include <QSize>

#include "run_controller.h"

class ImGuiWidget;
class QMenu;
class QWidget;

class Exports : public QObject {
    Q_OBJECT
public:
    // cluster: the cluster view's settings, read at each Megatron export (its flags once the view was opened).
    Exports(RunController& runs, ImGuiWidget* views, QWidget* window, const struct ClusterState* cluster = nullptr);
    void addActions(QMenu* file);  // the File menu's export entries
    // format "megatron" (path: a file), "hf" or "hf-weights" (path: a folder); finished follows.
    void exportRouting(const QString& path, const QString& format);
    bool exportCsv(const QString& path);
    // The view rendered at twice its size (sharp text, not scaled up); its size in *size.
    bool exportView2x(const QString& path, QSize* size = nullptr);
    // A folder to export into, existing or new (created); "" when cancelled or not creatable (said).
    QString folderDialog(const QString& caption);

signals:
    void message(QString text);
    void finished(QString message);  // an export of the routing ended, with what was written or why not

private:
    void writeFrom(const QString& checkpoint);
    RunController& runs_;
    ImGuiWidget* views_;
    QWidget* window_;
    const ClusterState* cluster_;
    QString path_, format_, checkpoint_;  // an export waiting for its checkpoint
};
