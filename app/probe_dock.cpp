#include "probe_dock.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>

ProbeDock::ProbeDock(const QString& text, QWidget* parent) : QDockWidget("Probe text", parent) {
    setObjectName("probeDock");
    auto* w = new QWidget(this);
    auto* lay = new QHBoxLayout(w);
    edit_ = new QLineEdit(text, w);
    edit_->setObjectName("probeText");
    edit_->setToolTip("The text the heads, experts, routing and attention views show. Enter applies it.");
    auto* apply = new QPushButton("Apply", w);
    lay->addWidget(new QLabel("probe:", w));
    lay->addWidget(edit_, 1);
    lay->addWidget(apply);
    setWidget(w);
    connect(edit_, &QLineEdit::returnPressed, this, [this] { emit applied(edit_->text()); });
    connect(apply, &QPushButton::clicked, this, [this] { emit applied(edit_->text()); });
}

QString ProbeDock::text() const { return edit_->text(); }

void ProbeDock::setText(const QString& text) {
    if (edit_->text() != text) edit_->setText(text);
}
