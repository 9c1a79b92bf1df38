// Writes a whole file or nothing (util/atomic_file.h, as the CLI and checkpoints do): a full disk
// leaves a user's existing preset, CSV or table as it was, and the message says why.
#pragma once
#include <QFile>
#include <QString>
#include <string>

#include "util/atomic_file.h"

// "" when written, else why not.
inline QString writeWhole(const QString& path, const std::string& bytes) {
    const rl::Status s = rl::atomic_file_write(QFile::encodeName(path).toStdString(), bytes);
    return s ? QString() : QString::fromStdString(s.msg);
}
