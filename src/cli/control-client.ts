import fs from 'node:fs';
import net from 'node:net';
import type { ControlRequest, ControlResponse } from '../control/protocol.js';
import { TsmError } from '../errors.js';

/** One request on a master's control socket; resolves with its one-line answer. */
export function ask(path: string, req: ControlRequest, timeoutMs = 10_000): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(path);
    let buf = '';
    const fail = (why: string, cause?: unknown) => {
      socket.destroy();
      reject(new TsmError('TSM_ERR_CONTROL', `control socket "${path}": ${why}`, { cause }));
    };
    socket.setTimeout(timeoutMs, () => fail(`no answer within ${timeoutMs}ms`));
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify(req)}\n`));
    socket.on('data', (d: string) => {
      buf += d;
    });
    socket.on('end', () => {
      try {
        resolve(JSON.parse(buf.split('\n')[0] ?? '') as ControlResponse);
      } catch (err) {
        fail('malformed answer', err);
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => fail(`${err.code ?? err.message}: is tsmaster running?`, err));
  });
}

/** A control socket that a master may be answering on (the file exists and is a socket). */
export function isSocket(path: string): boolean {
  return fs.statSync(path, { throwIfNoEntry: false })?.isSocket() ?? false;
}
