// The main window (DESIGN.md §5): toolbar with preset picker, Train / Pause / Step / Retrain and
// live step / loss / tok/s; the ImGui views in the central widget. First cut of the window issue:
// views heads, experts and curves.
#pragma once
#include <QComboBox>
#include <QLabel>
#include <QMainWindow>
#include <QTabBar>
#include <QTimer>

#include "config_dock.h"
#include "session.h"
#include "views.h"

class ImGuiWidget;
class QAction;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    explicit MainWindow(QWidget* parent = nullptr);
    // Starts a run of the given config (also used by scripted runs).
    bool startRun(const rl::Config& cfg);
    void showView(const QString& name);  // heads, experts, curves
    void selectPreset(const QString& name) { presets_->setCurrentText(name); }
    Session& session() { return session_; }
    ConfigDock* configDock() { return config_; }
    ImGuiWidget* views() { return imgui_; }
    ViewData& viewData() { return data_; }
    int lastStep() const { return data_.stats.empty() ? 0 : data_.stats.back().step; }

signals:
    void runFinished(int step);

protected:
    void closeEvent(QCloseEvent* e) override;

private:
    void poll();
    void train();
    void buildMenus();
    Session session_;
    ViewData data_;
    ImGuiWidget* imgui_ = nullptr;
    QComboBox* presets_ = nullptr;
    QLabel* live_ = nullptr;
    QTabBar* tabs_ = nullptr;
    QTimer poll_;
    float emaTok_ = 0;
    ConfigDock* config_ = nullptr;
    QAction* trainAction_ = nullptr;
    QAction* retrainAction_ = nullptr;
};
