// The probe dock: the text the heads, experts, routing and attention views show. Enter or Apply
// sends it to the run (RunController::setProbeText).
#pragma once
#include <QDockWidget>

class QLineEdit;

class ProbeDock : public QDockWidget {
    Q_OBJECT
public:
    ProbeDock(const QString& text, QWidget* parent = nullptr);
    QString text() const;
    void setText(const QString& text);  // shown; applied by the caller

signals:
    void applied(QString text);

private:
    QLineEdit* edit_ = nullptr;
};
