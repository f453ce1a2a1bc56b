import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import type net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config/types.js';
import type { OpenSocket } from '../sockets/listen.js';
import { Channel } from '../channel.js';
import { WORKER_ENV, WORKER_MESSAGE_BYTES, boundOf, type WorkerEnv, type WorkerMessage } from '../protocol.js';
import * as native from '../native/index.js';
import type { EventQueue } from './event-queue.js';

/**
 * util-linux's setpriv sets PR_SET_PDEATHSIG and execs, in the worker's own pid, so a
 * worker gets TERM when the master dies even if it hangs before its own code runs (a Node
 * worker then sets HUP itself, to drain quickly instead).
 */
const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p)) ?? null;
const PDEATHSIG = ['--pdeathsig', 'TERM', '--'];

/** Only a metrics answer over its bound is dropped; any other line over its bound closes the channel. */
/** How long a worker's exit waits for the rest of what it wrote on its channel. */
const EXIT_AFTER_CHANNEL_MS = 100;
const METRICS_ONLY: ReadonlySet<string> = new Set(['metrics']);

const workerMain = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'worker', 'main.js');

/** Node's own flags for one worker: its inspector port, source maps. */
function debugArgs(config: Config, slot: number): string[] {
  const port = config.workerInspect === null ? null : config.workerInspect + slot;
  return [...(port !== null && port <= 65535 ? [`--inspect=127.0.0.1:${port}`] : []), ...(config.workerSourceMaps ? ['--enable-source-maps'] : [])];
}

/**
 * Start one worker: listening sockets in stdio slots 3.., a Node worker's channel after
 * them, stdout/stderr straight to the worker log. Its exit and messages become queue events.
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
  /** An exec worker waits, before its command runs, for releaseWorker() (its cgroup is made meanwhile). */
  hold?: boolean;
  /** Said of a worker that sends something other than messages on its channel. */
  warn: (msg: string) => void;
  /** The longest metrics answer taken from worker `pid` now: 0 when no scrape waits for it. */
  metricsBudget: (pid: number) => number;
}): { child: ChildProcess; channel: Channel | null } {
  const { config, sockets } = opts;
  const listeners = sockets.map((s, i) => ({ fd: 3 + i, name: s.name, key: s.key }));
  const fds = sockets.map((s) => s.fd);
  const common = {
    cwd: config.prefix,
    ...(config.user ? { uid: config.user.uid, gid: config.user.gid } : {}),
  };
  // Every kind of worker can tell which one it is; NODE_APP_INSTANCE is PM2's name for the slot.
  const identity = { TSMASTER_WORKER_ID: String(opts.slot), NODE_APP_INSTANCE: String(opts.slot), TSMASTER_GENERATION: String(opts.generation) };
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
      logPrefix: config.workerLogPrefix,
      channelFd: 3 + fds.length,
    };
    const stdio: StdioOptions = ['ignore', opts.logFd, opts.logFd, ...fds, 'pipe'];
    const argv = [process.execPath, ...process.execArgv, ...debugArgs(config, opts.slot), workerMain];
    child = spawn(setpriv ?? argv[0]!, setpriv ? [...PDEATHSIG, ...argv] : argv.slice(1), {
      ...common,
      stdio,
      env: { ...config.env, ...identity, [WORKER_ENV]: JSON.stringify(env) },
    });
  } else {
    // systemd's socket activation protocol wants LISTEN_PID to be the worker's own pid,
    // known only after fork: a shell sets it and execs the command in the same process.
    // Held: the shell reads a line from the master first (EOF: the master is gone), so that
    // the command and whatever it starts are born in the worker's cgroup.
    const stdio: StdioOptions = [opts.hold ? 'pipe' : 'ignore', opts.logFd, opts.logFd, ...fds];
    const wrap = setpriv ? `exec ${setpriv} ${PDEATHSIG.join(' ')}` : 'exec';
    const run = `LISTEN_PID=$$ ${wrap} "$@"`;
    // SIGPIPE ignored (kept across exec): a log pipe whose reader died is an EPIPE the
    // program may ignore, not a death (as Node does for itself).
    const script = `trap '' PIPE; ${opts.hold ? `read -r _ || exit 1; ${run} </dev/null` : run}`;
    child = spawn('/bin/sh', ['-c', script, 'tsmaster-exec', ...config.worker.argv], {
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
  child.stdin?.on('error', () => undefined);
  const pid = child.pid;
  if (pid === undefined) {
    // spawn() failed (ENOENT, EACCES): the 'error' event says why; report it as an exit.
    child.once('error', () => undefined);
    return { child, channel: null };
  }
  child.on('error', () => undefined);
  const exited = (code: number | null, signal: NodeJS.Signals | null) => opts.queue.push({ type: 'worker-exit', pid, code, signal });
  const end = config.worker.kind === 'app' ? (child.stdio[3 + fds.length] as net.Socket | null) : null;
  if (!end) {
    child.once('exit', exited);
    return { child, channel: null };
  }
  // What it said last (why it could not start) is handled before its exit: the channel's end
  // comes after its last message, unless a process it started holds the channel open.
  child.once('exit', (code, signal) => {
    if (end.readableEnded || end.destroyed) return exited(code, signal);
    let done = false;
    const go = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      exited(code, signal);
    };
    const timer = setTimeout(go, EXIT_AFTER_CHANNEL_MS);
    end.once('end', go).once('close', go);
  });
  // The worker user may pass fds to fill the master's table or to linger on close: the
  // kernel refuses them (Linux >= 6.16); on older kernels a stream read discards them.
  const fd = (end as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (fd !== undefined && fd >= 0) native.refuseFdPassing(fd);
  const channel = new Channel(
    end,
    (msg) => opts.queue.push({ type: 'worker-message', pid, msg: msg as WorkerMessage }),
    { max: (type) => (type === 'metrics' ? opts.metricsBudget(pid) : boundOf(WORKER_MESSAGE_BYTES, type)), skip: METRICS_ONLY },
    (why) => opts.warn(`worker process ${pid}: ${why}`),
  );
  return { child, channel };
}

/** Let a worker started with `hold` run its command. */
export function releaseWorker(child: ChildProcess): void {
  child.stdin?.end('\n');
}
