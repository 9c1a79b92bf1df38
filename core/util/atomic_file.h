// Atomic file writes for everything RouteLab writes that a user keeps (checkpoints, presets, CSV,
// exports, a CLI run's files): the bytes go to a temporary file in the same folder, are flushed and
// fsynced, and only then renamed over the target (and the folder fsynced), so a full disk, a size
// limit, a read-only folder or a crash mid-write leaves the previous file whole, never a partial one.
#pragma once
#include <cstdio>
#include <functional>
#include <string>

#include "util/status.h"

namespace rl {

// Writes the file through `write` (which may ignore fwrite's results: the stream's error flag and
// errno are checked after it). On any failure the temporary is removed, the old file is unchanged,
// and the Status reads "cannot write '<path>': <cause>; <what to do> (<system message>)".
// A failed Status returned by `write` itself is passed on as is (after the cleanup).
Status atomic_file_write(const std::string& path, const std::function<Status(std::FILE*)>& write);
Status atomic_file_write(const std::string& path, const std::string& bytes);

// The cause of a failed write in words the user can act on, for errno `err` (ENOSPC/EFBIG: the disk
// is full or the size limit was reached; EACCES/EROFS: the folder is read-only; ...).
std::string atomic_file_cause(int err);

}  // namespace rl
