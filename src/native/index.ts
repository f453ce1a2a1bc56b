// Typed wrapper around the native addon (native/*.cc). This is the only module that loads the
// .node file. Every function validates its arguments here and throws
// TsmError('TSM_ERR_NATIVE_ARG') for bad ones; syscall failures come from the addon as
// Node-style errors (`code`, negative `errno`, `syscall`, and `address`/`port` or `path`),
// see ErrnoError in ../errors.ts.
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import { TsmError } from '../errors.js';

export type SockName =
  | { family: 'IPv4' | 'IPv6'; address: string; port: number }
  | { family: 'unix'; path: string };

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

export interface SocketInfo {
  family: 'IPv4' | 'IPv6' | 'unix' | 'other';
  type: 'stream' | 'dgram' | 'seqpacket' | 'other';
  /** SO_ACCEPTCONN: listen() was called on it. */
  listening: boolean;
}

export interface NotifySocket {
  readonly path: string;
  close(): void;
}

/** The raw binding's signatures (positional, already validated). */
interface Binding {
  listenTcp(host: string, port: number, backlog: number, reuseport: boolean, ipv6Only: -1 | 0 | 1): number;
  listenUnix(path: string, backlog: number, mode: number): number;
  getsockname(fd: number): SockName;
  getPeerCred(fd: number): PeerCred;
  socketInfo(fd: number): SocketInfo;
  refuseFdPassing(fd: number): boolean;
  noLinger(fd: number): void;
  openFile(path: string, flags: number, mode: number, uid: number, gid: number): number;
  unlinkFile(path: string, uid: number, gid: number): void;
  flock(fd: number, exclusive: boolean): boolean;
  getCloexec(fd: number): boolean;
  setCloexec(fd: number, on: boolean): void;
  closeFd(fd: number): void;
  dup2(oldfd: number, newfd: number): void;
  dupCloexec(fd: number): number;
  setPdeathsig(signal: number): void;
  setRlimitNofile(pid: number, soft: number, hard: number): void;
  setPriority(pid: number, nice: number): void;
  setAffinity(pid: number, cpus: number[]): void;
  waitpidNohang(pid: number): { code: number | null; signal: number | null } | null;
  sdNotify(path: string, message: string): void;
  openNotifySocket(path: string, onMessage: (msg: string, senderPid: number) => void, mode: number): { close(): void };
}

// native/ holds the sources, a local build (native/build/Release, from `npm run build:native`)
// and the packaged prebuilds (native/prebuilds/linux-<arch>/node.glibc.node). node-gyp-build
// picks the local build first, else the prebuild for this platform, arch and libc. Same
// relative path from src/native/index.ts and dist/native/index.js.
const NATIVE_DIR = fileURLToPath(new URL('../../native/', import.meta.url));

let binding: Binding | undefined;

/** Loads the addon on first use, so importing this module never fails by itself. */
function native(): Binding {
  if (binding === undefined) {
    const require = createRequire(import.meta.url);
    try {
      const load = require('node-gyp-build') as (dir: string) => unknown;
      binding = load(NATIVE_DIR) as Binding;
    } catch (err) {
      // One line: node-gyp-build's message spans several.
      const why = String((err as Error).message).trim().replace(/\s*\n\s*/g, '; ');
      throw new TsmError(
        'TSM_ERR_NATIVE_LOAD',
        `tsmaster native addon cannot be loaded from ${NATIVE_DIR} (prebuilt for linux-x64 and linux-arm64 with glibc; ` +
          `elsewhere build it once with g++, make and python3: \`npm run build:native\` in the tsmaster package directory): ${why}`,
        { cause: err },
      );
    }
  }
  return binding;
}

// ---- argument checks -------------------------------------------------------------------

const INT32_MAX = 2 ** 31 - 1;

function bad(fn: string, what: string, value: unknown): never {
  let shown: string;
  try {
    shown = typeof value === 'string' ? JSON.stringify(value) : String(value);
  } catch {
    shown = typeof value;
  }
  throw new TsmError('TSM_ERR_NATIVE_ARG', `${fn}: ${what}, got ${shown}`);
}

function int(fn: string, name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    bad(fn, `${name} must be an integer ${min}..${max}`, value);
  }
  return value;
}

function fdArg(fn: string, name: string, value: unknown): number {
  return int(fn, name, value, 0, INT32_MAX);
}

function pidArg(fn: string, value: unknown): number {
  return int(fn, 'pid (0 = this process)', value, 0, INT32_MAX);
}

function bool(fn: string, name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') bad(fn, `${name} must be a boolean`, value);
  return value;
}

function object(fn: string, value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null) bad(fn, 'options must be an object', value);
  return value as Record<string, unknown>;
}

/** A unix socket path: a filesystem path, or '@name' for a Linux abstract socket. */
function unixPath(fn: string, name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value === '@' || value.includes('\0')) {
    bad(fn, `${name} must be a non-empty path or '@name' without NUL bytes`, value);
  }
  return value;
}

function modeArg(fn: string, value: unknown): number {
  return value === undefined ? -1 : int(fn, 'mode', value, 0, 0o7777);
}

// ---- sockets ---------------------------------------------------------------------------

/**
 * socket/bind/listen a TCP socket and return its raw fd (FD_CLOEXEC and O_NONBLOCK set).
 * `host` is an IP literal ('127.0.0.1', '::1', '[::1]', '0.0.0.0', '::'); the family follows it.
 * SO_REUSEADDR is always on; SO_REUSEPORT when `reuseport`. `ipv6Only` sets IPV6_V6ONLY
 * on IPv6 sockets (true or false explicitly; left at the system default when omitted) and is
 * ignored for IPv4. `port` 0 picks an ephemeral port (read it back with getsockname).
 */
export function listenTcp(opts: {
  host: string;
  port: number;
  backlog: number;
  reuseport?: boolean;
  ipv6Only?: boolean;
}): number {
  const fn = 'listenTcp';
  const o = object(fn, opts);
  const host = o.host;
  const bare = typeof host === 'string' ? host.replace(/^\[(.*)\]$/, '$1') : '';
  if (typeof host !== 'string' || isIP(bare) === 0) bad(fn, 'host must be an IPv4 or IPv6 address', host);
  const port = int(fn, 'port', o.port, 0, 65535);
  const backlog = int(fn, 'backlog', o.backlog, 0, INT32_MAX);
  const reuseport = o.reuseport === undefined ? false : bool(fn, 'reuseport', o.reuseport);
  const ipv6Only = o.ipv6Only === undefined ? -1 : bool(fn, 'ipv6Only', o.ipv6Only) ? 1 : 0;
  return native().listenTcp(host, port, backlog, reuseport, ipv6Only);
}

/**
 * socket/bind/listen a unix stream socket and return its raw fd (FD_CLOEXEC and O_NONBLOCK set).
 * A socket file left at `path` by a dead process (connect is refused) is replaced; a live one
 * fails with EADDRINUSE, and a file that is not a socket is never removed. `mode` is applied
 * before listen(), so no client can connect while the permissions are still the umask's.
 * '@name' binds a Linux abstract socket (no file, `mode` ignored).
 */
export function listenUnix(opts: { path: string; backlog: number; mode?: number }): number {
  const fn = 'listenUnix';
  const o = object(fn, opts);
  const path = unixPath(fn, 'path', o.path);
  const backlog = int(fn, 'backlog', o.backlog, 0, INT32_MAX);
  return native().listenUnix(path, backlog, modeArg(fn, o.mode));
}

/** The local address of a socket fd, e.g. one inherited from an old master or from systemd. */
export function getsockname(fd: number): SockName {
  return native().getsockname(fdArg('getsockname', 'fd', fd));
}

/** SO_PEERCRED of a connected unix socket: the peer's pid, uid and gid at connect time. */
export function getPeerCred(fd: number): PeerCred {
  return native().getPeerCred(fdArg('getPeerCred', 'fd', fd));
}

/** Family, type and SO_ACCEPTCONN of a socket fd; ENOTSOCK for anything else. */
export function socketInfo(fd: number): SocketInfo {
  return native().socketInfo(fdArg('socketInfo', 'fd', fd));
}

/**
 * Make the kernel refuse file descriptors sent to this unix socket (SO_PASSRIGHTS off; the
 * sender gets EPERM). False on kernels before 6.16, which know no such option.
 */
export function refuseFdPassing(fd: number): boolean {
  return native().refuseFdPassing(fdArg('refuseFdPassing', 'fd', fd));
}

/** SO_LINGER off: closing a socket that someone else handed us can then never block. */
export function noLinger(fd: number): void {
  native().noLinger(fdArg('noLinger', 'fd', fd));
}

// ---- files -----------------------------------------------------------------------------

/**
 * open(2) for a file in a directory someone else may write: the last path component is never
 * followed (ELOOP), an existing file must be a regular file (EINVAL "not a regular file"; a
 * FIFO or device is never opened for real), a new one is created with O_EXCL. With `as`, the
 * kernel checks the access as that user and group with no supplementary groups, so a file
 * the worker user may write is created or opened with its rights, never chowned. `flags`
 * are fs.constants O_* (access mode, O_CREAT, O_APPEND, O_TRUNC); the fd is FD_CLOEXEC.
 */
export function openFile(path: string, flags: number, mode: number, as?: { uid: number; gid: number }): number {
  const fn = 'openFile';
  if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) bad(fn, 'path must be a non-empty string without NUL bytes', path);
  const f = int(fn, 'flags', flags, 0, INT32_MAX);
  const m = int(fn, 'mode', mode, 0, 0o7777);
  const uid = as === undefined ? -1 : int(fn, 'uid', as.uid, 0, INT32_MAX);
  const gid = as === undefined ? -1 : int(fn, 'gid', as.gid, 0, INT32_MAX);
  return native().openFile(path, f, m, uid, gid);
}

/** unlink(2), with `as` that user's rights (the entry is one it could remove itself). */
export function unlinkFile(path: string, as?: { uid: number; gid: number }): void {
  const fn = 'unlinkFile';
  if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) bad(fn, 'path must be a non-empty string without NUL bytes', path);
  const uid = as === undefined ? -1 : int(fn, 'uid', as.uid, 0, INT32_MAX);
  const gid = as === undefined ? -1 : int(fn, 'gid', as.gid, 0, INT32_MAX);
  native().unlinkFile(path, uid, gid);
}

/** flock(LOCK_NB): true when this open file now holds the lock, false when another one does. */
export function flock(fd: number, exclusive: boolean): boolean {
  return native().flock(fdArg('flock', 'fd', fd), bool('flock', 'exclusive', exclusive));
}

// ---- file descriptors ------------------------------------------------------------------

export function getCloexec(fd: number): boolean {
  return native().getCloexec(fdArg('getCloexec', 'fd', fd));
}

export function setCloexec(fd: number, on: boolean): void {
  native().setCloexec(fdArg('setCloexec', 'fd', fd), bool('setCloexec', 'on', on));
}

/** close(2). EINTR counts as closed (Linux releases the fd anyway). */
export function closeFd(fd: number): void {
  native().closeFd(fdArg('closeFd', 'fd', fd));
}

/** dup2(2): make `newfd` refer to `oldfd`'s file (log reopen points fd 1/2 at a new file). */
export function dup2(oldfd: number, newfd: number): void {
  native().dup2(fdArg('dup2', 'oldfd', oldfd), fdArg('dup2', 'newfd', newfd));
}

/** fcntl(F_DUPFD_CLOEXEC): a new close-on-exec descriptor for `fd`'s file. */
export function dupCloexec(fd: number): number {
  return native().dupCloexec(fdArg('dupCloexec', 'fd', fd));
}

// ---- processes -------------------------------------------------------------------------

/**
 * prctl(PR_SET_PDEATHSIG): this process gets `signal` when its parent dies (0 clears it).
 * If the parent died before the call, no signal will come: compare process.ppid afterwards.
 */
export function setPdeathsig(signal: number): void {
  native().setPdeathsig(int('setPdeathsig', 'signal', signal, 0, 64));
}

/** prlimit(pid, RLIMIT_NOFILE). Infinity means RLIM_INFINITY; soft must not exceed hard. */
export function setRlimitNofile(pid: number, soft: number, hard: number): void {
  const fn = 'setRlimitNofile';
  const p = pidArg(fn, pid);
  const limit = (name: string, v: unknown): number =>
    v === Infinity ? v : int(fn, `${name} (or Infinity)`, v, 0, Number.MAX_SAFE_INTEGER);
  const s = limit('soft', soft);
  const h = limit('hard', hard);
  if (s > h) bad(fn, `soft limit must not exceed the hard limit ${h}`, s);
  native().setRlimitNofile(p, s, h);
}

/** setpriority(PRIO_PROCESS, pid, nice), nice -20..19. */
export function setPriority(pid: number, nice: number): void {
  native().setPriority(pidArg('setPriority', pid), int('setPriority', 'nice', nice, -20, 19));
}

/** sched_setaffinity(pid): pin to the given cpu numbers. */
export function setAffinity(pid: number, cpus: number[]): void {
  const fn = 'setAffinity';
  const p = pidArg(fn, pid);
  if (!Array.isArray(cpus) || cpus.length === 0) bad(fn, 'cpus must be a non-empty array of cpu numbers', cpus);
  const list = cpus.map((c: unknown) => int(fn, 'each cpu', c, 0, 65535));
  native().setAffinity(p, list);
}

/**
 * waitpid(pid, WNOHANG) for one child: null while it runs, else how it ended. Only for
 * children Node did not spawn: libuv collects its own by pid and would miss a stolen status.
 */
export function waitpidNohang(pid: number): { code: number | null; signal: number | null } | null {
  return native().waitpidNohang(pidArg('waitpidNohang', pid));
}

// ---- sd_notify -------------------------------------------------------------------------

/**
 * Send one sd_notify datagram ('READY=1', 'STATUS=...') to `socketPath` (NOTIFY_SOCKET's
 * value; '@name' is an abstract socket). The kernel attaches this process's credentials,
 * since receivers (systemd, openNotifySocket) set SO_PASSCRED.
 */
export function sdNotify(socketPath: string, message: string): void {
  const path = unixPath('sdNotify', 'socketPath', socketPath);
  if (typeof message !== 'string') bad('sdNotify', 'message must be a string', message);
  native().sdNotify(path, message);
}

/**
 * Bind a datagram socket at `path` ('@name' for an abstract one) that receives sd_notify
 * messages; `onMessage` runs on the JS thread for each datagram with the sender's pid from
 * SCM_CREDENTIALS. A thread of its own reads the socket, so no sender can block the loop:
 * passed fds are refused (SO_PASSRIGHTS) or closed there, and past 1024 undelivered
 * datagrams the rest are dropped. It does not keep the process alive. A stale socket file at
 * `path` is replaced. `opts.mode` is the file's mode, set by bind itself (e.g. 0o666 so
 * workers running as another user can send). close() stops delivering at once and unlinks a
 * filesystem path (an abstract name is free a moment later, once the reader thread has woken
 * up); it is idempotent. An exception thrown by `onMessage` is reported as an
 * uncaught exception.
 */
export function openNotifySocket(
  path: string,
  onMessage: (msg: string, senderPid: number) => void,
  opts?: { mode?: number },
): NotifySocket {
  const fn = 'openNotifySocket';
  const p = unixPath(fn, 'path', path);
  if (typeof onMessage !== 'function') bad(fn, 'onMessage must be a function', onMessage);
  const mode = opts === undefined ? -1 : modeArg(fn, object(fn, opts).mode);
  const handle = native().openNotifySocket(p, (msg, pid) => onMessage(msg, pid), mode);
  const sock: NotifySocket = Object.freeze({
    path: p,
    close(): void {
      openNotifySockets.delete(sock);
      handle.close();
    },
  });
  if (!exitHookInstalled) {
    process.once('exit', closeNotifySocketsAtExit);
    exitHookInstalled = true;
  }
  openNotifySockets.add(sock);
  return sock;
}

// process.exit() skips the addon's environment cleanup, so the socket files are unlinked here.
const openNotifySockets = new Set<NotifySocket>();
let exitHookInstalled = false;

function closeNotifySocketsAtExit(): void {
  for (const sock of [...openNotifySockets]) sock.close();
}
