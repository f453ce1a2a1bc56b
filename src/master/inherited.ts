// What a master inherits from whoever started it (a shell, systemd, an old master) is checked
// before it is used: only listening stream sockets are taken as listeners, the handover
// variable only from the parent that is really our old master, and no other fd reaches a worker.
import fs from 'node:fs';
import * as native from '../native/index.js';
import { INHERIT_ENV, asCount, isObject, type FdDescription, type InheritEnv } from '../protocol.js';

/** Why `fd` cannot be a listener, or null when it is a listening stream socket. */
export function notAListener(fd: unknown): string | null {
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 3) return `fd ${String(fd)} is not a descriptor above stderr`;
  try {
    const s = native.socketInfo(fd);
    return s.type === 'stream' && s.listening ? null : `fd ${fd} is a ${s.family} ${s.type} socket${s.listening ? '' : ', not listening'}`;
  } catch (err) {
    return `fd ${fd}: ${(err as Error).message}`;
  }
}

const count = (v: unknown): number => asCount(v) ?? 0;

/**
 * TSMASTER_INHERIT from an old master, removed from the environment. Taken only when our
 * parent is the pid it names; each fd must be a listening socket, and totals are counts.
 */
export function takeInheritEnv(warn: (message: string) => void, env: NodeJS.ProcessEnv = process.env): InheritEnv | null {
  const text = env[INHERIT_ENV];
  delete env[INHERIT_ENV];
  if (text === undefined) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    raw = null;
  }
  if (!isObject(raw) || !Array.isArray(raw.fds)) {
    warn(`${INHERIT_ENV} is not a socket handover: ignored`);
    return null;
  }
  if (raw.parentPid !== process.ppid) {
    warn(`${INHERIT_ENV} names master process ${String(raw.parentPid)}, but our parent is ${process.ppid}: ignored`);
    return null;
  }
  const fds: FdDescription[] = [];
  const seen = new Set<number>();
  for (const d of raw.fds as unknown[]) {
    const why = isObject(d) ? notAListener(d.fd) : 'not a socket description';
    if (why !== null || !isObject(d) || seen.has(d.fd as number) || typeof d.key !== 'string' || typeof d.name !== 'string') {
      warn(`${INHERIT_ENV}: ${why ?? 'a duplicate or malformed socket description'}: ignored`);
      continue;
    }
    seen.add(d.fd as number);
    fds.push({ fd: d.fd as number, name: d.name, key: d.key, ...(typeof d.index === 'number' ? { index: count(d.index) } : {}), ...(d.activated === true ? { activated: true } : {}) });
  }
  const totals = isObject(raw.totals) ? raw.totals : {};
  return { parentPid: process.ppid, fds, totals: { requests: count(totals.requests), restarts: count(totals.restarts) }, generation: Math.max(1, count(raw.generation)) };
}

/**
 * Fds above stderr that came without FD_CLOEXEC from whoever started us (Node's and libuv's
 * own are always close-on-exec): all but `keep` are closed, so a file a shell left open on
 * fd 200 never reaches a worker. Returns what was closed, for the log.
 */
export function closeStrayFds(keep: ReadonlySet<number>): string[] {
  const closed: string[] = [];
  for (const entry of fs.readdirSync('/proc/self/fd')) {
    const fd = Number(entry);
    if (fd < 3 || keep.has(fd)) continue;
    let what: string;
    try {
      if (native.getCloexec(fd)) continue;
      what = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // the directory's own fd, closed by now
    }
    native.closeFd(fd);
    closed.push(`fd ${fd} (${what})`);
  }
  return closed;
}
