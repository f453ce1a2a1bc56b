// Each source file registers its own functions on the addon's exports.
#pragma once

#include <napi.h>

namespace tsm {

void RegisterSockets(Napi::Env env, Napi::Object exports);  // sockets.cc
void RegisterFds(Napi::Env env, Napi::Object exports);      // fds.cc
void RegisterProcess(Napi::Env env, Napi::Object exports);  // process.cc
void RegisterNotify(Napi::Env env, Napi::Object exports);   // notify.cc
void RegisterFiles(Napi::Env env, Napi::Object exports);    // files.cc

}  // namespace tsm
