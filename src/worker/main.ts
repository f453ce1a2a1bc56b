// Entry point of a Node worker process: set up the process, start the app, report ready,
// answer heartbeats, and stop on the master's signals (QUIT graceful, TERM/INT fast).
import fs from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Channel } from '../channel.js';
import { TsmError } from '../errors.js';
import { formatLine } from '../log/logger.js';
import * as native from '../native/index.js';
import { MASTER_MESSAGE_BYTES, WORKER_ENV, boundOf, type LoopDelay, type MasterToWorker, type WorkerEnv, type WorkerMessage } from '../protocol.js';
import type { LogLevel } from '../config/types.js';
import { ConnectionTracker } from './drain.js';
import { appMetrics } from './app-metrics.js';
import { lifecycle } from './lifecycle.js';
import { guardOutput } from './output.js';
import { startApp, stopListening, type Serving } from './runtime.js';
import { describeStartError, watchOwnListens } from './start-error.js';

/**
 * A worker whose master died leaves within a second: in-flight requests finish, busy
 * keep-alive clients get `Connection: close` on their next request, and connections idle
 * for ORPHAN_IDLE_MS are closed.
 */
const ORPHAN_EXIT_MS = 900;
const ORPHAN_IDLE_MS = 300;

const env = JSON.parse(process.env[WORKER_ENV] ?? 'null') as WorkerEnv | null;
if (!env) {
  process.stderr.write(`tsmaster: [emerg] ${WORKER_ENV} is not set: this file is started by the tsmaster master\n`);
  process.exit(1);
}
delete process.env[WORKER_ENV];

// Before anything can write: the log is best effort, a worker never dies of it.
const output = guardOutput(env.logPrefix ? { pid: process.pid, slot: env.id } : null);

function log(level: LogLevel, message: string): void {
  output.stderr.write(formatLine(level, message));
}

/** To the master; the same messages the master reads in channel.ts. */
const channel = Channel.fromFd(env.channelFd, (msg) => onMessage(msg as MasterToWorker), { max: (type) => boundOf(MASTER_MESSAGE_BYTES, type) });
channel.socket.once('close', () => void stopGracefully(true));

function send(msg: WorkerMessage, done?: () => void): boolean {
  return channel.send(msg, done);
}

// The master's death (even SIGKILL) reaches us as SIGHUP; also check for the race where it
// died before prctl ran.
native.setPdeathsig(1);
if (process.ppid !== env.masterPid) process.exit(1);

process.title = `tsmaster: worker process (generation ${env.generation})`;

const tracker = new ConnectionTracker();
// Sampled every 10 ms, in two windows: each heartbeat reports the one since the previous
// heartbeat (status), each metrics answer the one since the previous scrape round (a gauge
// scraped every 15 s must show a stall of 14 s ago). The histogram records the time between
// samples, so the delay is that minus the resolution.
const LOOP_RESOLUTION_MS = 10;
function loopWindow(): () => LoopDelay {
  const h = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  h.enable();
  const seconds = (ns: number) => Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS) / 1000;
  return () => {
    // An empty window (no sample yet) has NaN percentiles and a max of 0.
    const d = h.count === 0 ? { p50: 0, p99: 0, max: 0 } : { p50: seconds(h.percentile(50)), p99: seconds(h.percentile(99)), max: seconds(h.max) };
    h.reset();
    return d;
  };
}
const sinceHeartbeat = loopWindow();
// Sampling starts with the first scrape round: a master without metrics_listen never asks.
let sinceScrape: (() => LoopDelay) | null = null;

function heartbeat(seq: number): WorkerMessage {
  const mem = process.memoryUsage();
  const lost = output.lost();
  const msg: WorkerMessage = {
    t: 'pong',
    seq,
    connections: tracker.connections,
    requests: tracker.requests,
    heapUsed: mem.heapUsed,
    loopDelay: sinceHeartbeat(),
    logLost: lost.lines,
    ...(lost.error ? { logError: lost.error } : {}),
  };
  return msg;
}
let serving: Serving | null = null;
let stopping = false;

/** In order, each awaited; one that fails is logged and the next runs. */
async function runHooks(hooks: ReadonlyArray<() => void | Promise<void>>, what: string): Promise<void> {
  for (const hook of hooks) {
    try {
      await hook();
    } catch (err) {
      log('error', `${what} failed: ${String(err)}`);
    }
  }
}

async function stopGracefully(orphan: boolean): Promise<void> {
  if (stopping) return;
  stopping = true;
  if (!serving) process.exit(0);
  stopListening(serving);
  tracker.startDraining();
  if (orphan) setTimeout(() => process.exit(0), ORPHAN_EXIT_MS).unref();
  // Drain handlers start at once, side by side with the drain: their connections are what it waits for.
  const timeoutMs = orphan ? ORPHAN_EXIT_MS : env!.shutdownTimeoutMs;
  const drain = { deadline: Date.now() + timeoutMs, timeoutMs };
  const hooks = lifecycle();
  hooks.drainingSince = Date.now();
  for (const fn of hooks.drainHooks) {
    Promise.resolve()
      .then(() => fn(drain))
      .catch((err: unknown) => log('error', `drain handler failed: ${String(err)}`));
  }
  await runHooks(hooks.shutdownHooks, 'shutdown hook');
  await tracker.drain(orphan ? ORPHAN_IDLE_MS : undefined);
  // The framework first (its own close hooks may still use what the app's onClose ends).
  await runHooks(serving.closes, 'closing the app');
  await runHooks(hooks.closeHooks, 'close hook');
  // The last counts, so the master's request total misses nothing this worker served.
  if (!send({ t: 'pong', seq: 0, connections: 0, requests: tracker.requests }, () => process.exit(0))) process.exit(0);
}

function reopenLog(): void {
  if (!env?.log) return;
  try {
    const fd = fs.openSync(env.log, 'a', 0o644);
    native.dup2(fd, 1);
    native.dup2(fd, 2);
    fs.closeSync(fd);
  } catch (err) {
    log('alert', `reopen "${env.log}" failed: ${String(err)}`);
  }
}

process.on('SIGQUIT', () => void stopGracefully(false));
process.on('SIGHUP', () => void stopGracefully(true));
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
process.on('SIGUSR1', reopenLog);
send({ t: 'hello' });
function onMessage(m: MasterToWorker): void {
  if (m.t === 'ping') {
    // Answered from the next timers phase: a block that just ended records its delay sample
    // there, so it counts in this heartbeat's window, not in the next one's 100 samples.
    const { seq } = m;
    setTimeout(() => send(heartbeat(seq)), 0);
  }
  if (m.t === 'metrics') {
    const { seq, max } = m;
    // From the next timers phase too, as the heartbeat.
    sinceScrape ??= loopWindow();
    const read = sinceScrape;
    const window = new Promise<LoopDelay>((resolve) => setTimeout(() => resolve(read()), 0));
    Promise.all([appMetrics(), window]).then(
      ([metrics, loopDelay]) => {
        // Over the share of the scrape the master gives this worker: it would drop the line, and wait for nothing.
        const bytes = Buffer.byteLength(JSON.stringify(metrics)) + 64;
        send(typeof max === 'number' && bytes > max ? { t: 'metrics', seq, metrics: [], over: bytes, loopDelay } : { t: 'metrics', seq, metrics, loopDelay });
      },
      (err) => {
        log('error', `app metrics failed: ${String(err)}`);
        void window.then((loopDelay) => send({ t: 'metrics', seq, metrics: [], loopDelay }));
      },
    );
  }
}

/**
 * The app could not start: the whole error to the log, and why in one line to the master,
 * which puts it in the outcome of the start, reload or upgrade. An app's own listen() fails
 * after its import returned, as an uncaught error: that is a failed start too.
 */
function failStart(err: unknown): void {
  if (stopping) process.exit(1);
  stopping = true;
  // tsmaster's own errors say it all in their message (a load failure: with the app's stack).
  log('emerg', err instanceof TsmError ? err.message : err instanceof Error ? (err.stack ?? err.message) : `the app threw ${String(err)}`);
  if (!send({ t: 'failed', error: describeStartError(err, env!.app, ownListens.calls) }, () => process.exit(1))) process.exit(1);
}
const ownListens = watchOwnListens();
process.on('uncaughtException', failStart);
try {
  serving = await startApp({ app: env.app, id: env.id, generation: env.generation, listeners: env.listeners, tracker, log });
  ownListens.stop();
  if (ownListens.calls.length > 0) log('warn', `the app calls listen() itself (at ${ownListens.calls[0]}); tsmaster serves what it exports on the sockets of its listen directives only`);
  // From now on an uncaught error is the app's crash, as Node reports it; the master respawns.
  process.off('uncaughtException', failStart);
  send({ t: 'ready' });
} catch (err) {
  failStart(err);
}
