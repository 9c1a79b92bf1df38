// The Runs dock (docs/architecture.md §12.4): every run of the workspace's store, with its status,
// filter, ticks that overlay curves in the curves view, rename / tags / colour, compare, exports of
// curves and comparison tables, Continue from checkpoint and delete. It re-lists the store every 3 s
// (a CLI may write the same workspace) and writes RunData's runs and overlays.
#pragma once
#include <QColor>
#include <QDockWidget>
#include <QTimer>
#include <functional>

#include "run_controller.h"

class QCheckBox;
class QLineEdit;
class QTreeWidget;
class QTreeWidgetItem;

class RunsDock : public QDockWidget {
    Q_OBJECT
public:
    // formConfig: the config form's config (Compare with one run selected).
    RunsDock(RunController& runs, std::function<rl::Result<rl::Config>()> formConfig, QWidget* parent = nullptr);
    // Edits, stored at once (a CLI sees them too).
    bool renameRun(qint64 id, const QString& name);
    bool setRunTags(qint64 id, const QString& commaSeparated);
    bool setRunColour(qint64 id, const QColor& colour);  // an invalid colour = the palette's
    void setFilter(const QString& text);                // matches name, tag, sweep, status
    void setOverlayTicked(qint64 id, bool on);
    void toggleOverlay(qint64 id);
    void overlayAll();  // ticks every stored run other than the current one
    // The comparison table of these runs: id, name, status, steps, losses, final metrics and the config
    // keys that differ among them (views/run_table.h). A path ending in .md is Markdown, else CSV.
    QString comparisonTable(const QList<qint64>& ids, bool markdown) const;
    bool exportComparison(const QList<qint64>& ids, const QString& path);
    QList<qint64> selectedRunIds() const;
    // The curve toggles: curves over seconds of training, the raw min/max band around smoothed losses.
    void setCurveOptions(bool wallTime, bool band);
    // Re-lists the store and updates the list in place (selection, ticks and scrolling stay); nothing
    // is touched when no shown field changed.
    void refresh();

signals:
    void message(QString text);
    void viewDataChanged(unsigned arrival);  // Arrival::Runs or Overlays
    void curveOptionsChanged(bool wallTime, bool band);
    void loadConfig(const rl::Config& cfg);  // Load config: into the form

private:
    QWidget* buildList(QWidget* parent);
    void addButtons(QWidget* parent, class QVBoxLayout* lay);
    void editCell(QTreeWidgetItem* it, int column);
    void contextMenu(const QPoint& at);
    void applyFilter();
    void syncItem(QTreeWidgetItem* it, const rl::RunRecord& r);
    void updateOverlays();
    void compare();
    void exportSelectedCurve();
    void deleteSelected();
    void continueFromCheckpoint(qint64 id);
    const rl::RunRecord* storedRun(qint64 id) const;
    bool stored(const rl::Status& s);  // false after saying why

    RunController& runs_;
    std::function<rl::Result<rl::Config>()> formConfig_;
    QTreeWidget* list_ = nullptr;
    QLineEdit* filter_ = nullptr;
    QCheckBox* wallTime_ = nullptr;
    QCheckBox* band_ = nullptr;
    QTimer refresh_;
};
