// tsmaster native addon: only what Node cannot do itself.
// Loaded solely by src/native/index.ts, which validates arguments before calling in.
#include "tsmaster_native.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  tsm::RegisterSockets(env, exports);
  tsm::RegisterFds(env, exports);
  tsm::RegisterProcess(env, exports);
  tsm::RegisterNotify(env, exports);
  tsm::RegisterFiles(env, exports);
  return exports;
}

NODE_API_MODULE(tsmaster_native, Init)
