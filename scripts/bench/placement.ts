// Where the keep-alive gap against Node's cluster module comes from. With two workers and the
// load generator on the same two CPUs, keep-alive throughput depends on where the scheduler
// puts wrk and how the connections spread over the workers. Here one worker is pinned to CPU 0
// and wrk to CPU 1, so only the worker runtime differs: a bare http.Server, Node's cluster
// (SCHED_NONE, one worker) and tsmaster (one worker), in interleaved rounds.
// Run alone: `node scripts/bench/placement.js`.
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { startWrk } from './load.js';
import { childPids, cleanup, installHandlers, sleep } from './procs.js';
import { NodeServed, Tsmaster } from './servers.js';
import { median } from './stats.js';

function pin(pids, cpu) {
  for (const pid of pids) spawnSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
}

function whyNot() {
  if (os.cpus().length < 2) return 'needs 2 CPUs';
  if (spawnSync('taskset', ['-V']).status !== 0) return 'needs taskset (util-linux)';
  if (spawnSync('wrk', ['-v']).error) return 'needs wrk';
  return null;
}

export async function pinnedKeepAlive({ rounds = 8, seconds = 3, connections = 50, log }) {
  const skip = whyNot();
  if (skip) return { skipped: true, reason: skip };
  const configs = [
    new NodeServed({ key: 'pin-bare', label: 'bare http.Server', workers: 1 }),
    new NodeServed({ key: 'pin-cluster-none', label: 'Node cluster, SCHED_NONE, 1 worker', workers: 1, sched: 'none' }),
    new Tsmaster({ key: 'pin-tsm', label: 'tsmaster, 1 worker', workers: 1, reuseport: false, extra: ['worker_cpu_affinity 01;'] }),
  ];
  const runs = [];
  try {
    for (const cfg of configs) {
      await cfg.start();
      // The whole server on CPU 0 (a master or primary is idle while serving anyway).
      const top = cfg.managerPid() ?? cfg.child.pid;
      pin([top, ...childPids(top)], 0);
    }
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < configs.length; i++) {
        const cfg = configs[(i + r) % configs.length];
        const m = await startWrk({ port: cfg.port, connections, seconds, cpu: 1 }).done;
        runs.push({ round: r + 1, config: cfg.key, rps: m.rps, failed: m.failed });
        log(`pinned round ${r + 1}/${rounds} ${cfg.label.padEnd(36)} ${Math.round(m.rps).toString().padStart(6)} req/s  failed ${m.failed}`);
        await sleep(300);
      }
    }
  } finally {
    for (const cfg of configs) await cfg.stop().catch(() => undefined);
  }
  const out = { seconds, rounds, connections, configs: {} };
  for (const cfg of configs) {
    const rs = runs.filter((x) => x.config === cfg.key).map((x) => x.rps);
    out.configs[cfg.key] = { label: cfg.label, rps: median(rs), runs: rs.map(Math.round), failed: runs.filter((x) => x.config === cfg.key).reduce((n, x) => n + x.failed, 0) };
  }
  const none = out.configs['pin-cluster-none'].rps;
  const bare = out.configs['pin-bare'].rps;
  out.tsmVsClusterNone = none ? out.configs['pin-tsm'].rps / none : null;
  out.tsmVsBare = bare ? out.configs['pin-tsm'].rps / bare : null;
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  installHandlers();
  try {
    console.log(JSON.stringify(await pinnedKeepAlive({ log: (m) => process.stderr.write(`${m}\n`) }), null, 2));
  } finally {
    await cleanup();
  }
}
