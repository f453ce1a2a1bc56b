#include "unix_addr.h"

#include "errors.h"

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <sys/stat.h>
#include <unistd.h>

namespace tsm {

int MakeUnixAddr(const std::string& path, UnixAddr* out) {
  std::memset(&out->sa, 0, sizeof out->sa);
  out->sa.sun_family = AF_UNIX;
  out->abstract = !path.empty() && path[0] == '@';
  if (path.empty() || (out->abstract && path.size() == 1)) return EINVAL;

  if (out->abstract) {
    // sun_path[0] stays NUL; the name follows and its length comes from addrlen alone.
    std::string name = path.substr(1);
    if (name.size() > sizeof out->sa.sun_path - 1) return ENAMETOOLONG;
    std::memcpy(out->sa.sun_path + 1, name.data(), name.size());
    out->len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    return 0;
  }

  if (path.find('\0') != std::string::npos) return EINVAL;
  // Keep room for the terminating NUL.
  if (path.size() > sizeof out->sa.sun_path - 1) return ENAMETOOLONG;
  std::memcpy(out->sa.sun_path, path.data(), path.size());
  out->len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return 0;
}

std::string UnixPathFromSockaddr(const sockaddr_un& sa, socklen_t len) {
  const size_t base = offsetof(sockaddr_un, sun_path);
  if (len <= base) return "";
  size_t n = len - base;
  if (n > sizeof sa.sun_path) n = sizeof sa.sun_path;
  if (sa.sun_path[0] == '\0') return "@" + std::string(sa.sun_path + 1, n - 1);
  return std::string(sa.sun_path, strnlen(sa.sun_path, n));
}

void ReclaimStaleSocket(Napi::Env env, const std::string& path, const UnixAddr& addr, int type) {
  if (addr.abstract) return;  // abstract names vanish with their socket; nothing to reclaim
  struct stat st;
  if (lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return;

  int probe = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (probe < 0) return;  // cannot tell: leave it, bind() will report EADDRINUSE
  int rc = connect(probe, reinterpret_cast<const sockaddr*>(&addr.sa), addr.len);
  int err = errno;
  close(probe);
  // Success, EAGAIN (full backlog) and the rest mean someone may be there: keep the file.
  if (rc == 0 || err != ECONNREFUSED) return;

  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    ThrowErrno(env, errno, "unlink", ErrDetail{{}, {}, path});
  }
}

int BindUnix(int fd, const UnixAddr& addr, int mode) {
  const bool set = mode >= 0 && !addr.abstract;
  // Linux takes a unix socket file's mode from the socket inode, less the umask: fchmod the
  // socket first and clear the umask for the bind alone (the master binds on one thread).
  if (set && fchmod(fd, static_cast<mode_t>(mode)) != 0) return errno;
  mode_t old = set ? umask(0) : 0;
  int rc = bind(fd, reinterpret_cast<const sockaddr*>(&addr.sa), addr.len);
  int err = errno;
  if (set) umask(old);
  return rc == 0 ? 0 : err;
}

bool RefuseFdPassing(int fd) {
  int zero = 0;
  return setsockopt(fd, SOL_SOCKET, SO_PASSRIGHTS, &zero, sizeof zero) == 0;
}

void NoLinger(int fd) {
  linger off{0, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &off, sizeof off);
}

}  // namespace tsm
