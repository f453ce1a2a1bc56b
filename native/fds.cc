// File descriptor plumbing: FD_CLOEXEC, close, dup2 (log reopen points fd 1/2 at a new file).
#include "errors.h"
#include "tsmaster_native.h"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace tsm {
namespace {

Napi::Value GetCloexec(const Napi::CallbackInfo& info) {
  int fd = ArgInt32(info, 0);
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0) ThrowErrno(info.Env(), errno, "fcntl");
  return Napi::Boolean::New(info.Env(), (flags & FD_CLOEXEC) != 0);
}

void SetCloexec(const Napi::CallbackInfo& info) {
  int fd = ArgInt32(info, 0);
  bool on = ArgBool(info, 1);
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0) ThrowErrno(info.Env(), errno, "fcntl");
  int wanted = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
  if (wanted != flags && fcntl(fd, F_SETFD, wanted) != 0) ThrowErrno(info.Env(), errno, "fcntl");
}

void CloseFd(const Napi::CallbackInfo& info) {
  int fd = ArgInt32(info, 0);
  // On Linux the fd is released even when close() reports EINTR; retrying could close
  // an fd another thread has just been given.
  if (close(fd) != 0 && errno != EINTR) ThrowErrno(info.Env(), errno, "close");
}

void Dup2(const Napi::CallbackInfo& info) {
  int oldfd = ArgInt32(info, 0);
  int newfd = ArgInt32(info, 1);
  int rc;
  do {
    rc = dup2(oldfd, newfd);
  } while (rc < 0 && (errno == EINTR || errno == EBUSY));
  if (rc < 0) ThrowErrno(info.Env(), errno, "dup2");
}

// A second descriptor for the same socket, for a libuv handle that closes its own.
Napi::Value DupCloexec(const Napi::CallbackInfo& info) {
  int fd = ArgInt32(info, 0);
  int rc = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (rc < 0) ThrowErrno(info.Env(), errno, "fcntl");
  return Napi::Number::New(info.Env(), rc);
}

}  // namespace

void RegisterFds(Napi::Env env, Napi::Object exports) {
  exports.Set("getCloexec", Napi::Function::New(env, GetCloexec, "getCloexec"));
  exports.Set("setCloexec", Napi::Function::New(env, SetCloexec, "setCloexec"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("dup2", Napi::Function::New(env, Dup2, "dup2"));
  exports.Set("dupCloexec", Napi::Function::New(env, DupCloexec, "dupCloexec"));
}

}  // namespace tsm
