// The CLI's own start: `tsmaster -v` and `tsmaster -s status` (against a master with many
// workers) beside `node -e 0` on the same Node, interleaved, on this Node and on the official
// Node 24 and 26 (scripts/fetch-node.sh). Goal: both within 50 ms of `node -e 0`. A stage of
// `npm run bench`; alone: `node build/bench/scripts/bench/startup.js` (starts its own master).
import { nodeBinary } from '../../test/helpers/node-bin.js';
import { run, runAlone, type Log } from './procs.js';
import { Tsmaster } from './servers.js';
import { median } from './stats.js';

export interface StartupOnNode {
  node: string;
  nodeMs: number | null;
  versionMs: number | null;
  statusMs: number | null;
  /** The CLI's cost over `node -e 0`. */
  versionOverMs: number | null;
  statusOverMs: number | null;
}

export interface Startup {
  workers: number;
  rounds: number;
  nodes: StartupOnNode[];
}

function nodes(log: Log): string[] {
  const out = [process.execPath];
  for (const major of [24, 26]) {
    const b = nodeBinary(major);
    if (b.skip === false) out.push(b.node);
    else log(`startup: ${b.skip}`);
  }
  return out;
}

/** Medians of `rounds` interleaved runs of each command on each Node, against `tsm`. */
export async function startupCost(tsm: Tsmaster, log: Log, rounds = 10): Promise<Startup> {
  const result: StartupOnNode[] = [];
  for (const node of nodes(log)) {
    const version = (await run(node, ['-v'])).stdout.trim();
    const ms: Record<'node' | 'version' | 'status', number[]> = { node: [], version: [], status: [] };
    // One warm-up of each (the compile cache, the page cache), then the measured rounds.
    for (let i = 0; i <= rounds; i++) {
      const a = await run(node, ['-e', '0']);
      const b = await tsm.tsmOn(node, '-v');
      const c = await tsm.tsmOn(node, '-s', 'status');
      if (b.code !== 0 || c.code !== 0) throw new Error(`tsmaster on ${version} failed: ${b.stderr}${c.stderr}`.trim());
      if (i === 0) continue;
      ms.node.push(a.ms);
      ms.version.push(b.ms);
      ms.status.push(c.ms);
    }
    const [n, v, s] = [median(ms.node), median(ms.version), median(ms.status)];
    const over = (x: number | null) => (x === null || n === null ? null : Math.round(x - n));
    result.push({ node: version, nodeMs: n, versionMs: v, statusMs: s, versionOverMs: over(v), statusOverMs: over(s) });
    log(`startup on ${version}: node -e 0 ${n?.toFixed(0)} ms, -v ${v?.toFixed(0)} ms, -s status ${s?.toFixed(0)} ms`);
  }
  return { workers: tsm.workers, rounds, nodes: result };
}

await runAlone(import.meta.url, async (log) => {
  const workers = Number(process.env.BENCH_STATUS_WORKERS) || 64;
  const tsm = new Tsmaster({ key: 'tsm-startup', label: `tsmaster, ${workers} workers`, workers, reuseport: false, extra: ['ready_timeout 120s;'] });
  await tsm.start(150_000);
  try {
    return await startupCost(tsm, log);
  } finally {
    await tsm.stop();
  }
});
