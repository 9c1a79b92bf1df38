#include "util/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace rl {

std::string atomic_file_cause(int err) {
    std::string what;
    switch (err) {
        case ENOSPC:
        case EFBIG:
        case EDQUOT:
            what = "the disk is full (or the file size limit was reached): free space or choose another folder";
            break;
        case EACCES:
        case EPERM:
        case EROFS:
            what = "the folder is read-only: make it writable or choose another folder";
            break;
        case ENOENT:
        case ENOTDIR:
            what = "the folder does not exist: create it or choose another folder";
            break;
        case EISDIR:
            what = "a folder has that name: choose another file name";
            break;
        case EIO:
            what = "the disk reported an input/output error: check the disk or choose another folder";
            break;
        default:
            what = "check the path and the disk, or choose another folder";
    }
    return what + " (" + std::strerror(err) + ")";
}

namespace {

Status failed(const std::string& path, int err) {
    return Status::error("cannot write '" + path + "': " + atomic_file_cause(err) + "; any previous file there is unchanged");
}

// The folder's entry for the new name on disk too (after the rename).
void sync_dir(const std::string& dir) {
    if (const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

}  // namespace

Status atomic_file_write(const std::string& path, const std::function<Status(std::FILE*)>& write) {
    const std::filesystem::path target(path);
    std::string dir = target.parent_path().string();
    if (dir.empty()) dir = ".";
    // Same folder as the target: rename() is atomic only within one file system. A unique name, so
    // two writers of one path (the window and a CLI run) never share a temporary.
    std::string tmp = (std::filesystem::path(dir) / ("." + target.filename().string() + ".tmp-XXXXXX")).string();
    const int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
    if (fd < 0) return failed(path, errno);
    // mkostemp makes it 0600; the file gets the mode the old one had, or the usual 0644.
    struct stat old;
    ::fchmod(fd, ::stat(path.c_str(), &old) == 0 ? (old.st_mode & 07777) : 0644);
    std::FILE* f = ::fdopen(fd, "wb");
    if (!f) {
        const int err = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        return failed(path, err);
    }
    auto give_up = [&](const Status& s) {
        std::fclose(f);  // may fail again (the same full disk): the temporary goes either way
        ::unlink(tmp.c_str());
        return s;
    };
    errno = 0;
    Status wrote = write(f);
    if (!wrote) return give_up(wrote);
    // The stream's error flag covers every fwrite the callback did not check.
    if (std::ferror(f)) return give_up(failed(path, errno ? errno : EIO));
    if (std::fflush(f) != 0) return give_up(failed(path, errno));
    // On disk before the rename, so a power loss cannot leave the name pointing at lost data.
    if (::fsync(fd) != 0) return give_up(failed(path, errno));
    if (std::fclose(f) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        return failed(path, err);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        return failed(path, err);
    }
    sync_dir(dir);
    return Status::ok();
}

Status atomic_file_write(const std::string& path, const std::string& bytes) {
    return atomic_file_write(path, [&](std::FILE* f) {
        std::fwrite(bytes.data(), 1, bytes.size(), f);
        return Status::ok();
    });
}

}  // namespace rl
