// Node-style system errors and argument readers shared by every binding function.
#pragma once

#include <napi.h>

#include <cstdint>
#include <optional>
#include <string>

namespace tsm {

// Extra context a system error carries, as Node's own errors do:
// address/port for TCP, path for unix sockets.
struct ErrDetail {
  std::optional<std::string> address;
  std::optional<int> port;
  std::optional<std::string> path;
};

// Builds an Error like Node's: message "<syscall> <CODE>: <text>[ <path>| <address>:<port>]",
// err.code = errno name, err.errno = -errno, err.syscall, plus address/port/path when given.
// `err` is a positive errno value.
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const ErrDetail& detail = {});

// Throws ErrnoError as a C++ exception (node-addon-api turns it into a JS exception).
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* syscall, const ErrDetail& detail = {});

// Argument readers. The TypeScript wrapper validates arguments first; these only guard
// against direct misuse of the binding and throw a TypeError.
int32_t ArgInt32(const Napi::CallbackInfo& info, size_t i);
double ArgNumber(const Napi::CallbackInfo& info, size_t i);
bool ArgBool(const Napi::CallbackInfo& info, size_t i);
std::string ArgString(const Napi::CallbackInfo& info, size_t i);

// Closes an fd on scope exit unless released: every failure path after socket() closes it.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard();
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

}  // namespace tsm
