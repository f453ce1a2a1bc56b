// AF_UNIX addresses: filesystem paths and Linux abstract names written as "@name".
#pragma once

#include <napi.h>

#include <string>
#include <sys/socket.h>
#include <sys/un.h>

namespace tsm {

struct UnixAddr {
  sockaddr_un sa;
  socklen_t len;
  bool abstract;
};

// Fills `out` for `path`; "@name" is the abstract name "\0name". Returns 0, or EINVAL
// (empty path, NUL inside a filesystem path) or ENAMETOOLONG (does not fit sun_path).
int MakeUnixAddr(const std::string& path, UnixAddr* out);

// The path of a sockaddr_un as returned by the kernel: "" when unnamed, "@name" when abstract.
std::string UnixPathFromSockaddr(const sockaddr_un& sa, socklen_t len);

// Before binding a filesystem path: if a socket file exists there and nothing answers a
// connect (ECONNREFUSED), it is stale and is unlinked. A live socket, or a file that is not
// a socket, is left alone so that bind() fails with EADDRINUSE. `type` is SOCK_STREAM or
// SOCK_DGRAM. Throws only if unlinking a stale socket fails.
void ReclaimStaleSocket(Napi::Env env, const std::string& path, const UnixAddr& addr, int type);

// bind() with the socket file created at `mode` (-1: the umask's) by the kernel itself, so
// no chmod by path follows that a symlink swapped in by a user who can write the directory
// could redirect. Returns 0 or an errno value.
int BindUnix(int fd, const UnixAddr& addr, int mode);

// Linux >= 6.16: a unix socket can refuse SCM_RIGHTS outright (the sender gets EPERM).
#ifndef SO_PASSRIGHTS
#define SO_PASSRIGHTS 83
#endif

// Make SCM_RIGHTS to this socket fail for the sender. False when the kernel is older and
// knows no such option: the receiver must then discard whatever fds arrive.
bool RefuseFdPassing(int fd);

// Turn SO_LINGER off, so that closing a socket someone else handed us never blocks on it.
void NoLinger(int fd);

}  // namespace tsm
