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
  /** Position in its group (reuseport: the slot it serves first). */
  index: number;
  /** Passed by systemd: a new master must match it by name= too, as we did. */
  activated?: boolean;
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
 * The sockets of one `listen`: one socket all workers share, or with `reuseport` one per
 * worker slot so the kernel spreads connections. A reuseport group only grows: a closed
 * SO_REUSEPORT socket drops the connections queued on it, so members stay open for as long
 * as the listen exists, and a generation with fewer workers gives each worker several.
 */
export interface SocketGroup {
  key: string;
  name: string;
  spec: ListenSpec;
  members: OpenSocket[];
}

/** The sockets the worker in `slot` of `count` gets: the shared ones and its share of each reuseport group. */
export function socketsForSlot(groups: readonly SocketGroup[], slot: number, count: number): OpenSocket[] {
  return groups.flatMap((g) => (g.spec.reuseport ? g.members.filter((s) => s.index % count === slot % count) : g.members));
}

/**
 * The master's listening sockets, by address key. A socket is bound once and kept (same fd)
 * for as long as some generation's config lists its address. The master never polls them.
 */
export class SocketSet {
  private readonly byKey = new Map<string, SocketGroup>();
  private inherited: FdDescription[] = [];

  /** Fds handed over by an old master or systemd; adopted by `acquire`, the rest closed by `dropInherited`. */
  offer(fds: FdDescription[]): void {
    for (const fd of fds) native.setCloexec(fd.fd, true);
    this.inherited.push(...fds);
    this.inherited.sort((a, b) => (a.index ?? 0) - (b.index ?? 0));
  }

  /**
   * The groups for `specs`, each reuseport group with at least `workers` members. All or
   * nothing: on a bind failure every socket this call bound is closed again.
   */
  acquire(specs: readonly ListenSpec[], workers: number): SocketGroup[] {
    const added: Array<{ group: SocketGroup; sock: OpenSocket }> = [];
    const result: SocketGroup[] = [];
    try {
      for (const spec of specs) {
        const group = this.byKey.get(spec.key) ?? { key: spec.key, name: spec.name, spec, members: [] };
        // A reuseport group takes every inherited member, even more than it needs now:
        // closing one would drop the connections queued on it.
        const want = spec.reuseport ? Math.max(1, workers, this.inherited.filter((fd) => matches(spec, fd)).length + group.members.length) : 1;
        while (group.members.length < want) {
          const i = this.inherited.findIndex((fd) => matches(spec, fd));
          // Further members of a port-0 group join the port the first one got.
          const first = group.members[0];
          const target = first && spec.kind === 'tcp' && spec.port === 0 ? { ...spec, port: Number(describe(first).split(':').pop()) } : spec;
          const from = i >= 0 ? this.inherited.splice(i, 1)[0]! : null;
          const fd = from ? from.fd : bind(target);
          const sock: OpenSocket = { key: spec.key, name: spec.name, fd, spec, index: group.members.length, ...(from?.activated ? { activated: true } : {}) };
          group.members.push(sock);
          added.push({ group, sock });
        }
        result.push(group);
      }
    } catch (err) {
      for (const { group, sock } of added.reverse()) {
        group.members.pop();
        this.closeOne(sock, true);
      }
      throw err;
    }
    for (const g of result) this.byKey.set(g.key, g);
    return result;
  }

  /** Close inherited fds that no listen asked for. */
  dropInherited(): void {
    for (const fd of this.inherited) native.closeFd(fd.fd);
    this.inherited = [];
  }

  groups(): SocketGroup[] {
    return [...this.byKey.values()];
  }

  /** Close the members of a reuseport group from index `size` on (none of them is served). */
  trim(key: string, size: number): void {
    const group = this.byKey.get(key);
    while (group && group.members.length > size) this.closeOne(group.members.pop()!, false);
  }

  /** Every open socket, e.g. to hand them all to a new master. */
  all(): OpenSocket[] {
    return [...this.byKey.values()].flatMap((g) => g.members);
  }

  /** Close every group whose key is not in `keep`. */
  closeUnused(keep: ReadonlySet<string>): void {
    for (const g of [...this.byKey.values()]) if (!keep.has(g.key)) this.closeGroup(g, true);
  }

  /** On exit. A unix socket path a new master inherited must stay. */
  closeAll(unlinkUnix: boolean): void {
    for (const g of [...this.byKey.values()]) this.closeGroup(g, unlinkUnix);
  }

  private closeGroup(g: SocketGroup, unlink: boolean): void {
    this.byKey.delete(g.key);
    for (const s of g.members) this.closeOne(s, unlink);
  }

  private closeOne(s: OpenSocket, unlink: boolean): void {
    native.closeFd(s.fd);
    if (unlink && s.spec.kind === 'unix') fs.rmSync(s.spec.path, { force: true });
  }
}

/** Printable address of an open socket, with the real port when the config said 0. */
export function describe(s: OpenSocket): string {
  const key = keyOfFd(s.fd);
  return key.startsWith('tcp:') ? key.slice(4) : key;
}
