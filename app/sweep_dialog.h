// Run > Sweep...: every numeric, boolean or choice key of the form with a cell for its values; Run
// sweep writes the sweep file (sweepFromForm) and starts it.
#pragma once
#include <QDialog>
#include <QList>
#include <QPair>

#include "config/config.h"

class QLabel;
class QLineEdit;
class QTableWidget;
class SweepRunner;

// The Sweep dialog's product: writes the form's config to <workspace>/sweeps/<name>.config.json and
// returns the sweep JSON over it (also saved, as <name>.json, for routelab-cli sweep); each pair is
// a key of the form and its comma-separated values. Empty with *error set when a value is wrong.
QString sweepFromForm(const rl::Config& form, const QString& workspace, const QString& name,
                      const QList<QPair<QString, QString>>& keyValues, QString* error);

class SweepDialog : public QDialog {
    Q_OBJECT
public:
    SweepDialog(const rl::Config& form, const QString& workspace, SweepRunner& sweeps, QWidget* parent = nullptr);

private:
    QTableWidget* buildTable();
    QList<QPair<QString, QString>> picked() const;  // keys with values typed
    void countPoints();
    void run();
    rl::Config form_;
    QString workspace_;
    SweepRunner& sweeps_;
    QLineEdit* name_ = nullptr;
    QTableWidget* table_ = nullptr;
    QLabel* status_ = nullptr;
};
