// sd_notify: sending datagrams to a NOTIFY_SOCKET, and the master's own notify socket,
// read on Node's event loop with each sender's pid taken from SCM_CREDENTIALS.
#include "errors.h"
#include "tsmaster_native.h"
#include "unix_addr.h"

#include <uv.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <vector>

namespace tsm {
namespace {

// sdNotify(socketPath, message)
void SdNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0);
  std::string message = ArgString(info, 1);
  ErrDetail d{{}, {}, path};

  UnixAddr addr;
  if (int err = MakeUnixAddr(path, &addr)) ThrowErrno(env, err, "sendto", d);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, errno, "socket", d);
  FdGuard guard(fd);
  // The receiver sets SO_PASSCRED, so the kernel attaches our credentials by itself.
  ssize_t n;
  do {
    n = sendto(fd, message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr.sa),
               addr.len);
  } while (n < 0 && errno == EINTR);
  if (n < 0) ThrowErrno(env, errno, "sendto", d);
}

class NotifySocketWrap;

// Owned by itself: lives from open until libuv has closed the poll handle.
struct NotifyState {
  static constexpr size_t kMaxDatagram = 64 * 1024;

  napi_env env = nullptr;
  int fd = -1;
  std::string path;
  bool abstract = false;
  uv_poll_t poll;
  Napi::FunctionReference callback;
  std::unique_ptr<Napi::AsyncContext> context;
  NotifySocketWrap* owner = nullptr;
  // Registered while the poll handle exists: teardown (process exit, or a worker thread
  // ending, after which the addon may be unloaded) waits until the handle is closed.
  napi_async_cleanup_hook_handle cleanup = nullptr;
  bool closed = false;
  bool in_callback = false;
  std::vector<char> buf = std::vector<char>(kMaxDatagram);

  void Close();
  void ReleaseJs() {
    context.reset();
    callback.Reset();
  }
  void OnReadable();
  void Deliver(size_t len, pid_t pid);
};

class NotifySocketWrap : public Napi::ObjectWrap<NotifySocketWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NotifySocket", {InstanceMethod<&NotifySocketWrap::CloseMethod>("close")});
  }
  explicit NotifySocketWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NotifySocketWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      throw Napi::TypeError::New(info.Env(), "NotifySocket is created by openNotifySocket()");
    }
    state_ = info[0].As<Napi::External<NotifyState>>().Data();
    state_->owner = this;
  }
  // Dropping the JS object does not close the socket (like a Node handle); close() or
  // environment teardown does.
  ~NotifySocketWrap() override {
    if (state_ != nullptr) state_->owner = nullptr;
  }
  void Detach() { state_ = nullptr; }

 private:
  void CloseMethod(const Napi::CallbackInfo&) {
    if (state_ != nullptr) state_->Close();  // Close() detaches us
  }
  NotifyState* state_ = nullptr;
};

struct AddonData {
  Napi::FunctionReference notify_socket_ctor;
};

void CleanupHook(napi_async_cleanup_hook_handle, void* arg) { static_cast<NotifyState*>(arg)->Close(); }

void NotifyState::Close() {
  if (closed) return;
  closed = true;
  if (owner != nullptr) {
    owner->Detach();
    owner = nullptr;
  }
  uv_poll_stop(&poll);
  close(fd);
  fd = -1;
  if (!abstract) unlink(path.c_str());
  // Inside onMessage the function and its async context are still in use: OnReadable
  // releases them once the call returns.
  if (!in_callback) ReleaseJs();
  // The close callback touches no JS. Removing the cleanup hook there tells a pending
  // teardown that this handle is done.
  uv_close(reinterpret_cast<uv_handle_t*>(&poll), [](uv_handle_t* h) {
    auto* s = static_cast<NotifyState*>(h->data);
    if (s->cleanup != nullptr) napi_remove_async_cleanup_hook(s->cleanup);
    delete s;
  });
}

void NotifyState::Deliver(size_t len, pid_t pid) {
  Napi::Env e(env);
  Napi::HandleScope scope(e);
  in_callback = true;
  try {
    callback.MakeCallback(e.Global(), {Napi::String::New(e, buf.data(), len), Napi::Number::New(e, pid)},
                          *context);
  } catch (const Napi::Error& err) {
    // Nothing in JS can catch this: report it as Node reports an exception in any callback.
    napi_fatal_exception(env, err.Value());
  }
  in_callback = false;
  if (closed) ReleaseJs();
}

void NotifyState::OnReadable() {
  // Bounded per wakeup so a flood cannot starve the loop; the poll is level-triggered.
  for (int i = 0; i < 64 && !closed; ++i) {
    union {
      cmsghdr align;
      char bytes[CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(int) * 32)];
    } control;
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.bytes;
    msg.msg_controllen = sizeof control.bytes;

    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // EAGAIN: drained
    }

    pid_t pid = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET) continue;
      if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(ucred))) {
        ucred cred;
        std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
        pid = cred.pid;
      } else if (c->cmsg_type == SCM_RIGHTS) {
        // Passed fds (FDSTORE=1) are not kept: close them rather than leak them.
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t k = 0; k < count; ++k) {
          int passed;
          std::memcpy(&passed, CMSG_DATA(c) + k * sizeof(int), sizeof passed);
          close(passed);
        }
      }
    }
    // A datagram longer than the buffer arrives truncated to kMaxDatagram bytes.
    size_t len = static_cast<size_t>(n) < buf.size() ? static_cast<size_t>(n) : buf.size();
    Deliver(len, pid);
  }
}

// openNotifySocket(path, onMessage, mode: -1 for the umask's) -> NotifySocket
Napi::Value OpenNotifySocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0);
  if (info.Length() < 2 || !info[1].IsFunction()) throw Napi::TypeError::New(env, "argument 1 must be a function");
  int mode = ArgInt32(info, 2);
  ErrDetail d{{}, {}, path};

  UnixAddr addr;
  if (int err = MakeUnixAddr(path, &addr)) ThrowErrno(env, err, "bind", d);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) ThrowErrno(env, errno, "socket", d);
  FdGuard guard(fd);
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0) ThrowErrno(env, errno, "setsockopt", d);
  ReclaimStaleSocket(env, path, addr, SOCK_DGRAM);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&addr.sa), addr.len) != 0) ThrowErrno(env, errno, "bind", d);
  if (mode >= 0 && !addr.abstract && chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) {
    int err = errno;
    unlink(path.c_str());
    ThrowErrno(env, err, "chmod", d);
  }

  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    if (!addr.abstract) unlink(path.c_str());
    throw Napi::Error::New(env, "openNotifySocket: no event loop");
  }
  auto state = std::make_unique<NotifyState>();
  if (int rc = uv_poll_init(loop, &state->poll, fd)) {
    if (!addr.abstract) unlink(path.c_str());
    ThrowErrno(env, -rc, "uv_poll_init", d);
  }
  // From here the handle is registered with the loop and must be closed through Close().
  NotifyState* s = state.release();
  s->env = env;
  s->fd = guard.release();
  s->path = path;
  s->abstract = addr.abstract;
  s->poll.data = s;
  s->callback = Napi::Persistent(info[1].As<Napi::Function>());
  s->context = std::make_unique<Napi::AsyncContext>(env, "tsmaster.NotifySocket");
  if (napi_add_async_cleanup_hook(env, CleanupHook, s, &s->cleanup) != napi_ok) s->cleanup = nullptr;

  int rc = uv_poll_start(&s->poll, UV_READABLE, [](uv_poll_t* h, int status, int) {
    if (status == 0) static_cast<NotifyState*>(h->data)->OnReadable();
  });
  if (rc != 0) {
    s->Close();
    ThrowErrno(env, -rc, "uv_poll_start", d);
  }
  // The master keeps itself alive; this socket alone must not hold the process open.
  uv_unref(reinterpret_cast<uv_handle_t*>(&s->poll));

  AddonData* data = env.GetInstanceData<AddonData>();
  return data->notify_socket_ctor.New({Napi::External<NotifyState>::New(env, s)});
}

}  // namespace

void RegisterNotify(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->notify_socket_ctor = Napi::Persistent(NotifySocketWrap::Define(env));
  env.SetInstanceData(data);
  exports.Set("sdNotify", Napi::Function::New(env, SdNotify, "sdNotify"));
  exports.Set("openNotifySocket", Napi::Function::New(env, OpenNotifySocket, "openNotifySocket"));
}

}  // namespace tsm
