// The chaos harness (issue 14): random operations from a seed against one real master under
// non-retrying keep-alive and `Connection: close` load, each followed by a check of the
// invariants once it has settled. A failure names the seed and the operations so far; the
// same seed replays the same operations (timings on a busy machine may still differ).
import fs from 'node:fs';
import type { Test } from 'tap';
import { askStatus, ask } from '../../src/control/client.js';
import type { MasterStatus } from '../../src/control/protocol.js';
import { procStat, processes } from '../../src/proc.js';
import { startLoad, type Load } from './load.js';
import { app, childrenOf, freePort, get, sleep, startMaster, waitFor, type Instance } from './master.js';
import { rssKb } from './proc.js';

/** mulberry32: small, seedable, good enough to pick operations. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

export interface ChaosReport {
  seed: number;
  ops: string[];
  requests: number;
  /** Failed requests within a moment of a worker killed with SIGKILL: in flight on it. */
  killedInFlight: number;
  /** Every other failed request: each is a failure of the run. */
  unexpected: number;
  errors: string[];
}

const WORKERS = 2;
/** Failures this long after a SIGKILL of a worker are the requests it was serving. */
const KILL_WINDOW_MS = 1500;

interface Ctx {
  t: Test;
  m: Instance;
  port: number;
  rand: () => number;
  sock: string;
  target: number;
  kills: number[];
  masters: Set<number>;
  goodConf: string;
}

function pick<T>(rand: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rand() * xs.length)]!;
}

function readPid(file: string): number | null {
  try {
    return Number(fs.readFileSync(file, 'utf8').trim()) || null;
  } catch {
    return null;
  }
}

function isMaster(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('tsmaster: master process');
  } catch {
    return false;
  }
}

/** The pid of the master named by the pidfile, and its status, once it answers. */
async function current(c: Ctx): Promise<{ pid: number; st: MasterStatus }> {
  return waitFor('the pidfile names a master that answers', async () => {
    const pid = readPid(c.m.pidFile);
    if (!pid) return undefined;
    const st = await askStatus(c.sock, 2000).catch(() => null);
    return st && st.pid === pid ? { pid, st } : undefined;
  }, 30_000);
}

/** Settled: one master, no upgrade, running, its generation's workers all ready and no others. */
async function settle(c: Ctx): Promise<MasterStatus> {
  return waitFor('the master to settle', async () => {
    const pid = readPid(c.m.pidFile);
    if (!pid || fs.existsSync(`${c.m.pidFile}.oldbin`)) return undefined;
    const st = await askStatus(c.sock, 2000).catch(() => null);
    if (!st || st.pid !== pid || st.state !== 'running' || st.upgrade.phase !== 'none') return undefined;
    const ready = st.workers.filter((w) => w.state === 'ready' && w.generation === st.generation);
    return ready.length === c.target && st.workers.length === c.target ? st : undefined;
  }, 45_000);
}

async function cli(c: Ctx, ...args: string[]) {
  return c.m.cli(args, { timeoutMs: 90_000 });
}

async function newMasterOf(oldPid: number): Promise<number> {
  return waitFor('a new master', () => childrenOf(oldPid).find(isMaster), 15_000);
}

async function killWorker(c: Ctx, signal: NodeJS.Signals): Promise<void> {
  const { st } = await current(c);
  const w = pick(c.rand, st.workers.filter((x) => x.state === 'ready'));
  if (!w) return;
  if (signal === 'SIGKILL') c.kills.push(Date.now());
  process.kill(w.pid, signal);
  if (signal === 'SIGSTOP') {
    await sleep(300 + Math.floor(c.rand() * 700));
    process.kill(w.pid, 'SIGCONT');
  }
}

/** Swap the config for one with `change`, run `fn`, then put the good config back. */
async function withConfig(c: Ctx, change: (conf: string) => string, fn: () => Promise<void>): Promise<void> {
  fs.writeFileSync(c.m.conf, change(c.goodConf));
  try {
    await fn();
  } finally {
    fs.writeFileSync(c.m.conf, c.goodConf);
  }
}

const broken = {
  config: (conf: string) => `${conf}\nbogus_directive on;\n`,
  throws: (conf: string) => conf.replace(app('hello.mjs'), app('throws.mjs')),
  neverReady: (conf: string) => conf.replace(app('hello.mjs'), app('never-ready.mjs')),
};

/** USR2 by hand, the new master ready, WINCH, the old workers gone: both masters' pids. */
async function usr2ThenWinch(c: Ctx): Promise<{ old: number; fresh: number }> {
  const { pid: old } = await current(c);
  process.kill(old, 'SIGUSR2');
  const fresh = await newMasterOf(old);
  c.masters.add(fresh);
  await waitFor('the new master ready', () => readPid(c.m.pidFile) === fresh || undefined, 30_000);
  process.kill(old, 'SIGWINCH');
  await waitFor('old workers gone', () => childrenOf(old).filter((p) => p !== fresh).length === 0 || undefined, 30_000);
  return { old, fresh };
}

/** A reload or upgrade of a broken release or config: it must fail, and nothing be lost. */
async function mustFail(c: Ctx, what: 'reload' | 'upgrade', how: keyof typeof broken): Promise<void> {
  await withConfig(c, broken[how], async () => {
    const r = await cli(c, '-s', what);
    if (r.code === 0) throw new Error(`-s ${what} with ${how} succeeded`);
  });
}

/** The operations by name; those that start a generation from the config reset the worker count. */
const OPERATIONS: Record<string, (c: Ctx) => Promise<void>> = {
  async hup(c) {
    c.target = WORKERS; // a new generation from the config: TTIN/TTOU are forgotten
    const { pid } = await current(c);
    process.kill(pid, 'SIGHUP');
  },
  async reload(c) {
    c.target = WORKERS; // a new generation from the config: TTIN/TTOU are forgotten
    const r = await cli(c, '-s', 'reload');
    if (r.code !== 0) throw new Error(`-s reload failed: ${r.stderr}`);
  },
  async upgrade(c) {
    c.target = WORKERS; // a new generation from the config: TTIN/TTOU are forgotten
    const r = await cli(c, '-s', 'upgrade');
    if (r.code !== 0) throw new Error(`-s upgrade failed: ${r.stderr}`);
  },
  async manualUpgrade(c) {
    c.target = WORKERS; // a new generation from the config: TTIN/TTOU are forgotten
    const { old, fresh } = await usr2ThenWinch(c);
    process.kill(old, 'SIGQUIT');
    c.masters.add(fresh);
  },
  async manualRollback(c) {
    c.target = WORKERS; // a new generation from the config: TTIN/TTOU are forgotten
    const { old, fresh } = await usr2ThenWinch(c);
    process.kill(old, 'SIGHUP');
    await waitFor('old workers back', () => childrenOf(old).filter((p) => p !== fresh).length >= c.target || undefined, 30_000);
    process.kill(fresh, 'SIGQUIT');
    c.masters.add(fresh);
  },
  async killNewMaster(c) {
    const { pid } = await current(c);
    process.kill(pid, 'SIGUSR2');
    const fresh = await newMasterOf(pid);
    c.masters.add(fresh);
    await sleep(Math.floor(c.rand() * 1200));
    process.kill(fresh, 'SIGKILL');
  },
  async killOldMasterAfterWinch(c) {
    c.target = WORKERS; // a new generation from the config: TTIN/TTOU are forgotten
    const { old, fresh } = await usr2ThenWinch(c);
    c.masters.add(fresh);
    process.kill(old, 'SIGKILL');
  },
  async ttin(c) {
    if (c.target >= 3) return;
    const { pid } = await current(c);
    process.kill(pid, 'SIGTTIN');
    c.target++;
  },
  async ttou(c) {
    if (c.target <= 1) return;
    const { pid } = await current(c);
    process.kill(pid, 'SIGTTOU');
    c.target--;
  },
  async usr1(c) {
    const { pid } = await current(c);
    process.kill(pid, 'SIGUSR1');
  },
  async killWorker(c) {
    await killWorker(c, 'SIGKILL');
  },
  async stopWorker(c) {
    await killWorker(c, 'SIGSTOP');
  },
  async batchedReload(c) {
    c.target = WORKERS; // a new generation from the config: TTIN/TTOU are forgotten
    await withConfig(c, (conf) => `${conf}worker_reload_batch 1;\n`, async () => {
      const r = await cli(c, '-s', 'reload');
      if (r.code !== 0) throw new Error(`-s reload with worker_reload_batch 1 failed: ${r.stderr}`);
    });
  },
  async batchedUpgrade(c) {
    c.target = WORKERS; // a new generation from the config: TTIN/TTOU are forgotten
    await withConfig(c, (conf) => `${conf}worker_reload_batch 1;\n`, async () => {
      const r = await cli(c, '-s', 'upgrade');
      if (r.code !== 0) throw new Error(`-s upgrade with worker_reload_batch 1 failed: ${r.stderr}`);
    });
  },
  badConfigReload: (c) => mustFail(c, 'reload', 'config'),
  throwingAppReload: (c) => mustFail(c, 'reload', 'throws'),
  neverReadyReload: (c) => mustFail(c, 'reload', 'neverReady'),
  badConfigUpgrade: (c) => mustFail(c, 'upgrade', 'config'),
  throwingAppUpgrade: (c) => mustFail(c, 'upgrade', 'throws'),
};

export const OPERATION_NAMES = Object.keys(OPERATIONS);

function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

function fdList(pid: number): string {
  return fs.readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return `${fd}:${fs.readlinkSync(`/proc/${pid}/fd/${fd}`)}`;
    } catch {
      return fd;
    }
  }).join(' ');
}

/** Workers whose master (as their environment names it) is one of ours and that init adopted. */
function orphans(masters: Set<number>): number[] {
  return processes().filter((p) => {
    if (procStat(p)?.ppid !== 1) return false;
    try {
      const env = fs.readFileSync(`/proc/${p}/environ`, 'utf8');
      const m = /TSM_WORKER=(\{[^\0]*\})/.exec(env);
      return m !== null && masters.has((JSON.parse(m[1]!) as { masterPid: number }).masterPid);
    } catch {
      return false;
    }
  });
}

/** After an operation has settled: every invariant, or an Error saying which one broke. */
async function checkInvariants(c: Ctx, baseline: { fds: number; rss: number }): Promise<void> {
  const st = await settle(c);
  c.masters.add(st.pid);
  const r = await get({ port: c.port });
  if (r.status !== 200) throw new Error(`the service answered ${r.status}`);
  const pong = await ask(c.sock, { cmd: 'ping' }, 2000);
  if (!(pong.ok && 'pong' in pong && pong.pong === readPid(c.m.pidFile))) throw new Error(`the pidfile's master does not answer on the control socket: ${JSON.stringify(pong)}`);
  if (fs.existsSync(`${c.m.pidFile}.oldbin`)) throw new Error('a .oldbin pidfile with no upgrade under way');
  const masters = processes().filter((p) => isMaster(p) && fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(` -p ${c.m.dir} `));
  if (masters.length !== 1) throw new Error(`${masters.length} masters run with this config: ${masters.join(', ')}`);
  await waitFor('no orphaned worker', () => orphans(c.masters).length === 0 || undefined, 5000).catch(() => {
    throw new Error(`orphaned workers: ${orphans(c.masters).join(', ')}`);
  });
  // Each Node worker costs the master one fd (its channel); status samples of workers that
  // are gone are let go within seconds.
  const fdsNow = () => fdCount(st.pid) - st.workers.length;
  await waitFor('the fd count back to its baseline', () => fdsNow() <= baseline.fds + 4 || undefined, 15_000).catch(() => {
    throw new Error(`the master holds ${fdsNow()} fds besides its workers' channels, ${baseline.fds} at the start: ${fdList(st.pid)}`);
  });
  // A master started by an upgrade is a fresh process: compare it with what one uses at start.
  const rss = rssKb(st.pid) ?? 0;
  if (rss > baseline.rss * 2) throw new Error(`the master's RSS is ${rss} kB, ${baseline.rss} kB at the start`);
}

/**
 * Run operations for `seconds` (at least one), then stop. Throws with the seed and the
 * operations on the first broken invariant or unexpected failed request.
 */
export async function chaos(t: Test, opts: { seconds: number; seed: number }): Promise<ChaosReport> {
  const port = await freePort();
  const body = `worker_processes ${WORKERS};\nready_timeout 5s;\nworker_shutdown_timeout 5s;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n`;
  const m = await startMaster(t, { conf: body });
  const c: Ctx = { t, m, port, rand: prng(opts.seed), sock: `${m.pidFile}.sock`, target: WORKERS, kills: [], masters: new Set([m.masterPid]), goodConf: fs.readFileSync(m.conf, 'utf8') };
  // Masters started by upgrades outlive the first: make sure the harness ends them too.
  t.teardown(() => {
    for (const p of c.masters) for (const k of [p, ...childrenOf(p)]) try { process.kill(k, 'SIGKILL'); } catch { /* gone */ }
  });
  const loads: Load[] = [startLoad({ port, keepAlive: true, concurrency: 4 }), startLoad({ port, keepAlive: false, concurrency: 4 })];
  t.teardown(() => Promise.all(loads.map((l) => l.stop())));
  await waitFor('traffic', () => loads.every((l) => l.result.ok > 10) || undefined);
  const baseline = { fds: fdCount(m.masterPid) - WORKERS, rss: rssKb(m.masterPid) ?? 0 };
  const ops: string[] = [];
  const deadline = Date.now() + opts.seconds * 1000;
  const fail = (err: unknown): never => {
    throw new Error(`chaos seed ${opts.seed} failed after ${ops.length} operation(s) [${ops.join(', ')}]: ${(err as Error).message}\nreplay: npm run chaos -- --seed ${opts.seed} --seconds ${opts.seconds}`);
  };
  do {
    const name = pick(c.rand, OPERATION_NAMES);
    ops.push(name);
    try {
      await OPERATIONS[name]!(c);
      await checkInvariants(c, baseline);
    } catch (err) {
      fail(err);
    }
  } while (Date.now() < deadline);
  const results = await Promise.all(loads.map((l) => l.stop()));
  const times = results.flatMap((r) => r.errorTimes);
  const expected = times.filter((at) => c.kills.some((k) => at >= k && at - k <= KILL_WINDOW_MS)).length;
  const report: ChaosReport = {
    seed: opts.seed,
    ops,
    requests: results.reduce((n, r) => n + r.ok + r.failed + r.non2xx, 0),
    killedInFlight: expected,
    unexpected: times.length - expected + results.reduce((n, r) => n + r.non2xx, 0),
    errors: results.flatMap((r) => r.errors).slice(0, 10),
  };
  if (report.unexpected > 0) fail(new Error(`${report.unexpected} request(s) failed outside a worker SIGKILL: ${report.errors.join('; ')}`));
  return report;
}
