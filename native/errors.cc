// The one place where syscall failures become JavaScript errors.
#include "errors.h"

#include <uv.h>

#include <cerrno>
#include <unistd.h>

namespace tsm {

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const ErrDetail& detail) {
  // libuv's error numbers on Unix are the negated errno values, so its tables give the same
  // code names and messages Node prints ("EADDRINUSE", "address already in use").
  char name[64];
  char text[256];
  uv_err_name_r(-err, name, sizeof name);
  uv_strerror_r(-err, text, sizeof text);

  std::string message = std::string(syscall) + " " + name + ": " + text;
  if (detail.path) {
    message += " " + *detail.path;
  } else if (detail.address) {
    message += " " + *detail.address;
    if (detail.port) message += ":" + std::to_string(*detail.port);
  }

  Napi::Error error = Napi::Error::New(env, message);
  Napi::Object obj = error.Value();
  obj.Set("errno", Napi::Number::New(env, -err));
  obj.Set("code", Napi::String::New(env, name));
  obj.Set("syscall", Napi::String::New(env, syscall));
  if (detail.address) obj.Set("address", Napi::String::New(env, *detail.address));
  if (detail.port) obj.Set("port", Napi::Number::New(env, *detail.port));
  if (detail.path) obj.Set("path", Napi::String::New(env, *detail.path));
  return error;
}

void ThrowErrno(Napi::Env env, int err, const char* syscall, const ErrDetail& detail) {
  throw ErrnoError(env, err, syscall, detail);
}

static void RequireArg(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length()) {
    throw Napi::TypeError::New(info.Env(), "missing argument " + std::to_string(i));
  }
}

int32_t ArgInt32(const Napi::CallbackInfo& info, size_t i) {
  RequireArg(info, i);
  if (!info[i].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a number");
  }
  return info[i].As<Napi::Number>().Int32Value();
}

double ArgNumber(const Napi::CallbackInfo& info, size_t i) {
  RequireArg(info, i);
  if (!info[i].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a number");
  }
  return info[i].As<Napi::Number>().DoubleValue();
}

bool ArgBool(const Napi::CallbackInfo& info, size_t i) {
  RequireArg(info, i);
  if (!info[i].IsBoolean()) {
    throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a boolean");
  }
  return info[i].As<Napi::Boolean>().Value();
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i) {
  RequireArg(info, i);
  if (!info[i].IsString()) {
    throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a string");
  }
  return info[i].As<Napi::String>().Utf8Value();
}

FdGuard::~FdGuard() {
  if (fd_ >= 0) {
    int saved = errno;
    close(fd_);
    errno = saved;
  }
}

}  // namespace tsm
