// The benchmark's output: a markdown report (printed, and written to
// results/bench-latest.md ready to paste into the README) and the full JSON
// (results/bench-<date>.json). results/ is ignored by git.
import fs from 'node:fs';
import path from 'node:path';
import type { BenchResult } from './result.js';

type Num = number | null | undefined;

const int = (x: Num): string => (x === null || x === undefined ? '–' : Math.round(x).toLocaleString('en-US'));
const ms = (x: Num, digits = 1): string => (x === null || x === undefined ? '–' : x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(digits));
const ratio = (x: Num): string => (x === null || x === undefined ? '' : ` (${x.toFixed(2)}×)`);
const mb = (kb: Num): string => (kb === null || kb === undefined ? '–' : (kb / 1024).toFixed(1));
const fixed = (x: Num, digits: number): string => (x === null || x === undefined ? '–' : x.toFixed(digits));
const pct = (x: Num): string => fixed(x, 1);

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map((_h, i) => (i === 0 ? '---' : '---:')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function kinds(k: Record<string, number> | undefined): string {
  const parts = Object.entries(k ?? {}).filter(([, n]) => n > 0);
  return parts.length ? ` (${parts.map(([name, n]) => `${name} ${n}`).join(', ')})` : '';
}

const changeLabel: Record<string, string> = {
  'tsm reload': 'tsmaster, shared socket: `-s reload`',
  'tsm upgrade': 'tsmaster, shared socket: `-s upgrade`',
  'tsm-reuseport reload': 'tsmaster, reuseport: `-s reload`',
  'tsm-reuseport upgrade': 'tsmaster, reuseport: `-s upgrade`',
  'pm2 reload': 'PM2: `pm2 reload`',
};

export function markdown(r: BenchResult): string {
  const out: string[] = [];
  const v = r.versions;
  const m = r.machine;
  const t = r.throughput;
  out.push(`### Benchmark results (${r.date.slice(0, 10)})`);
  out.push('');
  out.push(
    `Measured ${r.date.replace('T', ' ').slice(0, 16)} UTC by \`npm run bench\` in ${r.runSeconds} s on ${m.nproc} CPU(s) (${m.cpu}), ${m.memoryGiB} GiB, ${m.os}, Linux ${m.kernel}; ` +
      `Node ${v.node}, tsmaster ${v.tsmaster} (${v.tsmasterCommit}), PM2 ${v.pm2 ?? 'not measured'}, autocannon ${v.autocannon}, wrk ${v.wrk ?? 'not installed'}. ` +
      `${r.options.workers} workers in every configuration except the single process; the load generator runs on the same ${m.nproc} CPU(s), ` +
      `${r.options.connections} connections. Same hello-world app (scripts/bench/app.cjs) everywhere. ` +
      `Load average at start ${r.loadAverageAtStart?.[0] ?? '?'}, at end ${r.loadAverageAtEnd?.[0] ?? '?'}.`,
  );
  out.push('');

  if (t) {
    const loads = r.loads ?? [];
    out.push(`**Steady-state throughput**: requests/s, median of ${t.rounds} runs of ${t.secondsPerRun} s; in parentheses the ratio to Node's cluster module with SCHED_RR (Node's default on Linux); p99 latency in ms.`);
    out.push('');
    const head = ['Configuration'];
    for (const l of loads) head.push(`${l.label} req/s`, 'p99 ms');
    const rows = [];
    for (const [key, s] of Object.entries(t.summary)) {
      const row = [`${s.label}${key === 'single' ? ' (1 process)' : ''}`];
      for (const l of loads) {
        const x = s.loads[l.key]!;
        row.push(`${int(x.rps)}${ratio(x.vsClusterRr)}${x.failed ? ` ⚠ ${int(x.failed)} failed` : ''}`, ms(x.p99));
      }
      rows.push(row);
    }
    out.push(table(head, rows));
    out.push('');
    out.push('**Spread of requests over workers**: coefficient of variation of the requests each worker answered (0 = perfectly even), median over the runs.');
    out.push('');
    out.push(
      table(
        ['Configuration', ...loads.map((l) => l.label)],
        Object.entries(t.summary)
          .filter(([key]) => key !== 'single')
          .map(([, s]) => [s.label, ...loads.map((l) => fixed(s.loads[l.key]!.cv, 3))]),
      ),
    );
    out.push('');
  }

  if (r.stall?.length) {
    const labels = Object.fromEntries(Object.entries(t?.summary ?? {}).map(([k, s]) => [k, s.label]));
    const steady = (k: string) => t?.summary?.[k]?.loads?.['wrk-close']?.rps;
    const secs = r.stall[0]!.stalledSeconds;
    out.push(
      `**One worker stalled**: one worker stopped (SIGSTOP) for ${secs} s under Connection: close load, as a long GC pause or a blocking call would (well within the heartbeat timeout); numbers over the ${secs + 2} s around it. ` +
        `With \`reuseport\` each worker has its own accept queue, and the connections the kernel hashes to the stalled worker's socket wait for it. ` +
        `With a shared socket the other workers take the new connections, and so does Node's round-robin primary (it hands a connection only to a worker that acknowledged the previous one): only what the stalled worker had already accepted waits.`,
    );
    out.push('');
    const withWrk = r.stall.some((x) => x.wrk);
    const head = ['Configuration', ...(withWrk ? ['wrk req/s (steady)', 'wrk max ms'] : []), 'client.js answers > 1 s', 'client.js max ms'];
    out.push(
      table(
        head,
        r.stall.map((x) => [
          labels[x.config] ?? x.config,
          ...(withWrk ? [`${int(x.wrk?.rps)} (${int(steady(x.config))})`, ms(x.wrk?.max, 0)] : []),
          `${int(x.client.slowerThan1s)} of ${int(x.client.ok)}`,
          ms(x.client.max, 0),
        ]),
      ),
    );
    out.push('');
  }

  if (r.changes?.length) {
    const tools = r.versions.wrk ? 'wrk (socket errors + non-2xx) and client.js (node:http, non-2xx + errors)' : 'client.js (node:http, non-2xx + errors)';
    out.push(
      `**Reload and upgrade under load**: ${r.options.changes} changes per line, 1.5 s apart, while ${tools} send requests without retrying. ` +
        `"Worst latency" is the slowest answer client.js got from the start of a change to 1.5 s after the command returned. "Command" is the median wall time of the command.`,
    );
    out.push('');
    const rows = r.changes.map((c) => [
      changeLabel[`${c.config} ${c.kind}`] ?? `${c.config} ${c.kind}`,
      c.mode === 'ka' ? 'keep-alive' : 'close',
      c.wrk ? `${int(c.wrk.failed)}${kinds(c.wrk.errorKinds)}` : '–',
      c.wrk ? ms(c.wrk.max, 0) : '–',
      `${int(c.client.failed)}${kinds(c.client.errorKinds)}`,
      ms(c.client.worstDuringChanges, 0),
      `${int(c.commandMs.median)}${c.changesFailed ? ` ⚠ ${c.changesFailed} failed` : ''}`,
    ]);
    out.push(table(['Change (×' + r.options.changes + ')', 'Load', 'wrk failed', 'wrk max latency ms', 'client.js failed', 'client.js worst latency ms', 'Command ms'], rows));
    out.push('');
  }

  const ka = t && (r.loads ?? []).find((l) => l.tool === 'wrk' && !l.close);
  if (t && ka) {
    out.push(
      `**Where keep-alive throughput comes from** (${ka.label}, medians): req/s is the CPU the workers got (cores, of ${r.machine.nproc}) divided by the CPU they spend per request. ` +
        `What the workers do not get goes mostly to the load generator on the same CPUs ("rest": all busy CPU but the workers', from /proc/stat). ` +
        `Equal CPU per request with fewer req/s means the scheduler gave the workers less of the machine, not that they work harder.`,
    );
    out.push('');
    out.push(
      table(
        ['Configuration', 'req/s', 'Workers CPU (cores)', 'CPU µs per request', 'Rest (cores)'],
        Object.values(t.summary).map((s) => {
          const l = s.loads[ka.key]!;
          return [s.label, int(l.rps), fixed(l.workersCores, 2), fixed(l.cpuUsPerRequest, 1), fixed(l.othersCores, 2)];
        }),
      ),
    );
    const none = t.summary['cluster-none']?.loads[ka.key];
    for (const key of ['tsm', 'tsm-reuseport']) {
      const x = t.summary[key]?.loads[ka.key];
      if (!x || !none?.rps || !x.rps || !none.workersCores || !x.workersCores || !none.cpuUsPerRequest || !x.cpuUsPerRequest) continue;
      out.push('');
      out.push(
        `${t.summary[key]!.label} against SCHED_NONE: ${fixed(x.rps / none.rps, 2)}× the req/s = ${fixed(x.workersCores / none.workersCores, 2)}× the workers' CPU ÷ ${fixed(x.cpuUsPerRequest / none.cpuUsPerRequest, 2)}× the CPU per request.`,
      );
    }
    out.push('');
  }

  if (t?.paired?.length) {
    const spread = (s: { median: number | null; min: number | null; max: number | null }) => `${fixed(s.median, 2)}× (${fixed(s.min, 2)}–${fixed(s.max, 2)})`;
    const label = (key: string) => t.summary[key]?.label ?? key;
    const loadLabel = (key: string) => (r.loads ?? []).find((l) => l.key === key)?.label ?? key;
    out.push(
      `**Against SCHED_NONE, round by round**: each keep-alive round measures SCHED_NONE and tsmaster one after the other, so a ratio within a round is free of what moves between rounds; median (lowest–highest) over the rounds.`,
    );
    out.push('');
    out.push(
      table(
        ['Configuration', 'Load', 'Rounds', 'req/s', "Workers' CPU", 'CPU per request'],
        t.paired.map((p) => [label(p.config), loadLabel(p.load), String(p.rounds), spread(p.rps), spread(p.workersCores), spread(p.cpuPerRequest)]),
      ),
    );
    out.push('');
  }

  if (t) {
    const shown = (r.loads ?? []).filter((l) => l.tool !== 'autocannon');
    out.push(
      `**Manager process overhead**: CPU of the process that manages the workers while the load runs (median over the runs; with SCHED_RR the cluster primary accepts every connection itself), its peak RSS, and the workers' total RSS.`,
    );
    out.push('');
    const names: Record<string, string> = { single: '–', 'cluster-rr': 'cluster primary', 'cluster-none': 'cluster primary', pm2: 'PM2 daemon (cluster primary)', tsm: 'tsmaster master', 'tsm-reuseport': 'tsmaster master', 'tsm-metrics': 'tsmaster master' };
    out.push(
      table(
        ['Configuration', 'Manager', ...shown.map((l) => `CPU % (${l.label})`), 'Peak RSS MB', 'Workers RSS MB'],
        Object.entries(t.summary).map(([k, s]) => [
          s.label,
          names[k] ?? '',
          ...shown.map((l) => pct(s.loads[l.key]!.managerCpuPct)),
          mb(Math.max(...shown.map((l) => s.loads[l.key]!.managerRssMaxKb ?? 0)) || null),
          mb(s.loads[shown[0]!.key]!.workersRssKb),
        ]),
      ),
    );
    out.push('');
  }
  const lines: string[] = [];
  if (r.upgradeReady?.median) {
    const u = r.upgradeReady;
    lines.push(`- USR2 → the new master's workers all ready (its "generation G: all ${r.options.workers} worker(s) ready" log line), idle: median ${int(u.median)} ms (${u.runs.join(', ')} ms).`);
  }
  if (r.deploy) {
    const mbOf = (kb: number) => (kb / 1024).toFixed(0);
    for (const d of r.deploy.reload) {
      const peak = Math.max(...d.runs.map((x) => x.peakKb));
      const before = Math.max(...d.runs.map((x) => x.beforeKb));
      const procs = Math.max(...d.runs.map((x) => x.peakProcs));
      lines.push(`- Reload of 4 workers, ${d.label}: total RSS ${mbOf(before)} MB before, peak ${mbOf(peak)} MB; at most ${procs} processes (master included); ${d.runs.map((x) => int(x.ms)).join(', ')} ms per reload; ${d.failed} of ${d.requests} keep-alive requests failed.`);
    }
    const u = r.deploy.upgrade.median;
    lines.push(`- \`tsmaster -s upgrade\` under 40 keep-alive connections (median of ${r.deploy.upgrade.runs.length}): new master ready ${int(u.readyMs)} ms, old workers gone ${int(u.drainedMs)} ms, old master exited ${int(u.exitedMs)} ms; ${int(u.totalMs)} ms in all, ${int(u.wallMs)} ms with the CLI's own start; ${r.deploy.upgrade.failed} requests failed.`);
    const w = r.deploy.webSockets;
    const closes = Object.entries(w.closes).map(([code, n]) => `${n} × ${code}`).join(', ');
    lines.push(`- Batched deploys (\`worker_reload_batch 1\`) of 4 workers holding ${w.clients} reconnecting WebSockets, 3 of each: \`-s upgrade\` median ${int(w.median.upgrade)} ms, \`-s reload\` median ${int(w.median.reload)} ms (${w.runs.map((x) => `${x.cmd} ${int(x.ms)}`).join(', ')} ms); closes ${closes}; ${w.refused} handshakes refused by a draining worker and retried; ${w.errors} connection errors; ${w.killedAtDeadline} workers killed at their deadline.`);
  }
  if (r.pinned) {
    const p = r.pinned;
    if (p.skipped) lines.push(`- Keep-alive with one pinned worker: not measured (${p.reason}).`);
    else {
      const row = (k: string) => {
        const c = p.configs[k]!;
        return `${c.label} ${int(c.rps)} req/s (${Math.min(...c.runs).toLocaleString('en-US')}–${Math.max(...c.runs).toLocaleString('en-US')})`;
      };
      lines.push(`- Keep-alive, one worker pinned to CPU 0 and wrk (${p.connections} connections) to CPU 1, median of ${p.rounds} interleaved ${p.seconds} s rounds: ${row('pin-bare')}; ${row('pin-cluster-none')}; ${row('pin-tsm')}: tsmaster ${fixed(p.tsmVsClusterNone, 2)}× SCHED_NONE, ${fixed(p.tsmVsBare, 2)}× bare.`);
    }
  }
  if (r.status) {
    if (r.status.skipped) lines.push(`- \`tsmaster -s status\` with ${r.options.statusWorkers} workers: not measured (${r.status.reason}).`);
    else {
      const s = r.status;
      lines.push(
        `- \`tsmaster -s status\` with ${s.workers} workers: median ${int(s.statusMs.median)} ms (\`--json\` ${int(s.statusJsonMs.median)} ms), of which ~${int(s.cliBaselineMs)} ms is starting the CLI (\`tsmaster -v\`); ` +
          `${s.workers} workers started in ${(s.startupMs / 1000).toFixed(1)} s; master RSS ${mb(s.masterRssKb)} MB.`,
      );
      if (s.metricsMs) lines.push(`- \`GET /metrics\` (metrics_listen) with ${s.workers} workers: median ${fixed(s.metricsMs.median, 1)} ms, max ${fixed(s.metricsMs.max, 1)} ms (goal < 50 ms).`);
    }
  }
  if (r.startup) {
    const cells = r.startup.nodes.map((n) => `${n.node}: \`node -e 0\` ${int(n.nodeMs)} ms, \`-v\` +${int(n.versionOverMs)} ms, \`-s status\` +${int(n.statusOverMs)} ms`);
    lines.push(`- CLI start over \`node -e 0\` on the same Node (medians of ${r.startup.rounds} interleaved runs, ${r.startup.workers} workers for status; goal +50 ms): ${cells.join('; ')}.`);
  }
  if (r.install) {
    const i = r.install;
    lines.push(
      `- Install of the packed tarball (${i.tarballKb} kB, \`npm pack\` ${fixed(i.packMs / 1000, 1)} s) into a fresh project on ${i.node}, no compiler on the PATH (goal < 5 s; c8f55d7 compiled the addon, 27 s): ` +
        `${i.installs.map((x) => `${x.installer} ${fixed((x.medianMs ?? NaN) / 1000, 1)} s (${x.runs.map((ms) => fixed(ms / 1000, 1)).join(', ')})`).join('; ')}.`,
    );
  }
  if (r.chatty) {
    for (const c of r.chatty.runs) {
      const h = c.healthzMs;
      lines.push(
        `- Log stage, ${c.label} (${c.rate.toLocaleString('en-US')} lines/s asked, ${r.chatty.seconds} s): master /healthz median ${fixed(h.p50, 1)} ms, p99 ${fixed(h.p99, 1)} ms, max ${fixed(h.max, 1)} ms (${h.probes} probes, ${h.failed} failed); master CPU ${fixed(c.masterCpuPct, 1)}%; ` +
          `${c.writtenPerSec === null ? 'lines to a pipe nobody reads' : `${int(c.writtenPerSec)} lines/s reached the file`}; ${int(c.lost)} lines lost; workers RSS ${c.workersRssMb} MB.`,
      );
    }
  }
  if (r.pm2InstallSeconds) lines.push(`- PM2 was installed by the benchmark into a temporary directory in ${r.pm2InstallSeconds.toFixed(0)} s, PM2_HOME isolated, and removed afterwards.`);
  if (lines.length) {
    out.push(...lines);
    out.push('');
  }

  out.push('**reuseport**:');
  out.push('');
  const ls = r.listeningSockets ?? {};
  const after = r.listeningSocketsAfterChanges ?? {};
  const rp = ls['tsm-reuseport'];
  out.push(
    `- Listening sockets on the port (/proc/net/tcp): tsmaster shared ${ls.tsm ?? '–'}, tsmaster \`reuseport\` ${rp ?? '–'}` +
      (after['tsm-reuseport'] !== undefined ? ` (${after['tsm-reuseport']} after the reloads and upgrades)` : '') +
      (rp === r.options.workers && rp > 1 ? `: one SO_REUSEPORT socket per worker slot, so the kernel spreads new connections over the workers by hash.` : '.'),
  );
  const rpChanges = (r.changes ?? []).filter((c) => c.config === 'tsm-reuseport');
  if (rpChanges.length) {
    const failedW = rpChanges.reduce((a, c) => a + (c.wrk?.failed ?? 0), 0);
    const failedC = rpChanges.reduce((a, c) => a + c.client.failed, 0);
    const kinds = [...new Set(rpChanges.map((c) => c.kind))].map((k) => `\`-s ${k}\``).join(' and ');
    out.push(
      `- Failed requests with \`reuseport\` during ${rpChanges.reduce((a, c) => a + c.changes, 0)} changes (${kinds}, keep-alive and close): wrk ${failedW}, client.js ${failedC}.`,
    );
  }
  if (r.reuseportDemo && !r.reuseportDemo.skipped) {
    const d = r.reuseportDemo.runs;
    const desc = d
      .map((x) => `net.ipv4.tcp_migrate_req=${x.tcp_migrate_req}: ${Object.entries(x.outcomes).map(([k, n]) => `${n} ${k}`).join(', ')}`)
      .join('; ');
    out.push(
      `- Kernel check (two SO_REUSEPORT sockets on one port, ${d[0]?.clients} connections queued, one socket closed, in a private network namespace): ${desc}. Host value: ${r.sysctl.tcp_migrate_req ?? 'absent'}.`,
    );
  }
  out.push('');
  if (r.notes.length) {
    out.push('Notes: ' + r.notes.join('; ') + '.');
    out.push('');
  }
  return out.join('\n');
}

export function writeReport(result: BenchResult, dir: string): { files: string[]; markdown: string } {
  fs.mkdirSync(dir, { recursive: true });
  const stamp = result.date.replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
  const json = path.join(dir, `bench-${stamp}.json`);
  fs.writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
  const md = markdown(result);
  const latest = path.join(dir, 'bench-latest.md');
  fs.writeFileSync(latest, `${md}\n`);
  return { files: [json, latest], markdown: md };
}
