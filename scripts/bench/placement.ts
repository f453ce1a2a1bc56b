// Where the keep-alive gap against Node's cluster module comes from. With two workers and the
// load generator on the same two CPUs, keep-alive throughput depends on where the scheduler
// puts wrk and how the connections spread over the workers. Here one worker is pinned to CPU 0
// and wrk to CPU 1, so only the worker runtime differs: a bare http.Server, Node's cluster
// (SCHED_NONE, one worker) and tsmaster (one worker), in interleaved rounds.
// A stage of `npm run bench`; alone, after `npm run bench` has built it:
// `node build/bench/scripts/bench/placement.js`.
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { childrenOf } from '../../src/proc.js';
import { sleep } from '../../test/helpers/wait.js';
import { startWrk } from './load.js';
import { runAlone, type Log } from './procs.js';
import { NodeServed, Tsmaster } from './servers.js';
import { median } from './stats.js';

export type Pinned =
  | { skipped: true; reason: string }
  | {
      skipped?: undefined;
      seconds: number;
      rounds: number;
      connections: number;
      configs: Record<string, { label: string; rps: number | null; runs: number[]; failed: number }>;
      tsmVsClusterNone: number | null;
      tsmVsBare: number | null;
    };

function pin(pids: number[], cpu: number): void {
  for (const pid of pids) spawnSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
}

function whyNot(): string | null {
  if (os.cpus().length < 2) return 'needs 2 CPUs';
  if (spawnSync('taskset', ['-V']).status !== 0) return 'needs taskset (util-linux)';
  if (spawnSync('wrk', ['-v']).error) return 'needs wrk';
  return null;
}

export async function pinnedKeepAlive({ rounds = 8, seconds = 3, connections = 50, log }: { rounds?: number; seconds?: number; connections?: number; log: Log }): Promise<Pinned> {
  const skip = whyNot();
  if (skip) return { skipped: true, reason: skip };
  const configs = [
    new NodeServed({ key: 'pin-bare', label: 'bare http.Server', workers: 1 }),
    new NodeServed({ key: 'pin-cluster-none', label: 'Node cluster, SCHED_NONE, 1 worker', workers: 1, sched: 'none' }),
    new Tsmaster({ key: 'pin-tsm', label: 'tsmaster, 1 worker', workers: 1, reuseport: false, extra: ['worker_cpu_affinity 01;'] }),
  ];
  const runs: Array<{ round: number; config: string; rps: number; failed: number }> = [];
  try {
    for (const cfg of configs) {
      await cfg.start();
      // The whole server on CPU 0 (a master or primary is idle while serving anyway).
      const top = cfg.managerPid() ?? cfg.child?.pid;
      if (top) pin([top, ...childrenOf(top)], 0);
    }
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < configs.length; i++) {
        const cfg = configs[(i + r) % configs.length]!;
        const m = await startWrk({ port: cfg.port, connections, seconds, cpu: 1 }).done;
        runs.push({ round: r + 1, config: cfg.key, rps: m.rps, failed: m.failed });
        log(`pinned round ${r + 1}/${rounds} ${cfg.label.padEnd(36)} ${Math.round(m.rps).toString().padStart(6)} req/s  failed ${m.failed}`);
        await sleep(300);
      }
    }
  } finally {
    for (const cfg of configs) await cfg.stop().catch(() => undefined);
  }
  const out: Extract<Pinned, { seconds: number }> = { seconds, rounds, connections, configs: {}, tsmVsClusterNone: null, tsmVsBare: null };
  for (const cfg of configs) {
    const rs = runs.filter((x) => x.config === cfg.key).map((x) => x.rps);
    out.configs[cfg.key] = { label: cfg.label, rps: median(rs), runs: rs.map(Math.round), failed: runs.filter((x) => x.config === cfg.key).reduce((n, x) => n + x.failed, 0) };
  }
  const none = out.configs['pin-cluster-none']!.rps;
  const bare = out.configs['pin-bare']!.rps;
  const tsm = out.configs['pin-tsm']!.rps ?? 0;
  out.tsmVsClusterNone = none ? tsm / none : null;
  out.tsmVsBare = bare ? tsm / bare : null;
  return out;
}

await runAlone(import.meta.url, (log) => pinnedKeepAlive({ log }));
