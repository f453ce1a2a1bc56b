// Listening sockets bound natively (the master never polls them), getsockname and SO_PEERCRED.
#include "errors.h"
#include "tsmaster_native.h"
#include "unix_addr.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace tsm {
namespace {

// Parses a numeric IPv4/IPv6 host ("127.0.0.1", "::1", "[::1]", "fe80::1%eth0").
// Returns 0, or EINVAL for a host that is not an IP literal, or ENODEV for an unknown zone.
int ParseIp(std::string host, int port, sockaddr_storage* ss, socklen_t* len) {
  std::memset(ss, 0, sizeof *ss);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }

  auto* v4 = reinterpret_cast<sockaddr_in*>(ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    *len = sizeof *v4;
    return 0;
  }

  auto* v6 = reinterpret_cast<sockaddr_in6*>(ss);
  std::string zone;
  size_t pct = host.find('%');
  if (pct != std::string::npos) {
    zone = host.substr(pct + 1);
    host = host.substr(0, pct);
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) != 1) return EINVAL;
  v6->sin6_family = AF_INET6;
  v6->sin6_port = htons(static_cast<uint16_t>(port));
  if (!zone.empty()) {
    unsigned idx = if_nametoindex(zone.c_str());
    if (idx == 0) {
      char* end = nullptr;
      unsigned long n = std::strtoul(zone.c_str(), &end, 10);
      if (end == zone.c_str() || *end != '\0') return ENODEV;
      idx = static_cast<unsigned>(n);
    }
    v6->sin6_scope_id = idx;
  }
  *len = sizeof *v6;
  return 0;
}

void SetIntOpt(Napi::Env env, int fd, int level, int name, int value, const ErrDetail& d) {
  if (setsockopt(fd, level, name, &value, sizeof value) != 0) ThrowErrno(env, errno, "setsockopt", d);
}

// listenTcp(host, port, backlog, reuseport, ipv6Only: -1 system default | 0 | 1) -> fd
Napi::Value ListenTcp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string host = ArgString(info, 0);
  int port = ArgInt32(info, 1);
  int backlog = ArgInt32(info, 2);
  bool reuseport = ArgBool(info, 3);
  int v6only = ArgInt32(info, 4);
  ErrDetail d{host, port, {}};

  sockaddr_storage ss;
  socklen_t len = 0;
  if (int err = ParseIp(host, port, &ss, &len)) ThrowErrno(env, err, "inet_pton", d);

  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) ThrowErrno(env, errno, "socket", d);
  FdGuard guard(fd);

  SetIntOpt(env, fd, SOL_SOCKET, SO_REUSEADDR, 1, d);
  if (reuseport) SetIntOpt(env, fd, SOL_SOCKET, SO_REUSEPORT, 1, d);
  if (ss.ss_family == AF_INET6 && v6only >= 0) SetIntOpt(env, fd, IPPROTO_IPV6, IPV6_V6ONLY, v6only, d);

  if (bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0) ThrowErrno(env, errno, "bind", d);
  if (listen(fd, backlog) != 0) ThrowErrno(env, errno, "listen", d);
  return Napi::Number::New(env, guard.release());
}

// listenUnix(path, backlog, mode: -1 to leave the umask's mode) -> fd
Napi::Value ListenUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0);
  int backlog = ArgInt32(info, 1);
  int mode = ArgInt32(info, 2);
  ErrDetail d{{}, {}, path};

  UnixAddr addr;
  if (int err = MakeUnixAddr(path, &addr)) ThrowErrno(env, err, "bind", d);

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) ThrowErrno(env, errno, "socket", d);
  FdGuard guard(fd);

  ReclaimStaleSocket(env, path, addr, SOCK_STREAM);
  if (int err = BindUnix(fd, addr, mode)) ThrowErrno(env, err, "bind", d);
  if (listen(fd, backlog) != 0) {
    int err = errno;
    if (!addr.abstract) unlink(path.c_str());
    ThrowErrno(env, err, "listen", d);
  }
  return Napi::Number::New(env, guard.release());
}

Napi::Value GetSockName(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt32(info, 0);
  sockaddr_storage ss;
  std::memset(&ss, 0, sizeof ss);
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) ThrowErrno(env, errno, "getsockname");

  Napi::Object out = Napi::Object::New(env);
  char text[INET6_ADDRSTRLEN];
  switch (ss.ss_family) {
    case AF_INET: {
      auto* v4 = reinterpret_cast<const sockaddr_in*>(&ss);
      inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
      out.Set("family", "IPv4");
      out.Set("address", text);
      out.Set("port", Napi::Number::New(env, ntohs(v4->sin_port)));
      break;
    }
    case AF_INET6: {
      auto* v6 = reinterpret_cast<const sockaddr_in6*>(&ss);
      inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
      out.Set("family", "IPv6");
      out.Set("address", text);
      out.Set("port", Napi::Number::New(env, ntohs(v6->sin6_port)));
      break;
    }
    case AF_UNIX:
      out.Set("family", "unix");
      out.Set("path", UnixPathFromSockaddr(*reinterpret_cast<const sockaddr_un*>(&ss), len));
      break;
    default:
      ThrowErrno(env, EAFNOSUPPORT, "getsockname");
  }
  return out;
}

Napi::Value GetPeerCred(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt32(info, 0);
  ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) ThrowErrno(env, errno, "getsockopt");
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, cred.pid));
  out.Set("uid", Napi::Number::New(env, cred.uid));
  out.Set("gid", Napi::Number::New(env, cred.gid));
  return out;
}

// socketInfo(fd) -> { family, type, listening }: what an inherited fd really is, so that
// a datagram socket or a non-listening one is never taken for a listener.
Napi::Value SocketInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt32(info, 0);
  struct stat st;
  if (fstat(fd, &st) != 0) ThrowErrno(env, errno, "fstat");
  if (!S_ISSOCK(st.st_mode)) ThrowErrno(env, ENOTSOCK, "getsockopt");
  int domain = 0, type = 0, listening = 0;
  socklen_t len = sizeof(int);
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) ThrowErrno(env, errno, "getsockopt");
  len = sizeof(int);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) ThrowErrno(env, errno, "getsockopt");
  len = sizeof(int);
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0) ThrowErrno(env, errno, "getsockopt");
  Napi::Object out = Napi::Object::New(env);
  out.Set("family", domain == AF_INET ? "IPv4" : domain == AF_INET6 ? "IPv6" : domain == AF_UNIX ? "unix" : "other");
  out.Set("type", type == SOCK_STREAM ? "stream" : type == SOCK_DGRAM ? "dgram" : type == SOCK_SEQPACKET ? "seqpacket" : "other");
  out.Set("listening", Napi::Boolean::New(env, listening != 0));
  return out;
}

// refuseFdPassing(fd) -> whether the kernel refuses SCM_RIGHTS to this unix socket now.
Napi::Value RefuseFdPassingJs(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), RefuseFdPassing(ArgInt32(info, 0)));
}

void NoLingerJs(const Napi::CallbackInfo& info) {
  NoLinger(ArgInt32(info, 0));
}

}  // namespace

void RegisterSockets(Napi::Env env, Napi::Object exports) {
  exports.Set("listenTcp", Napi::Function::New(env, ListenTcp, "listenTcp"));
  exports.Set("listenUnix", Napi::Function::New(env, ListenUnix, "listenUnix"));
  exports.Set("getsockname", Napi::Function::New(env, GetSockName, "getsockname"));
  exports.Set("getPeerCred", Napi::Function::New(env, GetPeerCred, "getPeerCred"));
  exports.Set("socketInfo", Napi::Function::New(env, SocketInfo, "socketInfo"));
  exports.Set("refuseFdPassing", Napi::Function::New(env, RefuseFdPassingJs, "refuseFdPassing"));
  exports.Set("noLinger", Napi::Function::New(env, NoLingerJs, "noLinger"));
}

}  // namespace tsm
