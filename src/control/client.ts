import fs from 'node:fs';
import net from 'node:net';
import { TsmError } from '../errors.js';
import { isLiveMaster } from '../master/identity.js';
import * as native from '../native/index.js';
import type { ControlRequest, ControlResponse } from './protocol.js';

/**
 * Why the process listening on a connected control socket is not to be trusted, or null when
 * it is a live master (`master`, when given, that very one). SO_PEERCRED names the process
 * that called listen(): a socket someone bound where the master's should be (a directory
 * above it that another user may write) is refused before a request is sent to it.
 */
function distrust(socket: net.Socket, master: number | undefined): string | null {
  let peer: native.PeerCred;
  try {
    peer = native.getPeerCred((socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1);
  } catch {
    return 'its credentials cannot be read';
  }
  if (isLiveMaster(peer.pid) && (master === undefined || peer.pid === master)) return null;
  return `it is process ${peer.pid} of uid ${peer.uid}, not ${master === undefined ? 'a tsmaster master' : `master process ${master}`}: not trusted`;
}

/**
 * One request on a master's control socket; resolves with its answer line. Rejects with
 * TSM_ERR_CONTROL (the syscall error as `cause`) when nobody answers in `timeoutMs`, and
 * with TSM_ERR_CONTROL_PEER when the process listening there is not a master (`master`, when
 * given, the one with that pid).
 */
export function ask(path: string, req: ControlRequest, timeoutMs = 10_000, master?: number): Promise<ControlResponse> {
  return askFollowing(path, req, () => undefined, timeoutMs, master, 'idle');
}

/**
 * A request whose answer comes after lines of progress (`more`: an upgrade's outcomes),
 * each given to `progress` as it comes; resolves with the last line. `timeoutMs` bounds the
 * whole exchange (`idle`: each wait for data), `master` as for ask.
 */
export function askFollowing(
  path: string,
  req: ControlRequest,
  progress: (res: ControlResponse) => void,
  timeoutMs: number,
  master?: number,
  bound: 'idle' | 'whole' = 'whole',
): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(path);
    let buf = '';
    let settled = false;
    const fail = (why: string, cause?: unknown, code: 'TSM_ERR_CONTROL' | 'TSM_ERR_CONTROL_PEER' = 'TSM_ERR_CONTROL') => {
      socket.destroy();
      if (settled) return;
      settled = true;
      reject(new TsmError(code, `control socket "${path}": ${why}`, cause === undefined ? undefined : { cause }));
    };
    const late = () => fail(`no answer within ${timeoutMs}ms`);
    if (bound === 'idle') socket.setTimeout(timeoutMs, late);
    else setTimeout(late, timeoutMs).unref();
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      const why = distrust(socket, master);
      if (why !== null) return fail(why, undefined, 'TSM_ERR_CONTROL_PEER');
      socket.write(`${JSON.stringify(req)}\n`);
    });
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

/**
 * Master `pid` answers on `path` (a ping): commands can use the socket instead of signals.
 * Throws TSM_ERR_CONTROL_PEER when another process listens there: the command must not go
 * on as if nobody did (a fake master would answer anything).
 */
export async function answers(path: string, pid: number): Promise<boolean> {
  if (!isSocket(path)) return false;
  try {
    const res = await ask(path, { cmd: 'ping' }, 2000, pid);
    return res.ok && 'pong' in res && res.pong === pid;
  } catch (err) {
    if (err instanceof TsmError && err.code === 'TSM_ERR_CONTROL_PEER') throw err;
    return false;
  }
}

/** A control socket that a master may be answering on (the file exists and is a socket). */
export function isSocket(path: string): boolean {
  return fs.statSync(path, { throwIfNoEntry: false })?.isSocket() ?? false;
}
