// sd_notify: sending datagrams to a NOTIFY_SOCKET, and the master's own notify socket, read
// on a thread of its own with each sender's pid taken from SCM_CREDENTIALS.
#include "errors.h"
#include "tsmaster_native.h"
#include "unix_addr.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <system_error>
#include <thread>
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
  // Never wait for a receiver that does not read (systemd busy, a hostile NOTIFY_SOCKET).
  do {
    n = sendto(fd, message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
               reinterpret_cast<const sockaddr*>(&addr.sa), addr.len);
  } while (n < 0 && errno == EINTR);
  if (n < 0) ThrowErrno(env, errno, "sendto", d);
}

struct Datagram {
  std::string text;
  pid_t pid;
};

// Shared by the JS object and the reader thread; whichever lets go last frees it.
struct NotifyState {
  static constexpr size_t kMaxDatagram = 64 * 1024;
  static constexpr size_t kMaxQueued = 1024;

  int fd = -1;
  int wake[2] = {-1, -1};
  std::string path;
  bool abstract = false;
  std::atomic<bool> closed{false};
  Napi::ThreadSafeFunction tsfn;
  std::thread reader;

  ~NotifyState() {
    if (reader.joinable()) reader.detach();  // the last owner may be the reader itself
    if (fd >= 0) close(fd);
    if (wake[0] >= 0) close(wake[0]);
    if (wake[1] >= 0) close(wake[1]);
  }
  // From JS: stop delivering at once, without waiting for the reader. The fd number stays
  // ours (now an unbound socket) until the reader has left; the old socket, and with it an
  // abstract name, is released when the reader's poll() lets go of it.
  void Close() {
    if (closed.exchange(true)) return;
    if (!abstract) unlink(path.c_str());
    int blank = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (blank >= 0) {
      dup3(blank, fd, O_CLOEXEC);
      close(blank);
    }
    char one = 1;
    (void)!write(wake[1], &one, 1);
  }
};

// At the end of the environment (process exit, or a worker thread ending, after which the
// addon may be unloaded) the reader must be gone: close and wait for it.
void EnvCleanup(void* arg) {
  auto* held = static_cast<std::shared_ptr<NotifyState>*>(arg);
  (*held)->Close();
  if ((*held)->reader.joinable() && (*held)->reader.get_id() != std::this_thread::get_id()) (*held)->reader.join();
  delete held;
}

// Closing a received fd can block (a TCP socket with SO_LINGER waits up to its linger time,
// a FUSE file waits for its daemon): turn linger off, and do it on this thread, never the loop's.
void DiscardFd(int passed) {
  NoLinger(passed);
  close(passed);
}

// One datagram: the sender's pid from SCM_CREDENTIALS; passed fds (FDSTORE=1) are not kept.
bool ReadOne(NotifyState& s, std::vector<char>& buf, Datagram* out) {
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
  ssize_t n;
  do {
    n = recvmsg(s.fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return false;
  out->pid = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET) continue;
    if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(ucred))) {
      ucred cred;
      std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
      out->pid = cred.pid;
    } else if (c->cmsg_type == SCM_RIGHTS) {
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t k = 0; k < count; ++k) {
        int passed;
        std::memcpy(&passed, CMSG_DATA(c) + k * sizeof(int), sizeof passed);
        DiscardFd(passed);
      }
    }
  }
  // A datagram longer than the buffer arrives truncated to kMaxDatagram bytes.
  size_t len = static_cast<size_t>(n) < buf.size() ? static_cast<size_t>(n) : buf.size();
  out->text.assign(buf.data(), len);
  return true;
}

void Deliver(Napi::Env env, Napi::Function onMessage, Datagram* d, NotifyState* s) {
  std::unique_ptr<Datagram> owned(d);
  if (env == nullptr || s->closed) return;
  try {
    onMessage.Call({Napi::String::New(env, d->text), Napi::Number::New(env, d->pid)});
  } catch (const Napi::Error& err) {
    // Nothing in JS can catch this: report it as Node reports an exception in any callback.
    napi_fatal_exception(env, err.Value());
  }
}

// The reader thread: whatever a sender does (fds that block on close, a flood) costs this
// thread, never the master's loop; a full queue drops datagrams instead of growing.
void ReadLoop(std::shared_ptr<NotifyState> s) {
  std::vector<char> buf(NotifyState::kMaxDatagram);
  while (!s->closed) {
    pollfd fds[2] = {{s->fd, POLLIN, 0}, {s->wake[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents != 0) break;
    Datagram d;
    while (!s->closed && ReadOne(*s, buf, &d)) {
      auto* copy = new Datagram(std::move(d));
      if (s->tsfn.NonBlockingCall(copy, [s](Napi::Env env, Napi::Function fn, Datagram* dg) { Deliver(env, fn, dg, s.get()); }) != napi_ok) {
        delete copy;
      }
    }
  }
  s->tsfn.Release();
}

class NotifySocketWrap : public Napi::ObjectWrap<NotifySocketWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NotifySocket", {InstanceMethod<&NotifySocketWrap::CloseMethod>("close")});
  }
  explicit NotifySocketWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NotifySocketWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      throw Napi::TypeError::New(info.Env(), "NotifySocket is created by openNotifySocket()");
    }
    state_ = *info[0].As<Napi::External<std::shared_ptr<NotifyState>>>().Data();
  }
  // Dropping the JS object does not close the socket (like a Node handle); close() does.

 private:
  void CloseMethod(const Napi::CallbackInfo&) { state_->Close(); }
  std::shared_ptr<NotifyState> state_;
};

struct AddonData {
  Napi::FunctionReference notify_socket_ctor;
};

// openNotifySocket(path, onMessage, mode: -1 for the umask's) -> NotifySocket
Napi::Value OpenNotifySocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0);
  if (info.Length() < 2 || !info[1].IsFunction()) throw Napi::TypeError::New(env, "argument 1 must be a function");
  int mode = ArgInt32(info, 2);
  ErrDetail d{{}, {}, path};

  UnixAddr addr;
  if (int err = MakeUnixAddr(path, &addr)) ThrowErrno(env, err, "bind", d);
  auto s = std::make_shared<NotifyState>();
  s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s->fd < 0) ThrowErrno(env, errno, "socket", d);
  if (pipe2(s->wake, O_CLOEXEC) != 0) ThrowErrno(env, errno, "pipe2", d);
  int one = 1;
  if (setsockopt(s->fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0) ThrowErrno(env, errno, "setsockopt", d);
  // Older kernels do not know the option: the reader thread copes anyway.
  RefuseFdPassing(s->fd);
  ReclaimStaleSocket(env, path, addr, SOCK_DGRAM);
  if (int err = BindUnix(s->fd, addr, mode)) ThrowErrno(env, err, "bind", d);
  s->path = path;
  s->abstract = addr.abstract;

  s->tsfn = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "tsmaster.NotifySocket", NotifyState::kMaxQueued, 1);
  // The master keeps itself alive; this socket alone must not hold the process open.
  s->tsfn.Unref(env);
  try {
    s->reader = std::thread(ReadLoop, s);
  } catch (const std::system_error& e) {
    s->tsfn.Release();
    if (!addr.abstract) unlink(path.c_str());
    ThrowErrno(env, e.code().value(), "pthread_create", d);
  }
  napi_add_env_cleanup_hook(env, EnvCleanup, new std::shared_ptr<NotifyState>(s));

  AddonData* data = env.GetInstanceData<AddonData>();
  auto* held = new std::shared_ptr<NotifyState>(s);
  return data->notify_socket_ctor.New({Napi::External<std::shared_ptr<NotifyState>>::New(env, held, [](Napi::Env, std::shared_ptr<NotifyState>* p) { delete p; })});
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
