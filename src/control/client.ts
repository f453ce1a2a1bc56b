import fs from 'node:fs';
import net from 'node:net';
import { TsmError } from '../errors.js';
import type { ControlRequest, ControlResponse } from './protocol.js';

/**
 * One request on a master's control socket; resolves with its answer line. Rejects with
 * TSM_ERR_CONTROL (the syscall error as `cause`) when nobody answers in `timeoutMs`.
 */
export function ask(path: string, req: ControlRequest, timeoutMs = 10_000): Promise<ControlResponse> {
  return askFollowing(path, req, () => undefined, timeoutMs, 'idle');
}

/**
 * A request whose answer comes after lines of progress (`more`, an upgrade's outcomes):
 * each goes to `progress` as it comes; resolves with the last. `timeoutMs` bounds the whole.
 */
export function askFollowing(path: string, req: ControlRequest, progress: (res: ControlResponse) => void, timeoutMs: number, bound: 'idle' | 'whole' = 'whole'): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(path);
    let buf = '';
    let settled = false;
    const fail = (why: string, cause?: unknown) => {
      socket.destroy();
      if (settled) return;
      settled = true;
      reject(new TsmError('TSM_ERR_CONTROL', `control socket "${path}": ${why}`, cause === undefined ? undefined : { cause }));
    };
    const late = () => fail(`no answer within ${timeoutMs}ms`);
    if (bound === 'idle') socket.setTimeout(timeoutMs, late);
    else setTimeout(late, timeoutMs).unref();
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify(req)}\n`));
    socket.on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl >= 0 && !settled; nl = buf.indexOf('\n')) {
        let res: ControlResponse;
        try {
          res = JSON.parse(buf.slice(0, nl)) as ControlResponse;
        } catch (err) {
          return fail('malformed answer', err);
        }
        buf = buf.slice(nl + 1);
        if (res.ok && 'more' in res) {
          progress(res);
          continue;
        }
        settled = true;
        socket.end();
        resolve(res);
      }
    });
    socket.on('end', () => fail('closed without an answer'));
    let connected = false;
    socket.once('connect', () => (connected = true));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      const denied = err.code === 'EACCES' || err.code === 'EPERM';
      const why = denied ? "permission denied (root or the master's user only)" : connected ? 'the master closed the connection' : 'is tsmaster running?';
      fail(`${err.code ?? err.message}: ${why}`, err);
    });
  });
}

/** A status answer or the error that came instead. */
export async function askStatus(path: string, timeoutMs?: number): Promise<Extract<ControlResponse, { status: unknown }>['status']> {
  const res = await ask(path, { cmd: 'status' }, timeoutMs);
  if (!res.ok) throw new TsmError('TSM_ERR_CONTROL', `control socket "${path}": ${res.error}`);
  if (!('status' in res)) throw new TsmError('TSM_ERR_CONTROL', `control socket "${path}": not a status answer`);
  return res.status;
}

/** Master `pid` answers on `path` (a ping): commands can use the socket instead of signals. */
export async function answers(path: string, pid: number): Promise<boolean> {
  if (!isSocket(path)) return false;
  try {
    const res = await ask(path, { cmd: 'ping' }, 2000);
    return res.ok && 'pong' in res && res.pong === pid;
  } catch {
    return false;
  }
}

/** A control socket that a master may be answering on (the file exists and is a socket). */
export function isSocket(path: string): boolean {
  return fs.statSync(path, { throwIfNoEntry: false })?.isSocket() ?? false;
}
