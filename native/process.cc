// Per-process controls the master applies to itself or to its workers.
#include "errors.h"
#include "tsmaster_native.h"

#include <cerrno>
#include <cmath>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <vector>

namespace tsm {
namespace {

// The signal is sent when the *thread* that forked this process exits; Node spawns from
// its main thread, so in practice: when the parent process dies.
void SetPdeathsig(const Napi::CallbackInfo& info) {
  int sig = ArgInt32(info, 0);
  if (prctl(PR_SET_PDEATHSIG, static_cast<unsigned long>(sig), 0, 0, 0) != 0) {
    ThrowErrno(info.Env(), errno, "prctl");
  }
}

rlim_t ToRlim(double v) { return std::isfinite(v) ? static_cast<rlim_t>(v) : RLIM_INFINITY; }

void SetRlimitNofile(const Napi::CallbackInfo& info) {
  pid_t pid = ArgInt32(info, 0);
  rlimit lim;
  lim.rlim_cur = ToRlim(ArgNumber(info, 1));
  lim.rlim_max = ToRlim(ArgNumber(info, 2));
  if (prlimit(pid, RLIMIT_NOFILE, &lim, nullptr) != 0) ThrowErrno(info.Env(), errno, "prlimit");
}

void SetPriority(const Napi::CallbackInfo& info) {
  id_t pid = static_cast<id_t>(ArgInt32(info, 0));
  int nice = ArgInt32(info, 1);
  if (setpriority(PRIO_PROCESS, pid, nice) != 0) ThrowErrno(info.Env(), errno, "setpriority");
}

void SetAffinity(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  pid_t pid = ArgInt32(info, 0);
  if (info.Length() < 2 || !info[1].IsArray()) throw Napi::TypeError::New(env, "argument 1 must be an array");
  Napi::Array cpus = info[1].As<Napi::Array>();

  int max = 0;
  std::vector<int> list;
  for (uint32_t i = 0; i < cpus.Length(); ++i) {
    Napi::Value v = cpus.Get(i);
    if (!v.IsNumber()) throw Napi::TypeError::New(env, "cpu numbers must be numbers");
    int cpu = v.As<Napi::Number>().Int32Value();
    if (cpu < 0) throw Napi::TypeError::New(env, "cpu numbers must not be negative");
    list.push_back(cpu);
    if (cpu > max) max = cpu;
  }

  // Sized to the highest cpu asked for, so machines with more than CPU_SETSIZE cpus work.
  cpu_set_t* set = CPU_ALLOC(max + 1);
  if (set == nullptr) ThrowErrno(env, ENOMEM, "sched_setaffinity");
  size_t size = CPU_ALLOC_SIZE(max + 1);
  CPU_ZERO_S(size, set);
  for (int cpu : list) CPU_SET_S(cpu, size, set);
  int rc = sched_setaffinity(pid, size, set);
  int err = errno;
  CPU_FREE(set);
  if (rc != 0) ThrowErrno(env, err, "sched_setaffinity");
}

// Collects one given child, never "any child": libuv waits for the children Node spawned by
// their pids, and a wait for -1 would steal a worker's exit status from it.
// Returns null while the child runs, else { code, signal } (signal as a number).
Napi::Value WaitpidNohang(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  pid_t pid = ArgInt32(info, 0);
  if (pid <= 0) throw Napi::RangeError::New(env, "pid must be positive");
  int status = 0;
  pid_t rc;
  do {
    rc = waitpid(pid, &status, WNOHANG);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) ThrowErrno(env, errno, "waitpid");
  if (rc == 0) return env.Null();
  Napi::Object out = Napi::Object::New(env);
  out.Set("code", WIFEXITED(status) ? Napi::Value(Napi::Number::New(env, WEXITSTATUS(status))) : env.Null());
  out.Set("signal", WIFSIGNALED(status) ? Napi::Value(Napi::Number::New(env, WTERMSIG(status))) : env.Null());
  return out;
}

}  // namespace

void RegisterProcess(Napi::Env env, Napi::Object exports) {
  exports.Set("setPdeathsig", Napi::Function::New(env, SetPdeathsig, "setPdeathsig"));
  exports.Set("setRlimitNofile", Napi::Function::New(env, SetRlimitNofile, "setRlimitNofile"));
  exports.Set("setPriority", Napi::Function::New(env, SetPriority, "setPriority"));
  exports.Set("setAffinity", Napi::Function::New(env, SetAffinity, "setAffinity"));
  exports.Set("waitpidNohang", Napi::Function::New(env, WaitpidNohang, "waitpidNohang"));
}

}  // namespace tsm
