import type { ChildProcess, StdioOptions } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config/types.js';
import type { OpenSocket } from '../sockets/listen.js';
import { WORKER_ENV, isObject, type WorkerEnv, type WorkerMessage } from '../protocol.js';
import type { EventQueue } from './event-queue.js';
import { spawnChild } from './reap.js';

/**
 * util-linux's setpriv sets PR_SET_PDEATHSIG and execs, in the worker's own pid, so a
 * worker gets TERM when the master dies even if it hangs before its own code runs (a Node
 * worker then sets HUP itself, to drain quickly instead).
 */
const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p)) ?? null;
const PDEATHSIG = ['--pdeathsig', 'TERM', '--'];

const workerMain = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'worker', 'main.js');

/**
 * Start one worker: listening sockets in stdio slots 3.., the IPC channel after them,
 * stdout/stderr straight to the worker log. Its exit and messages become queue events.
 */
export function spawnWorker(opts: {
  config: Config;
  sockets: OpenSocket[];
  generation: number;
  slot: number;
  logFd: number | 'inherit' | 'ignore';
  logPath: string | null;
  queue: EventQueue;
  /** NOTIFY_SOCKET for exec workers. */
  notifySocket?: string;
}): ChildProcess {
  const { config, sockets } = opts;
  const listeners = sockets.map((s, i) => ({ fd: 3 + i, name: s.name, key: s.key }));
  const fds = sockets.map((s) => s.fd);
  const common = {
    cwd: config.prefix,
    ...(config.user ? { uid: config.user.uid, gid: config.user.gid } : {}),
  };
  // Every kind of worker can tell which one it is (PM2's NODE_APP_INSTANCE).
  const identity = { TSMASTER_WORKER_ID: String(opts.slot), TSMASTER_GENERATION: String(opts.generation) };
  let child: ChildProcess;
  if (config.worker.kind === 'app') {
    const env: WorkerEnv = {
      app: config.worker.path,
      generation: opts.generation,
      id: opts.slot,
      masterPid: process.pid,
      listeners,
      log: opts.logPath,
      shutdownTimeoutMs: config.workerShutdownTimeoutMs,
    };
    const stdio: StdioOptions = ['ignore', opts.logFd, opts.logFd, ...fds, 'ipc'];
    const argv = [process.execPath, ...process.execArgv, workerMain];
    child = spawnChild(setpriv ?? argv[0]!, setpriv ? [...PDEATHSIG, ...argv] : argv.slice(1), {
      ...common,
      stdio,
      env: { ...config.env, ...identity, [WORKER_ENV]: JSON.stringify(env) },
    });
  } else {
    // systemd's socket activation protocol wants LISTEN_PID to be the worker's own pid,
    // known only after fork: a shell sets it and execs the command in the same process.
    const stdio: StdioOptions = ['ignore', opts.logFd, opts.logFd, ...fds];
    const wrap = setpriv ? `exec ${setpriv} ${PDEATHSIG.join(' ')}` : 'exec';
    child = spawnChild('/bin/sh', ['-c', `LISTEN_PID=$$ ${wrap} "$@"`, 'tsmaster-exec', ...config.worker.argv], {
      ...common,
      stdio,
      // setsid: its own process group, which the master signals and ends as one.
      detached: true,
      env: {
        ...config.env,
        ...identity,
        LISTEN_FDS: String(sockets.length),
        // Names are ':'-separated there; a default name is an address with a ':' in it.
        LISTEN_FDNAMES: sockets.map((s) => s.name.replaceAll(':', '_')).join(':'),
        ...(opts.notifySocket ? { NOTIFY_SOCKET: opts.notifySocket } : {}),
      },
    });
  }
  const pid = child.pid;
  if (pid === undefined) {
    // spawn() failed (ENOENT, EACCES): the 'error' event says why; report it as an exit.
    child.once('error', () => undefined);
    return child;
  }
  child.once('exit', (code, signal) => opts.queue.push({ type: 'worker-exit', pid, code, signal }));
  child.on('message', (msg: unknown) => {
    if (isObject(msg) && typeof msg.t === 'string') opts.queue.push({ type: 'worker-message', pid, msg: msg as WorkerMessage });
  });
  child.on('error', () => undefined);
  return child;
}
