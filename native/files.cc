// Files the root master opens in places other users may write: never through a symlink,
// only regular files, and (for the worker user's files) with that user's rights.
#include "errors.h"
#include "tsmaster_native.h"

#include <cerrno>
#include <fcntl.h>
#include <string>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

namespace tsm {
namespace {

// The raw syscalls change only the calling thread's credentials (glibc's wrappers would
// change every thread's): the open below is checked as `uid`:`gid` with no supplementary
// groups, and nothing else in the process sees the change.
class FsIdentity {
 public:
  FsIdentity(int uid, int gid) : active_(uid >= 0) {
    if (!active_) return;
    int n = getgroups(0, nullptr);
    if (n > 0) {
      groups_.resize(static_cast<size_t>(n));
      n = getgroups(n, groups_.data());
      groups_.resize(n > 0 ? static_cast<size_t>(n) : 0);
    }
    syscall(SYS_setgroups, 0, nullptr);
    syscall(SYS_setfsgid, gid);
    syscall(SYS_setfsuid, uid);
  }
  ~FsIdentity() {
    if (!active_) return;
    int saved = errno;
    syscall(SYS_setfsuid, geteuid());
    syscall(SYS_setfsgid, getegid());
    syscall(SYS_setgroups, groups_.size(), groups_.data());
    errno = saved;
  }
  FsIdentity(const FsIdentity&) = delete;
  FsIdentity& operator=(const FsIdentity&) = delete;

 private:
  bool active_;
  std::vector<gid_t> groups_;
};

int OpenRetry(const char* path, int flags, mode_t mode) {
  int fd;
  do {
    fd = open(path, flags, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// openFile(path, flags, mode, uid, gid) -> fd. `flags` are O_* access and O_CREAT/O_APPEND/
// O_TRUNC; uid -1 opens as this process. The last component is never followed. An existing
// file is first pinned with O_PATH and checked to be a regular file, then reopened through
// /proc/self/fd, so a swap between check and open cannot redirect it, and nothing else (a
// FIFO, a device, a file with another hard link) is ever opened for real. A new file is
// created with O_EXCL.
Napi::Value OpenFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0);
  int flags = ArgInt32(info, 1);
  mode_t mode = static_cast<mode_t>(ArgInt32(info, 2));
  int uid = ArgInt32(info, 3);
  int gid = ArgInt32(info, 4);
  ErrDetail d{{}, {}, path};
  const int base = (flags & ~(O_CREAT | O_EXCL)) | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW;

  FsIdentity as(uid, gid);
  for (int attempt = 0; attempt < 3; ++attempt) {
    int pinned = OpenRetry(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC, 0);
    if (pinned < 0) {
      if (errno != ENOENT || !(flags & O_CREAT)) ThrowErrno(env, errno, "open", d);
      int fd = OpenRetry(path.c_str(), base | O_CREAT | O_EXCL, mode);
      if (fd >= 0) return Napi::Number::New(env, fd);
      if (errno == EEXIST) continue;  // created meanwhile: check what it is
      ThrowErrno(env, errno, "open", d);
    }
    FdGuard guard(pinned);
    struct stat st;
    if (fstat(pinned, &st) != 0) ThrowErrno(env, errno, "fstat", d);
    if (S_ISLNK(st.st_mode)) ThrowErrno(env, ELOOP, "open", d);
    if (!S_ISREG(st.st_mode)) {
      Napi::Error e = ErrnoError(env, EINVAL, "open", d);
      e.Value().Set("message", "open EINVAL: not a regular file " + path);
      throw e;
    }
    // A second name for the file: a hard link planted where protected_hardlinks is off
    // would have root append to, say, /etc/shadow. Opened with another user's rights, the
    // open below is that user's own and a second name gives it nothing.
    if (st.st_nlink > 1 && uid < 0) {
      Napi::Error e = ErrnoError(env, EMLINK, "open", d);
      e.Value().Set("message", "open EMLINK: file has more than one link " + path);
      throw e;
    }
    std::string self = "/proc/self/fd/" + std::to_string(pinned);
    int fd = OpenRetry(self.c_str(), base & ~O_NOFOLLOW, 0);
    if (fd < 0) ThrowErrno(env, errno, "open", d);
    return Napi::Number::New(env, fd);
  }
  ThrowErrno(env, EEXIST, "open", d);
}

// flock(fd, exclusive) -> true when locked, false when another open file holds the lock.
Napi::Value Flock(const Napi::CallbackInfo& info) {
  int fd = ArgInt32(info, 0);
  int op = (ArgBool(info, 1) ? LOCK_EX : LOCK_SH) | LOCK_NB;
  int rc;
  do {
    rc = flock(fd, op);
  } while (rc != 0 && errno == EINTR);
  if (rc == 0) return Napi::Boolean::New(info.Env(), true);
  if (errno == EWOULDBLOCK) return Napi::Boolean::New(info.Env(), false);
  ThrowErrno(info.Env(), errno, "flock");
}

// unlinkFile(path, uid, gid): unlink(2) of the last component, checked as `uid`:`gid` (-1:
// as this process), so the entry removed is one that user could have removed itself.
Napi::Value UnlinkFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0);
  FsIdentity as(ArgInt32(info, 1), ArgInt32(info, 2));
  ErrDetail d{{}, {}, path};
  if (unlink(path.c_str()) != 0) ThrowErrno(env, errno, "unlink", d);
  return env.Undefined();
}

}  // namespace

void RegisterFiles(Napi::Env env, Napi::Object exports) {
  exports.Set("openFile", Napi::Function::New(env, OpenFile, "openFile"));
  exports.Set("unlinkFile", Napi::Function::New(env, UnlinkFile, "unlinkFile"));
  exports.Set("flock", Napi::Function::New(env, Flock, "flock"));
}

}  // namespace tsm
