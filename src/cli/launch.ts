import { spawn } from 'node:child_process';
import { isObject, type ParentMessage } from '../protocol.js';
import { describeExit } from '../proc.js';
import type { Outcome } from './signal.js';

export const DAEMON_ENV = 'TSMASTER_DAEMON';

/**
 * `daemon on`: Node cannot fork, so the command starts itself again detached (a new
 * session, stdio away from the terminal) and waits on an IPC channel until the daemon says
 * it serves or why it cannot. The first line printed is the master's pid.
 */
export function launchDaemon(argv: readonly string[], waitMs: number): Promise<Outcome> {
  const [node, ...args] = argv;
  const child = spawn(node!, args, {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    env: { ...process.env, [DAEMON_ENV]: '1' },
  });
  const out: string[] = [];
  const err: string[] = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => {
    let settled = false;
    const finish = (code: number): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.stderr!.destroy();
      child.removeAllListeners();
      if (child.connected) child.disconnect();
      child.unref();
      resolve({ code, out, err });
    };
    const timer = setTimeout(() => {
      err.push(`[alert] master process ${child.pid} is not ready after ${waitMs}ms; it keeps running`);
      finish(1);
    }, waitMs);
    child.on('message', (msg: unknown) => {
      if (!isObject(msg)) return;
      const m = msg as ParentMessage;
      if (m.t === 'started') out.push(String(m.pid));
      else if (m.t === 'ready') finish(0);
      else if (m.t === 'failed') {
        err.push(...m.lines.map((l) => `[emerg] ${l}`));
        finish(1);
      }
    });
    child.on('exit', (code, signal) => {
      err.push(...stderr.split('\n').filter(Boolean));
      if (!settled) err.push(`[emerg] master process ${child.pid} ${describeExit(code, signal)}`);
      finish(1);
    });
  });
}
