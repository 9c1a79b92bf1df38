// Run > Sweep...: every numeric, boolean or choice key of the form with a cell for its values (a list,
// or a range "MIN..MAX [log]"), and how to search them (docs/tuning.md): the method, seeds a point, the
// points or trials, halving's rungs, a budget of training steps, the objectives and a constraint. Run
// sweep writes the sweep file (sweepFromForm) and starts it.
#pragma once
#include <QDialog>
#include <QList>
#include <QPair>

#include "config/config.h"

class QComboBox;
class QLabel;
class QSpinBox;
class QLineEdit;
class QTableWidget;
class SweepRunner;

// How the dialog searches: its sweep file's "method" and the keys that go with it (config/sweep.h).
struct SweepSearchChoice {
    QString method = "grid";          // grid, random, halving, tpe
    int seeds = 1, points = 20;       // points: random's and halving's draws, tpe's trials
    int minSteps = 0, eta = 3;        // halving (min_steps 0: a ninth of the form's train.steps)
    long long budget = 0;             // training steps over all runs (0 = none)
    QString objective = "val_loss", objective2;  // metrics; objective2 "" = one objective
    bool maximise = false, maximise2 = true;
    QString constraint;               // "dropped <= 0.01", "" = none
};

// The Sweep dialog's product: writes the form's config to <workspace>/sweeps/<name>.config.json and
// returns the sweep JSON over it (also saved, as <name>.json, for routelab-cli sweep); each pair is
// a key of the form and its comma-separated values, or a range "MIN..MAX" (with " log": log-uniform)
// for random, halving and TPE. Empty with *error set when a value is wrong.
QString sweepFromForm(const rl::Config& form, const QString& workspace, const QString& name,
                      const QList<QPair<QString, QString>>& keyValues, QString* error, const SweepSearchChoice& how = {});

class SweepDialog : public QDialog {
    Q_OBJECT
public:
    SweepDialog(const rl::Config& form, const QString& workspace, SweepRunner& sweeps, QWidget* parent = nullptr);

private:
    QTableWidget* buildTable();
    QWidget* buildSearch();
    SweepSearchChoice choice() const;
    QList<QPair<QString, QString>> picked() const;  // keys with values typed
    void countPoints();
    void run();
    rl::Config form_;
    QString workspace_;
    SweepRunner& sweeps_;
    QLineEdit* name_ = nullptr;
    QTableWidget* table_ = nullptr;
    QLabel* status_ = nullptr;
    QComboBox *method_ = nullptr, *objective_ = nullptr, *direction_ = nullptr, *objective2_ = nullptr, *direction2_ = nullptr;
    QSpinBox *seeds_ = nullptr, *points_ = nullptr, *minSteps_ = nullptr, *eta_ = nullptr, *budget_ = nullptr;
    QLineEdit* constraint_ = nullptr;
};
