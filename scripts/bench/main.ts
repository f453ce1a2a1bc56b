// `npm run bench` (tsc -p tsconfig.bench.json, then this file from build/bench/): tsmaster
// against one Node process, Node's cluster module (SCHED_RR and SCHED_NONE) and PM2 cluster
// mode, serving the same hello-world app with the same number
// of workers, measured side by side in one run on this machine. See report.ts for what is
// printed and written. Knobs (environment): BENCH_WORKERS (2), BENCH_ROUNDS (5, interleaved),
// BENCH_SECONDS per round (4), BENCH_CHANGES per reload test (3), BENCH_CONNECTIONS (50),
// BENCH_STALL seconds a worker is stopped (3, 0 = skip), BENCH_STAGES (a comma list of
// result.ts's STAGES; all by default: a long run is shortened by picking stages, never by
// dropping rounds), BENCH_SKIP_PM2=1. It runs dist/cli/main.js (`npm run build` first)
// and wants wrk for the Connection: close and reload numbers (apt-get install wrk).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuSeconds } from '../../src/proc.js';
import { cli, root as repo } from '../../test/helpers/paths.js';
import { rssKb, tcpTable } from '../../test/helpers/proc.js';
import { sleep } from '../../test/helpers/wait.js';
import { chattyApp } from './chatty.js';
import { deployCost } from './deploy.js';
import { installCost } from './install.js';
import { pinnedKeepAlive } from './placement.js';
import { autocannonVersion, probe, runAutocannon, runWrk, startNodeClient, startWrk, wrkVersion, type LoadResult } from './load.js';
import { cleanup, installHandlers, onExitSync, run, tempRoot, wasInterrupted } from './procs.js';
import { writeReport } from './report.js';
import type { DemoRun } from './reuseport-demo.js';
import { STAGES, type BenchResult, type Change, type Load, type Options, type Paired, type Stage, type Stall, type Status, type Throughput } from './result.js';
import { getMetrics, makeConfigs, readCounts, Tsmaster, type Changeable, type ChangeKind, type Served } from './servers.js';
import { startupCost } from './startup.js';
import { cv, max, median, min, sum } from './stats.js';

function knob(name: string, def: number): number {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : def;
}

/** BENCH_STAGES, checked: an unknown name ends the run before anything starts. */
function stagesKnob(): Stage[] {
  const v = process.env.BENCH_STAGES;
  if (!v) return [...STAGES];
  const asked = v.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = asked.filter((s) => !(STAGES as readonly string[]).includes(s));
  if (unknown.length > 0) {
    process.stderr.write(`bench: unknown stage(s) in BENCH_STAGES: ${unknown.join(', ')} (stages: ${STAGES.join(', ')})\n`);
    process.exit(2);
  }
  return STAGES.filter((s) => asked.includes(s));
}

const opts: Options = {
  workers: Math.round(knob('BENCH_WORKERS', 2)),
  rounds: Math.round(knob('BENCH_ROUNDS', 5)),
  seconds: knob('BENCH_SECONDS', 4),
  changes: Math.round(knob('BENCH_CHANGES', 3)),
  connections: Math.round(knob('BENCH_CONNECTIONS', 50)),
  clientConcurrency: 8,
  stages: stagesKnob(),
  statusWorkers: 64,
  skipPm2: process.env.BENCH_SKIP_PM2 === '1',
  stallSeconds: process.env.BENCH_STALL === '0' ? 0 : knob('BENCH_STALL', 3),
};

const started = Date.now();
const stage = (s: Stage) => opts.stages.includes(s);
const notes: string[] = [];

function log(msg: string): void {
  process.stderr.write(`[${String(Math.round((Date.now() - started) / 1000)).padStart(4)}s] ${msg}\n`);
}

function note(msg: string): void {
  notes.push(msg);
  log(`note: ${msg}`);
}

function interruptedCheck(): void {
  if (wasInterrupted()) throw new Error('interrupted');
}

function firstLine(err: unknown): string {
  return String((err as Error).message).split('\n')[0]!;
}

// ---- environment -------------------------------------------------------------------

function readFirst(file: string, re: RegExp): string | null {
  try {
    return re.exec(fs.readFileSync(file, 'utf8'))?.[1]?.trim() ?? null;
  } catch {
    return null;
  }
}

async function environment(hasWrk: string | null): Promise<Pick<BenchResult, 'date' | 'machine' | 'versions' | 'loadAverageAtStart' | 'sysctl'>> {
  const v = await run(process.execPath, [cli, '-v']);
  const head = await run('git', ['-C', repo, 'rev-parse', '--short', 'HEAD']);
  const dirty = await run('git', ['-C', repo, 'status', '--porcelain', '--', 'src', 'native']);
  return {
    date: new Date().toISOString(),
    machine: {
      nproc: os.availableParallelism(),
      cpu: readFirst('/proc/cpuinfo', /^model name\s*:\s*(.*)$/m) ?? os.cpus()[0]?.model ?? 'unknown',
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      os: readFirst('/etc/os-release', /^PRETTY_NAME="?([^"\n]*)"?$/m) ?? os.type(),
      kernel: os.release(),
    },
    versions: {
      node: process.version,
      tsmaster: /tsmaster\/(\S+)/.exec(v.stderr)?.[1] ?? 'unknown',
      tsmasterCommit: head.stdout.trim() + (dirty.stdout.trim() ? ' (src/ has uncommitted changes)' : ''),
      autocannon: autocannonVersion(),
      wrk: hasWrk,
      pm2: null,
    },
    loadAverageAtStart: os.loadavg().map((x) => Number(x.toFixed(2))),
    sysctl: {
      tcp_migrate_req: readFirst('/proc/sys/net/ipv4/tcp_migrate_req', /^(.*)$/m),
      somaxconn: readFirst('/proc/sys/net/core/somaxconn', /^(.*)$/m),
    },
  };
}

// ---- steady-state throughput --------------------------------------------------------

/** Listening TCP sockets on 127.0.0.1:port. */
function listeningSockets(port: number): number | null {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  try {
    return tcpTable().filter((s) => s.local === local && s.state === '0A').length;
  } catch {
    return null;
  }
}

interface ManagerUse {
  cpuPct: number | null;
  rssMaxKb: number | null;
}

/** CPU and peak RSS of one process while a load runs. */
function sampler(pid: number | null): { stop(): ManagerUse } {
  if (!pid) return { stop: () => ({ cpuPct: null, rssMaxKb: null }) };
  const s0 = cpuSeconds(pid);
  const t0 = performance.now();
  let rssMax = rssKb(pid) ?? 0;
  const iv = setInterval(() => {
    rssMax = Math.max(rssMax, rssKb(pid) ?? 0);
  }, 200);
  return {
    stop() {
      clearInterval(iv);
      const s1 = cpuSeconds(pid);
      const secs = (performance.now() - t0) / 1000;
      const cpuPct = s0 !== null && s1 !== null ? ((s1 - s0) / secs) * 100 : null;
      return { cpuPct, rssMaxKb: rssMax || null };
    },
  };
}

async function runLoad(load: Load, port: number, seconds: number): Promise<LoadResult> {
  if (load.tool === 'autocannon') return runAutocannon({ port, connections: opts.connections, seconds });
  if (load.tool === 'wrk') return runWrk({ port, close: load.close, connections: opts.connections, seconds });
  const c = startNodeClient({ port, mode: load.close ? 'close' : 'ka', concurrency: opts.connections });
  await sleep(seconds * 1000);
  // The timeline is for the reload tests: not kept for every throughput run.
  const { timeline: _t, errorTimes: _e, ...r } = await c.stop();
  return r;
}

/** Busy CPU seconds of the whole machine (/proc/stat: all but idle and iowait, in USER_HZ). */
function machineBusySeconds(): number {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f;
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / 100;
}

const cpuOf = (pids: number[]) => sum(pids.map((p) => cpuSeconds(p) ?? 0));

async function measure(cfg: Served, load: Load, seconds: number) {
  const before = readCounts(cfg.statsDir);
  const managerPid = cfg.managerPid();
  const served = cfg.workerPids().filter((p) => p !== managerPid);
  const cpu0 = cpuOf(served);
  const busy0 = machineBusySeconds();
  const t0 = performance.now();
  const s = sampler(managerPid);
  const res = await runLoad(load, cfg.port, seconds);
  const manager = s.stop();
  const wall = (performance.now() - t0) / 1000;
  const workersCpu = cpuOf(served) - cpu0;
  const busy = machineBusySeconds() - busy0;
  const workerPids = cfg.workerPids();
  const workersRssKb = sum(workerPids.map((p) => rssKb(p) ?? 0));
  await sleep(300); // app.cjs writes its counts every 100 ms
  const after = readCounts(cfg.statsDir);
  // Every live worker counts, also one that answered nothing.
  const pids = [...new Set([...workerPids.filter((p) => p !== cfg.managerPid()), ...after.keys()])];
  const perWorker = pids
    .map((p) => ({ p, n: (after.get(p) ?? 0) - (before.get(p) ?? 0) }))
    .filter((x) => x.n > 0 || workerPids.includes(x.p))
    .map((x) => x.n);
  const requests = sum(perWorker);
  return {
    ...res,
    perWorker,
    cv: cv(perWorker),
    manager,
    workersRssKb,
    workersCores: workersCpu / wall,
    cpuUsPerRequest: requests > 0 ? (workersCpu * 1e6) / requests : null,
    // Everything else that ran: the load generator above all (and the manager, and this bench).
    othersCores: Math.max(0, busy - workersCpu) / wall,
  };
}

async function throughput(configs: Served[], loads: Load[]): Promise<Throughput> {
  const rounds = opts.rounds;
  const runs: Array<{ round: number; load: string; config: string } & Awaited<ReturnType<typeof measure>>> = [];
  for (let r = 0; r < rounds; r++) {
    // Rotate the order so no configuration always runs first or last.
    const order = configs.map((_, i) => configs[(i + r) % configs.length]!);
    for (const load of loads) {
      for (const cfg of order) {
        interruptedCheck();
        const m = await measure(cfg, load, opts.seconds);
        runs.push({ round: r + 1, load: load.key, config: cfg.key, ...m });
        log(`round ${r + 1}/${rounds} ${load.label.padEnd(22)} ${cfg.label.padEnd(26)} ${Math.round(m.rps).toString().padStart(6)} req/s  p99 ${m.p99?.toFixed(1)} ms  failed ${m.failed}  per worker [${m.perWorker.join(', ')}]`);
      }
    }
  }
  const summary: Throughput['summary'] = {};
  for (const cfg of configs) {
    summary[cfg.key] = { label: cfg.label, workers: cfg.workers, loads: {} };
    for (const load of loads) {
      const rs = runs.filter((x) => x.config === cfg.key && x.load === load.key);
      summary[cfg.key]!.loads[load.key] = {
        rps: median(rs.map((x) => x.rps)),
        p99: median(rs.map((x) => x.p99)),
        max: max(rs.map((x) => x.max)),
        failed: sum(rs.map((x) => x.failed)),
        cv: median(rs.map((x) => x.cv)),
        managerCpuPct: median(rs.map((x) => x.manager.cpuPct)),
        managerRssMaxKb: max(rs.map((x) => x.manager.rssMaxKb)),
        workersRssKb: median(rs.map((x) => x.workersRssKb)),
        workersCores: median(rs.map((x) => x.workersCores)),
        cpuUsPerRequest: median(rs.map((x) => x.cpuUsPerRequest)),
        othersCores: median(rs.map((x) => x.othersCores)),
      };
    }
  }
  for (const [base, field] of [['cluster-rr', 'vsClusterRr'], ['cluster-none', 'vsClusterNone']] as const) {
    for (const cfg of configs) {
      for (const load of loads) {
        const b = summary[base]?.loads[load.key]?.rps;
        const x = summary[cfg.key]!.loads[load.key]!;
        x[field] = b && x.rps ? x.rps / b : null;
      }
    }
  }
  return { rounds, secondsPerRun: opts.seconds, runs, summary, paired: pairedWithSchedNone(runs, configs, loads) };
}

/** Each tsmaster configuration against SCHED_NONE in the same round, on the keep-alive loads. */
function pairedWithSchedNone(runs: Array<{ round: number; load: string; config: string } & Awaited<ReturnType<typeof measure>>>, configs: Served[], loads: Load[]): Paired[] {
  const spread = (xs: Array<number | null>) => ({ median: median(xs), min: min(xs), max: max(xs) });
  const out: Paired[] = [];
  for (const load of loads.filter((l) => !l.close)) {
    for (const cfg of configs.filter((c) => c.key.startsWith('tsm'))) {
      const ratios = runs
        .filter((x) => x.load === load.key && x.config === cfg.key)
        .flatMap((x) => {
          const base = runs.find((b) => b.load === load.key && b.config === 'cluster-none' && b.round === x.round);
          if (!base || !base.rps || !base.workersCores || !base.cpuUsPerRequest || !x.cpuUsPerRequest) return [];
          return [{ rps: x.rps / base.rps, cores: x.workersCores / base.workersCores, cpu: x.cpuUsPerRequest / base.cpuUsPerRequest }];
        });
      if (ratios.length === 0) continue;
      out.push({ config: cfg.key, load: load.key, rounds: ratios.length, rps: spread(ratios.map((r) => r.rps)), workersCores: spread(ratios.map((r) => r.cores)), cpuPerRequest: spread(ratios.map((r) => r.cpu)) });
    }
  }
  return out;
}

// ---- one worker stalled -------------------------------------------------------------------

/**
 * SIGSTOP one worker for `stallSec` under Connection: close load, as a long GC pause, a
 * blocking call or a hang not yet caught by the heartbeat would. With one accept queue per
 * worker (reuseport, or the RR primary's hand-off) the connections meant for it wait.
 */
async function stall(cfg: Served, stallSec: number, hasWrk: boolean): Promise<Stall> {
  const w = hasWrk ? startWrk({ port: cfg.port, close: true, connections: opts.connections, timeoutSec: stallSec + 5 }) : null;
  const client = startNodeClient({ port: cfg.port, mode: 'close', concurrency: opts.clientConcurrency });
  await sleep(1000);
  const victim = cfg.workerPids()[0];
  if (!victim) throw new Error(`${cfg.label}: no worker to stop`);
  const cont = () => {
    try {
      process.kill(victim, 'SIGCONT');
    } catch {
      // gone
    }
  };
  const forget = onExitSync(cont);
  try {
    process.kill(victim, 'SIGSTOP');
    await sleep(stallSec * 1000);
  } finally {
    cont();
    forget();
  }
  await sleep(1000);
  const [wr, cl] = await Promise.all([w ? w.stop() : null, client.stop()]);
  const r: Stall = {
    config: cfg.key,
    stalledSeconds: stallSec,
    wrk: wr && { rps: wr.rps, p99: wr.p99, max: wr.max, failed: wr.failed },
    client: { ok: cl.ok, rps: cl.rps, p99: cl.p99, max: cl.max, failed: cl.failed, slowerThan1s: cl.slowerThan1s },
  };
  log(`${cfg.label}: one worker stopped ${stallSec}s, close: ${wr ? `wrk ${Math.round(wr.rps)} req/s p99 ${wr.p99.toFixed(0)} ms max ${wr.max.toFixed(0)} ms; ` : ''}client.js ${cl.slowerThan1s} of ${cl.ok} answers > 1 s, max ${cl.max?.toFixed(0)} ms`);
  return r;
}

// ---- reload / upgrade under load ---------------------------------------------------------

async function changeUnderLoad(cfg: Changeable, kind: ChangeKind, mode: 'ka' | 'close', hasWrk: boolean): Promise<Change> {
  const wrk = hasWrk ? startWrk({ port: cfg.port, close: mode === 'close', connections: opts.connections }) : null;
  const client = startNodeClient({ port: cfg.port, mode, concurrency: opts.clientConcurrency });
  await sleep(1500);
  const changes: Change['changeDetails'] = [];
  for (let i = 0; i < opts.changes; i++) {
    interruptedCheck();
    const masterBefore = cfg.managerPid();
    const start = Date.now();
    const r = await cfg.change(kind);
    const end = Date.now();
    const c: Change['changeDetails'][number] = { start, end, ms: Math.round(r.ms), code: r.code };
    if (r.code !== 0) c.output = `${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-8);
    if (kind === 'upgrade') c.masters = [masterBefore, cfg.managerPid()];
    changes.push(c);
    await sleep(1500);
  }
  await sleep(500);
  const [w, cl] = await Promise.all([wrk ? wrk.stop() : null, client.stop()]);
  const during = (t: number) => changes.some((c) => t >= c.start - 100 && t <= c.end + 1500);
  const buckets = cl.timeline;
  const result: Change = {
    config: cfg.key,
    kind,
    mode,
    changes: changes.length,
    changesFailed: changes.filter((c) => c.code !== 0).length,
    commandMs: { median: median(changes.map((c) => c.ms)), max: max(changes.map((c) => c.ms)) },
    changeDetails: changes,
    wrk: w && { ok: w.ok, failed: w.failed, errorKinds: w.errorKinds, p99: w.p99, max: w.max, rps: w.rps },
    client: {
      ok: cl.ok,
      failed: cl.failed,
      failedDuringChanges: cl.errorTimes.filter(([t]) => during(t)).length,
      errorKinds: cl.errorKinds,
      p99: cl.p99,
      worstDuringChanges: max(buckets.filter((b) => during(b[0])).map((b) => b[2])),
      worstOtherwise: max(buckets.filter((b) => !during(b[0])).map((b) => b[2])),
    },
    workersAfter: cfg.workerPids().length,
    answersAfter: await probe(cfg.port),
  };
  const wtxt = w ? `wrk failed ${w.failed} ${JSON.stringify(w.errorKinds)} max ${w.max.toFixed(0)} ms; ` : '';
  log(`${cfg.label} ${kind} x${changes.length} ${mode}: ${wtxt}client.js failed ${cl.failed} worst ${result.client.worstDuringChanges?.toFixed(0)} ms; command ${result.commandMs.median} ms${result.changesFailed ? `; ${result.changesFailed} command(s) FAILED` : ''}`);
  return result;
}

// ---- master overhead -------------------------------------------------------------------

async function upgradeTiming(tsm: Tsmaster, times: number): Promise<NonNullable<BenchResult['upgradeReady']>> {
  const out = [];
  for (let i = 0; i < times; i++) {
    interruptedCheck();
    try {
      const r = await tsm.timeUpgrade();
      out.push(r);
      log(`USR2 -> new master's workers ready: ${r.ms.toFixed(0)} ms (master ${r.oldPid} -> ${r.newPid})`);
    } catch (err) {
      note(`USR2 timing ${i + 1}: ${(err as Error).message}`);
    }
    await sleep(300);
  }
  const ms = out.map((r) => r.ms);
  return { runs: ms.map((x) => Math.round(x)), median: median(ms), min: min(ms), max: max(ms) };
}

async function statusLatency(tsm: Tsmaster, result: BenchResult): Promise<Status> {
  const probeRun = await tsm.tsm('-s', 'status');
  const said = `${probeRun.stdout}\n${probeRun.stderr}`.trim();
  if (probeRun.code !== 0) {
    return { skipped: true, reason: `\`tsmaster -s status\` exits ${probeRun.code}: ${said.split('\n')[0]}` };
  }
  const big = new Tsmaster({ key: 'tsm-64', label: `tsmaster, ${opts.statusWorkers} workers`, workers: opts.statusWorkers, reuseport: false, extra: ['ready_timeout 120s;'], metrics: true });
  const t0 = performance.now();
  await big.start(150_000);
  const startMs = performance.now() - t0;
  log(`${opts.statusWorkers} workers ready in ${(startMs / 1000).toFixed(1)} s`);
  const baseline = [];
  for (let i = 0; i < 3; i++) baseline.push((await big.tsm('-v')).ms);
  const human: number[] = [];
  const json: number[] = [];
  let lines = 0;
  let jsonWorkers: number | null = null;
  const failures: string[] = [];
  for (let i = 0; i < 5; i++) {
    const r = await big.tsm('-s', 'status');
    human.push(r.ms);
    lines = r.stdout.trim().split('\n').length;
    if (r.code !== 0) failures.push(r.stderr.trim());
  }
  for (let i = 0; i < 3; i++) {
    const r = await big.tsm('-s', 'status', '--json');
    json.push(r.ms);
    if (r.code !== 0) failures.push(r.stderr.trim());
    try {
      jsonWorkers = countWorkers(JSON.parse(r.stdout));
    } catch {
      jsonWorkers = null;
    }
  }
  // GET /metrics: every worker asked for its app metrics over IPC, the master's own series.
  const metrics: number[] = [];
  for (let i = 0; i < 10; i++) {
    const r = await getMetrics(big.metricsPort!); // started with `metrics: true`
    if (r.status !== 200) failures.push(`/metrics answered ${r.status}`);
    else metrics.push(r.ms);
  }
  const bigMaster = big.managerPid();
  const masterRssKb = bigMaster ? rssKb(bigMaster) : null;
  log(`CLI start against ${opts.statusWorkers} workers: node -e 0, -v, -s status on this Node, 24 and 26`);
  try {
    result.startup = await startupCost(big, log);
  } catch (err) {
    note(`CLI start not measured: ${firstLine(err)}`);
  }
  await big.stop();
  return {
    skipped: false,
    workers: opts.statusWorkers,
    startupMs: Math.round(startMs),
    cliBaselineMs: median(baseline),
    statusMs: { median: median(human), max: max(human) },
    statusJsonMs: { median: median(json), max: max(json) },
    metricsMs: { median: median(metrics), max: max(metrics) },
    statusLines: lines,
    jsonObjectsWithPidAndState: jsonWorkers,
    masterRssKb,
    failures: failures.slice(0, 3),
  };
}

/** Objects with a pid and a state anywhere in `-s status --json`: the workers it lists. */
function countWorkers(o: unknown): number {
  if (Array.isArray(o)) return o.reduce((a: number, x) => a + countWorkers(x), 0);
  if (!o || typeof o !== 'object') return 0;
  return ('pid' in o && 'state' in o ? 1 : 0) + Object.values(o).reduce((a: number, x) => a + countWorkers(x), 0);
}

// ---- reuseport kernel check ---------------------------------------------------------------

async function reuseportDemo(): Promise<NonNullable<BenchResult['reuseportDemo']>> {
  const demo = path.join(path.dirname(fileURLToPath(import.meta.url)), 'reuseport-demo.js');
  const out: DemoRun[] = [];
  for (const migrate of [0, 1]) {
    const r = await run('unshare', ['-n', 'sh', '-c', `ip link set lo up && sysctl -qw net.ipv4.tcp_migrate_req=${migrate} && exec "$0" "$1"`, process.execPath, demo], { timeoutMs: 30_000 });
    if (r.code !== 0) return { skipped: true, reason: `unshare -n failed (needs root and iproute2): ${(r.stderr || r.error || '').trim().split('\n')[0]}` };
    out.push(JSON.parse(r.stdout) as DemoRun);
  }
  return { skipped: false, runs: out };
}

// ---- main ------------------------------------------------------------------------------

async function bench(): Promise<BenchResult> {
  if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: run \`npm run build\` first`);
  const hasWrk = wrkVersion();
  const env = await environment(hasWrk);
  const result: BenchResult = { ...env, options: opts, notes };
  log(`tmp dir ${tempRoot()}; ${env.machine.nproc} CPU(s) ${env.machine.cpu}; Node ${env.versions.node}; tsmaster ${env.versions.tsmaster} ${env.versions.tsmasterCommit}; wrk ${hasWrk ?? 'not installed'}`);
  if (env.loadAverageAtStart[0]! > 0.5) note(`the machine was not idle at the start (load average ${env.loadAverageAtStart.join(' ')}): other work competes for the CPUs`);
  if (!hasWrk) note('wrk is not installed (apt-get install wrk): Connection: close load comes from client.js (node:http) instead, reload tests use client.js only');

  const { configs, pm2 } = makeConfigs(opts.workers);
  // The stages that need the configurations side by side; the others start their own.
  const sideBySide = stage('throughput') || stage('stall') || stage('changes');
  let active = sideBySide ? configs : stage('upgrade') || stage('status') ? configs.filter((c) => c.key === 'tsm') : [];
  if (active.includes(pm2) && opts.skipPm2) {
    note('PM2 skipped (BENCH_SKIP_PM2=1)');
    active = active.filter((c) => c !== pm2);
  } else if (active.includes(pm2)) {
    log('installing PM2 into the temp dir');
    try {
      env.versions.pm2 = await pm2.install();
      result.pm2InstallSeconds = pm2.installSeconds;
      log(`PM2 ${env.versions.pm2} installed in ${pm2.installSeconds.toFixed(1)} s`);
    } catch (err) {
      note(`PM2 skipped: ${firstLine(err)}`);
      active = active.filter((c) => c !== pm2);
    }
  }
  for (const cfg of active) {
    interruptedCheck();
    await cfg.start();
    log(`${cfg.label}: port ${cfg.port}, ${cfg.workerPids().length} worker process(es), manager ${cfg.managerPid() ?? '-'}`);
  }
  result.listeningSockets = Object.fromEntries(active.map((c) => [c.key, listeningSockets(c.port)]));

  const loads: Load[] = [
    { key: 'ac-ka', label: 'autocannon keep-alive', tool: 'autocannon', close: false },
    { key: 'wrk-ka', label: 'wrk keep-alive', tool: 'wrk', close: false },
    { key: 'wrk-close', label: 'wrk Connection: close', tool: 'wrk', close: true },
  ];
  if (!hasWrk) loads.splice(1, 2, { key: 'client-close', label: 'client.js close', tool: 'client', close: true });
  result.loads = loads;
  if (stage('throughput')) result.throughput = await throughput(active, loads);

  if (stage('stall') && opts.stallSeconds > 0) {
    result.stall = [];
    for (const cfg of active.filter((c) => c.key !== 'single')) {
      interruptedCheck();
      result.stall.push(await stall(cfg, opts.stallSeconds, hasWrk !== null));
    }
  }

  // Reloads: the single process and the cluster module have nothing to compare.
  for (const cfg of active.filter((c) => ['single', 'cluster-rr', 'cluster-none'].includes(c.key))) await cfg.stop();
  const scenarios: Array<[Changeable, ChangeKind]> = [];
  for (const cfg of active.filter((c): c is Changeable => stage('changes') && c.change !== undefined)) {
    if (cfg.key === 'tsm' || cfg.key === 'tsm-reuseport') scenarios.push([cfg, 'reload'], [cfg, 'upgrade']);
    if (cfg.key === 'pm2') scenarios.push([cfg, 'reload']);
  }
  result.changes = [];
  for (const [cfg, kind] of scenarios) {
    for (const mode of ['ka', 'close'] as const) {
      interruptedCheck();
      result.changes.push(await changeUnderLoad(cfg, kind, mode, hasWrk !== null));
    }
  }

  if (stage('changes')) result.listeningSocketsAfterChanges = Object.fromEntries(active.filter((c) => c.key.startsWith('tsm')).map((c) => [c.key, listeningSockets(c.port)]));
  const tsm = active.find((c): c is Tsmaster => c.key === 'tsm');
  for (const cfg of active.filter((c) => c !== tsm)) await cfg.stop();
  if (tsm && stage('upgrade')) {
    log('timing USR2 -> new workers ready (idle), 3 times');
    result.upgradeReady = await upgradeTiming(tsm, 3);
  }
  if (tsm && stage('status')) {
    log('-s status latency');
    try {
      result.status = await statusLatency(tsm, result);
    } catch (err) {
      result.status = { skipped: true, reason: `failed: ${firstLine(err)}` };
    }
    if (result.status.skipped) note(`-s status with ${opts.statusWorkers} workers skipped: ${result.status.reason}`);
  }
  await tsm?.stop();

  await later(result);
  result.loadAverageAtEnd = os.loadavg().map((x) => Number(x.toFixed(2)));
  result.runSeconds = Math.round((Date.now() - started) / 1000);
  return result;
}

/** The stages that start what they measure themselves: each said, and kept apart on failure. */
async function later(result: BenchResult): Promise<void> {
  const stages: Array<[Stage, string, () => Promise<void>]> = [
    ['deploy', 'deploy cost: a reload of 4 workers all at once and with worker_reload_batch 1; -s upgrade steps under load; batched deploys holding 300 WebSockets', async () => void (result.deploy = await deployCost(log))],
    ['log', "log stage: a chatty app (100,000 lines/s) against the master's loop", async () => void (result.chatty = await chattyApp(log))],
    ['pinned', 'keep-alive with one pinned worker (CPU 0) and wrk pinned to CPU 1: the worker runtime alone', async () => void (result.pinned = await pinnedKeepAlive({ log }))],
    ['install', 'install: npm pack, then npm, pnpm and yarn into fresh projects without a compiler', async () => void (result.install = await installCost(log))],
    [
      'reuseport-demo',
      'reuseport kernel check in a private network namespace',
      async () => {
        result.reuseportDemo = await reuseportDemo();
        if (result.reuseportDemo.skipped) note(`reuseport kernel check skipped: ${result.reuseportDemo.reason}`);
      },
    ],
  ];
  for (const [name, what, measure] of stages) {
    if (!stage(name)) continue;
    interruptedCheck();
    log(what);
    try {
      await measure();
    } catch (err) {
      note(`${name} not measured: ${firstLine(err)}`);
    }
  }
}

async function main(): Promise<void> {
  installHandlers();
  let result: BenchResult | null = null;
  let failed: unknown = null;
  try {
    result = await bench();
  } catch (err) {
    failed = err;
    if (!wasInterrupted()) process.stderr.write(`bench: ${(err as Error).stack ?? err}\n`);
  }
  log('stopping every process the benchmark started');
  await cleanup();
  if (result) {
    const { files, markdown } = writeReport(result, path.join(repo, 'results'));
    process.stdout.write(`\n${markdown}\n`);
    log(`wrote ${files.map((f) => path.relative(repo, f)).join(', ')}`);
  }
  log(`done in ${Math.round((Date.now() - started) / 1000)} s`);
  if (failed) process.exitCode = 1;
}

await main();
