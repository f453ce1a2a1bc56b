// The six ways of serving app.cjs: one Node process, the cluster module (SCHED_RR and
// SCHED_NONE), PM2 cluster mode, tsmaster on a shared socket and tsmaster with `reuseport`.
// Each has start(), stop(), the pid of its manager process (null for one process) and, for
// PM2 and tsmaster, change(kind) = a reload or an upgrade under load.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitHttp } from './load.js';
import { adoptGroup, childPids, isGone, onStop, procStat, run, sleep, stopGroup, tempDir, track } from './procs.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '..', '..');
export const cli = path.join(repo, 'dist', 'cli', 'main.js');
const appPath = path.join(here, 'app.cjs');
const serverPath = path.join(here, 'server.cjs');
const clusterPath = path.join(here, 'cluster.cjs');

export async function freePort() {
  const srv = net.createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

function tail(file, lines = 15) {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Requests answered per worker pid so far, from the files app.cjs writes. */
export function readCounts(dir) {
  const counts = new Map();
  for (const name of fs.readdirSync(dir)) {
    if (!/^\d+$/.test(name)) continue;
    const n = Number.parseInt(fs.readFileSync(path.join(dir, name), 'utf8'), 10);
    if (Number.isFinite(n)) counts.set(Number(name), n);
  }
  return counts;
}

/** Wait for a line from a child's stdout, failing if it exits first. */
function waitLine(child, re, what, timeoutMs = 20_000) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => done(new Error(`${what}: not ready after ${timeoutMs}ms`)), timeoutMs);
    const onData = (d) => {
      buf += d;
      if (re.test(buf)) done(null);
    };
    const onExit = (code, sig) => done(new Error(`${what} exited (${sig ?? code}) before it was ready`));
    function done(err) {
      clearTimeout(t);
      child.stdout.off('data', onData);
      child.off('exit', onExit);
      child.stdout.resume();
      if (err) reject(err);
      else resolve();
    }
    child.stdout.on('data', onData);
    child.once('exit', onExit);
  });
}

export class NodeServed {
  constructor({ key, label, workers, sched }) {
    Object.assign(this, { key, label, workers, sched });
    this.manager = sched ? 'cluster primary' : null;
  }

  async start() {
    this.dir = tempDir(this.key);
    this.statsDir = tempDir(`${this.key}/stats`);
    this.port = await freePort();
    const err = fs.openSync(path.join(this.dir, 'stderr.log'), 'a');
    const env = { ...process.env, PORT: String(this.port), HOST: '127.0.0.1', BENCH_STATS_DIR: this.statsDir, BENCH_WORKERS: String(this.workers) };
    if (this.sched) env.NODE_CLUSTER_SCHED_POLICY = this.sched;
    else env.BENCH_SAY_READY = '1';
    this.child = track(process.execPath, [this.sched ? clusterPath : serverPath], { detached: true, stdio: ['ignore', 'pipe', err], env }, this.key);
    fs.closeSync(err);
    this.pgid = this.child.pid;
    await waitLine(this.child, this.sched ? new RegExp(`^ready ${this.sched}$`, 'm') : /^ready$/m, this.label);
    await waitHttp(this.port);
  }

  managerPid() {
    return this.sched ? this.child.pid : null;
  }

  workerPids() {
    return this.sched ? childPids(this.child.pid) : [this.child.pid];
  }

  async stop() {
    if (this.pgid) await stopGroup(this.pgid);
    this.pgid = null;
  }
}

class Pm2 {
  constructor({ workers }) {
    Object.assign(this, { key: 'pm2', label: 'PM2 cluster mode', workers, manager: 'PM2 daemon (God)' });
  }

  /** npm install --prefix <tmp> pm2; PM2_HOME in the same temp dir. */
  async install() {
    this.dir = tempDir('pm2');
    this.home = tempDir('pm2/home');
    const t0 = Date.now();
    const r = await run('npm', ['install', '--prefix', this.dir, 'pm2', '--no-audit', '--no-fund', '--loglevel=error'], { timeout: 240_000 });
    if (r.code !== 0) throw new Error(`npm install pm2 failed: ${(r.stderr || r.error || '').trim().slice(-800)}`);
    this.installSeconds = (Date.now() - t0) / 1000;
    this.bin = path.join(this.dir, 'node_modules', 'pm2', 'bin', 'pm2');
    this.version = JSON.parse(fs.readFileSync(path.join(this.dir, 'node_modules', 'pm2', 'package.json'), 'utf8')).version;
    return this.version;
  }

  pm2(...args) {
    return run(process.execPath, [this.bin, ...args], { env: { ...process.env, PM2_HOME: this.home }, timeout: 60_000 });
  }

  async start() {
    this.statsDir = tempDir('pm2/stats');
    this.port = await freePort();
    const eco = path.join(this.dir, 'ecosystem.config.cjs');
    const app = {
      name: 'bench',
      script: serverPath,
      instances: this.workers,
      exec_mode: 'cluster',
      autorestart: true,
      watch: false,
      out_file: path.join(this.dir, 'out.log'),
      error_file: path.join(this.dir, 'err.log'),
      env: { PORT: String(this.port), HOST: '127.0.0.1', BENCH_STATS_DIR: this.statsDir },
    };
    fs.writeFileSync(eco, `module.exports = ${JSON.stringify({ apps: [app] }, null, 2)};\n`);
    // Registered before the start: a daemon that comes up while we fail must still go.
    this.unregister = onStop(() => this.stop());
    const r = await this.pm2('start', eco);
    this.adopt();
    if (r.code !== 0) throw new Error(`pm2 start failed: ${r.stderr.trim().slice(-800)}`);
    const deadline = Date.now() + 30_000;
    while (this.onlinePids().length < this.workers) {
      if (Date.now() > deadline) throw new Error(`PM2: ${this.workers} instances not online after 30s`);
      await sleep(200);
    }
    await waitHttp(this.port);
  }

  /** The God daemon runs in its own session: make cleanup kill its group too. */
  adopt() {
    const pid = this.managerPid();
    if (pid && procStat(pid)?.pgrp === pid) adoptGroup(pid, 'pm2 daemon');
  }

  managerPid() {
    try {
      return Number.parseInt(fs.readFileSync(path.join(this.home, 'pm2.pid'), 'utf8'), 10) || null;
    } catch {
      return null;
    }
  }

  onlinePids() {
    const god = this.managerPid();
    return god ? childPids(god) : [];
  }

  workerPids() {
    return this.onlinePids();
  }

  async change(kind) {
    if (kind !== 'reload') throw new Error(`PM2 has no ${kind}`);
    return this.pm2('reload', 'bench');
  }

  async stop() {
    this.unregister?.();
    this.unregister = null;
    if (!this.bin || !fs.existsSync(this.home)) return;
    const god = this.managerPid();
    await this.pm2('kill');
    if (god) await stopGroup(god, 2000);
  }
}

/** One GET of the master's metrics_listen; resolves with the status and the time it took. */
export function getMetrics(port, path = '/metrics') {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, ms: performance.now() - t0 }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0, ms: performance.now() - t0 }));
  });
}

class Tsmaster {
  /** `metrics`: with metrics_listen, scraped every second while it runs, as Prometheus would. */
  constructor({ key, label, workers, reuseport, extra = [], metrics = false }) {
    Object.assign(this, { key, label, workers, reuseport, extra, metrics, manager: 'tsmaster master' });
  }

  writeConf({ workers = this.workers, port = this.port, file = this.conf } = {}) {
    fs.writeFileSync(
      file,
      [
        'daemon off;',
        `worker_processes ${workers};`,
        `pid ${path.join(this.dir, 'tsmaster.pid')};`,
        `error_log ${this.errorLog} notice;`,
        `worker_log ${path.join(this.dir, 'worker.log')};`,
        `listen 127.0.0.1:${port}${this.reuseport ? ' reuseport' : ''};`,
        `app ${appPath};`,
        `env BENCH_STATS_DIR=${this.statsDir};`,
        ...(this.metricsPort ? [`metrics_listen 127.0.0.1:${this.metricsPort};`] : []),
        ...this.extra,
        '',
      ].join('\n'),
    );
  }

  async start(readyTimeoutMs = 30_000) {
    this.dir = tempDir(this.key);
    this.statsDir = tempDir(`${this.key}/stats`);
    this.port = await freePort();
    this.metricsPort = this.metrics ? await freePort() : null;
    this.conf = path.join(this.dir, 'tsmaster.conf');
    this.errorLog = path.join(this.dir, 'error.log');
    this.pidFile = path.join(this.dir, 'tsmaster.pid');
    this.writeConf();
    const out = fs.openSync(path.join(this.dir, 'stdout.log'), 'a');
    this.child = track(process.execPath, [cli, '-p', this.dir, '-c', this.conf], { detached: true, stdio: ['ignore', out, out] }, this.key);
    fs.closeSync(out);
    this.pgid = this.child.pid;
    this.unregister = onStop(() => this.stop());
    const log = new LogTail(this.errorLog, 0);
    const ready = await log.waitFor(
      (l) => l.pid === this.child.pid && /^generation 1: all \d+ worker\(s\) ready/.test(l.text),
      readyTimeoutMs,
      () => this.child.exitCode !== null || this.child.signalCode !== null,
    );
    if (!ready) throw new Error(`${this.label} did not start:\n${tail(this.errorLog)}\n${tail(path.join(this.dir, 'stdout.log'))}`);
    await waitHttp(this.port);
    if (this.metrics && this.metricsPort) {
      this.scrapes = { ok: 0, failed: 0 };
      this.scraper = setInterval(() => void getMetrics(this.metricsPort).then((r) => (r.status === 200 ? this.scrapes.ok++ : this.scrapes.failed++)), 1000);
    }
  }

  tsm(...args) {
    return run(process.execPath, [cli, '-p', this.dir, '-c', this.conf, ...args], { timeout: 90_000 });
  }

  managerPid() {
    try {
      return Number.parseInt(fs.readFileSync(this.pidFile, 'utf8'), 10) || null;
    } catch {
      return null;
    }
  }

  workerPids() {
    const m = this.managerPid();
    return m ? childPids(m) : [];
  }

  change(kind) {
    return this.tsm('-s', kind);
  }

  /**
   * USR2 by hand, timed until the new master logs "generation G: all N worker(s) ready",
   * then WINCH and QUIT to the old master as `-s upgrade` does.
   */
  async timeUpgrade() {
    const old = this.managerPid();
    const log = new LogTail(this.errorLog);
    const t0 = performance.now();
    process.kill(old, 'SIGUSR2');
    let newPid = 0;
    let failure = null;
    const line = await log.waitFor(
      (l) => {
        const m = /^start new master process (\d+)/.exec(l.text);
        if (m && l.pid === old) newPid = Number(m[1]);
        if (l.pid === old && /rolling back|USR2 ignored|upgrade failed/.test(l.text)) failure = l.text;
        return l.pid !== old && /^generation \d+: all \d+ worker\(s\) ready/.test(l.text);
      },
      40_000,
      () => failure !== null,
      5,
    );
    const ms = performance.now() - t0;
    if (!line) throw new Error(`USR2: no new master ready (${failure ?? 'timeout'})`);
    // Complete the upgrade: the new master publishes its pid once ready.
    const deadline = Date.now() + 10_000;
    while (this.managerPid() === old && Date.now() < deadline) await sleep(10);
    process.kill(old, 'SIGWINCH');
    const drainDeadline = Date.now() + 20_000;
    while (childPids(old).some((p) => p !== line.pid && p !== newPid) && Date.now() < drainDeadline) await sleep(20);
    process.kill(old, 'SIGQUIT');
    const quitDeadline = Date.now() + 10_000;
    while (!isGone(old) && Date.now() < quitDeadline) await sleep(20);
    return { ms, oldPid: old, newPid: line.pid };
  }

  async stop() {
    this.unregister?.();
    this.unregister = null;
    clearInterval(this.scraper);
    if (!this.pgid) return;
    if (this.managerPid()) await this.tsm('-s', 'stop');
    await stopGroup(this.pgid, 2000);
    this.pgid = null;
  }
}

/** Follows a tsmaster error log from its current end (or `from`). */
export class LogTail {
  constructor(file, from) {
    this.file = file;
    this.offset = from ?? (fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0);
    this.partial = '';
  }

  poll() {
    let text;
    try {
      const fd = fs.openSync(this.file, 'r');
      try {
        const size = fs.fstatSync(fd).size;
        if (size <= this.offset) return [];
        const buf = Buffer.alloc(size - this.offset);
        fs.readSync(fd, buf, 0, buf.length, this.offset);
        this.offset = size;
        text = this.partial + buf.toString('utf8');
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      return [];
    }
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    const out = [];
    for (const raw of parts) {
      const m = /^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[(\w+)\] (\d+)#\d+: (.*)$/.exec(raw);
      if (m) out.push({ level: m[1], pid: Number(m[2]), text: m[3] });
    }
    return out;
  }

  async waitFor(match, timeoutMs, abort = () => false, everyMs = 20) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const l of this.poll()) if (match(l)) return l;
      if (abort() || Date.now() > deadline) return null;
      await sleep(everyMs);
    }
  }
}

export function makeConfigs(workers) {
  return [
    new NodeServed({ key: 'single', label: 'Node, one process', workers: 1 }),
    new NodeServed({ key: 'cluster-rr', label: 'Node cluster, SCHED_RR', workers, sched: 'rr' }),
    new NodeServed({ key: 'cluster-none', label: 'Node cluster, SCHED_NONE', workers, sched: 'none' }),
    new Pm2({ workers }),
    new Tsmaster({ key: 'tsm', label: 'tsmaster, shared socket', workers, reuseport: false }),
    new Tsmaster({ key: 'tsm-reuseport', label: 'tsmaster, reuseport', workers, reuseport: true }),
    // The same as 'tsm' with metrics_listen on and scraped every second: its cost, side by side.
    new Tsmaster({ key: 'tsm-metrics', label: 'tsmaster, shared socket, metrics scraped 1/s', workers, reuseport: false, metrics: true }),
  ];
}

export { Tsmaster };
