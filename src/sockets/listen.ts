import fs from 'node:fs';
import type { ListenSpec } from '../config/types.js';
import { TsmError, isErrno } from '../errors.js';
import * as native from '../native/index.js';
import type { FdDescription } from '../protocol.js';

export interface OpenSocket {
  key: string;
  name: string;
  fd: number;
  spec: ListenSpec;
}

/** The canonical key of a bound socket, in the same form as ListenSpec.key. */
export function keyOfFd(fd: number): string {
  const s = native.getsockname(fd);
  if (s.family === 'unix') return `unix:${s.path}`;
  return s.family === 'IPv6' ? `tcp:[${s.address}]:${s.port}` : `tcp:${s.address}:${s.port}`;
}

/**
 * Does an inherited fd serve `spec`? By its real address, or by an explicit name (systemd's
 * FileDescriptorName=); port 0 matches by the handed-over key.
 */
function matches(spec: ListenSpec, fd: FdDescription): boolean {
  if (fd.activated && fd.name !== '' && fd.name === spec.name) return true;
  let actual: string;
  try {
    actual = keyOfFd(fd.fd);
  } catch {
    return false;
  }
  if (actual === spec.key) return true;
  if (spec.kind === 'tcp' && spec.port === 0 && fd.key === spec.key) {
    return actual.slice(0, actual.lastIndexOf(':')) === spec.key.slice(0, spec.key.lastIndexOf(':'));
  }
  return false;
}

function bind(spec: ListenSpec): number {
  try {
    return spec.kind === 'unix'
      ? native.listenUnix({ path: spec.path, backlog: spec.backlog, ...(spec.mode !== null ? { mode: spec.mode } : {}) })
      : native.listenTcp({ host: spec.host, port: spec.port, backlog: spec.backlog, reuseport: spec.reuseport, ipv6Only: spec.ipv6Only });
  } catch (err) {
    const why = isErrno(err) ? err.message : String(err);
    throw new TsmError('TSM_ERR_LISTEN', `${why} (listen "${spec.name}" in ${spec.source.file}:${spec.source.line})`, { cause: err });
  }
}

/**
 * The master's listening sockets, by address key. A socket is bound once and kept (same fd)
 * for as long as some generation's config lists its address. The master never polls them.
 */
export class SocketSet {
  private readonly byKey = new Map<string, OpenSocket>();
  private inherited: FdDescription[] = [];

  /** Fds handed over by an old master or systemd; adopted by `acquire`, the rest closed by `dropInherited`. */
  offer(fds: FdDescription[]): void {
    for (const fd of fds) native.setCloexec(fd.fd, true);
    this.inherited.push(...fds);
  }

  /** All or nothing: on a bind failure every socket this call bound is closed again. */
  acquire(specs: readonly ListenSpec[]): OpenSocket[] {
    const bound: OpenSocket[] = [];
    const result: OpenSocket[] = [];
    try {
      for (const spec of specs) {
        let sock = this.byKey.get(spec.key);
        if (!sock) {
          const i = this.inherited.findIndex((fd) => matches(spec, fd));
          const fd = i >= 0 ? this.inherited.splice(i, 1)[0]!.fd : bind(spec);
          sock = { key: spec.key, name: spec.name, fd, spec };
          bound.push(sock);
        }
        result.push(sock);
      }
    } catch (err) {
      for (const s of bound) this.closeOne(s, true);
      throw err;
    }
    for (const s of bound) this.byKey.set(s.key, s);
    return result;
  }

  /** Close inherited fds that no listen asked for. */
  dropInherited(): void {
    for (const fd of this.inherited) native.closeFd(fd.fd);
    this.inherited = [];
  }

  all(): OpenSocket[] {
    return [...this.byKey.values()];
  }

  /** Close every socket whose key is not in `keep`. */
  closeUnused(keep: ReadonlySet<string>): void {
    for (const s of this.byKey.values()) if (!keep.has(s.key)) this.closeOne(s, true);
  }

  /** On exit. A unix socket path a new master inherited must stay. */
  closeAll(unlinkUnix: boolean): void {
    for (const s of this.byKey.values()) this.closeOne(s, unlinkUnix);
  }

  private closeOne(s: OpenSocket, unlink: boolean): void {
    this.byKey.delete(s.key);
    native.closeFd(s.fd);
    if (unlink && s.spec.kind === 'unix') fs.rmSync(s.spec.path, { force: true });
  }
}

/** Printable address of an open socket, with the real port when the config said 0. */
export function describe(s: OpenSocket): string {
  const key = keyOfFd(s.fd);
  return key.startsWith('tcp:') ? key.slice(4) : key;
}
