// Tokenizing a user's text takes seconds (SentencePiece on megabytes; docs/architecture.md §8),
// so a file corpus is prepared on a thread of its own behind a progress dialog: the window keeps
// painting and the current run keeps training. The embedded corpus takes milliseconds and is
// prepared at once, without a dialog. Opening a model folder takes seconds too (a 1B model's weights).
#pragma once
#include <QStringList>
#include <memory>

#include "train/trainer.h"

class QWidget;

// The run's state; `stages` gets what the preparation said it was doing, in order.
rl::Result<std::unique_ptr<rl::TrainState>> prepareWithDialog(QWidget* parent, const rl::Config& cfg, QStringList& stages);
// A Hugging Face model folder opened to inspect (io/hf_inspect.h: mapping and checking the weights,
// reading the tokenizer, encoding the embedded corpus with it), the same way.
rl::Result<std::unique_ptr<rl::TrainState>> openModelWithDialog(QWidget* parent, const std::string& dir, QStringList& stages);
