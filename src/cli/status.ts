import type { Config } from '../config/types.js';
import { askStatus, isSocket } from '../control/client.js';
import type { MasterStatus, UpgradeStatus } from '../control/protocol.js';
import { rolloutText } from '../master/batches.js';
import { oldbinPath } from '../protocol.js';
import { TsmError } from '../errors.js';
import type { Outcome } from './signal.js';

function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`;
}

function bytes(n: number | null): string {
  if (n === null) return '-';
  return n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(1)}G` : `${(n / 1024 ** 2).toFixed(1)}M`;
}

/** How a master of a release before the upgrade phases said it (the old master of an upgrade to this one is such a master). */
type EarlierUpgradeStatus = { role: 'none' } | { role: 'old'; newPid: number; newReady: boolean } | { role: 'new'; oldPid: number };

function phaseOf(u: UpgradeStatus | EarlierUpgradeStatus): UpgradeStatus {
  if ('phase' in u) return u;
  if (u.role === 'old') return { phase: u.newReady ? 'ready' : 'starting', partner: u.newPid };
  if (u.role === 'new') return { phase: 'new', partner: u.oldPid };
  return { phase: 'none' };
}

function upgradeText(u: UpgradeStatus): string {
  switch (u.phase) {
    case 'none':
      return u.lastRollback ? `upgrade none (rolled back ${duration(Date.now() - u.lastRollback.at)} ago: ${u.lastRollback.reason})` : 'upgrade none';
    case 'new':
      return `upgrade: old master ${u.partner} running`;
    case 'starting':
    case 'ready':
      return `upgrade: new master ${u.partner} ${u.phase}`;
    case 'killing':
      return `upgrade: new master ${u.partner} being stopped (not ready in time)`;
  }
}

function upgradeCell(c: Paint, u: UpgradeStatus): string {
  return u.phase === 'none' ? upgradeText(u) : c.cyan(upgradeText(u));
}

/** Columns padded to the widest cell; colour is applied after padding so escapes do not count. */
function table(rows: string[][], paint: (row: number, col: number, cell: string) => string): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r, y) =>
    r
      .map((cell, x) => paint(y, x, x === r.length - 1 ? cell : cell.padEnd(widths[x]!)))
      .join('  ')
      .trimEnd(),
  );
}

/** The styles the human form uses: chalk's on a terminal, the text as it is elsewhere. */
export type Paint = Record<'bold' | 'cyan' | 'dim' | 'green' | 'yellow' | 'red', (s: string) => string>;

const same = (s: string) => s;
export const PLAIN: Paint = { bold: same, cyan: same, dim: same, green: same, yellow: same, red: same };

/** Loaded only for a terminal: what scripts, health checks and logrotate run does not pay for it. */
export async function terminalPaint(): Promise<Paint> {
  const { Chalk } = await import('chalk');
  return new Chalk({ level: 1 });
}

function stateColor(c: Paint, state: string): (s: string) => string {
  if (state === 'ready' || state === 'running') return c.green;
  if (state === 'starting' || state === 'reloading') return c.yellow;
  return c.red;
}

/**
 * The human form: a line per master, then its workers as a table, painted with `c` (colours
 * when stdout is a terminal); the plain text is the same either way.
 */
export function render(masters: MasterStatus[], c: Paint = PLAIN): string[] {
  const out: string[] = [];
  for (const m of masters) {
    if (out.length > 0) out.push('');
    out.push(
      [
        c.bold(`master ${m.pid}`),
        `generation ${m.generation}`,
        stateColor(c, m.state)(m.rollout ? `${m.state} (${rolloutText(m.rollout)})` : m.state),
        `up ${duration(m.uptimeMs)}`,
        upgradeCell(c, phaseOf(m.upgrade)),
        `requests ${m.totals.requests}`,
        `restarts ${m.totals.restarts}`,
      ].join('  '),
    );
    if (m.workers.length === 0) {
      out.push('  no workers');
      continue;
    }
    const rows = [['PID', 'GEN', 'SLOT', 'STATE', 'UPTIME', 'RESTARTS', 'CPU%', 'RSS', 'CONNS', 'REQUESTS', 'LOOP p50/p99']];
    const workers = [...m.workers].sort((a, b) => a.generation - b.generation || a.slot - b.slot || a.pid - b.pid);
    for (const w of workers) {
      rows.push([
        String(w.pid),
        String(w.generation),
        String(w.slot),
        w.state,
        duration(w.uptimeMs),
        String(w.restarts),
        w.cpu === null ? '-' : w.cpu.toFixed(1),
        bytes(w.rss),
        String(w.connections),
        String(w.requests),
        w.loopDelayMs ? `${w.loopDelayMs.p50.toFixed(1)}/${w.loopDelayMs.p99.toFixed(1)}ms` : '-',
      ]);
    }
    out.push(...table(rows, (y, x, cell) => (y === 0 ? c.dim(cell) : x === 3 ? stateColor(c, workers[y - 1]!.state)(cell) : cell)));
  }
  return out;
}

/**
 * Every master answering: on PATH.oldbin (the old master during an upgrade) and on PATH.
 * One that does not answer is left out; none answering is an error.
 */
export async function collect(config: Config): Promise<{ masters: MasterStatus[]; problems: string[] }> {
  const path = config.controlSocket;
  if (!path) throw new TsmError('TSM_ERR_CONTROL', 'control_socket is off: -s status needs it');
  const paths = isSocket(oldbinPath(path)) ? [oldbinPath(path), path] : [path];
  const answers = await Promise.allSettled(paths.map((p) => askStatus(p)));
  const masters: MasterStatus[] = [];
  const problems: string[] = [];
  for (const a of answers) {
    if (a.status === 'fulfilled') masters.push(a.value);
    else problems.push((a.reason as Error).message);
  }
  // None answered: the reason for PATH itself (ENOENT, ECONNREFUSED, EACCES) says most.
  if (masters.length === 0) throw (answers[answers.length - 1] as PromiseRejectedResult).reason;
  return { masters, problems };
}

/** `-s status [--json]`. */
export async function status(config: Config, json: boolean): Promise<Outcome> {
  const { masters, problems } = await collect(config);
  const err = problems.map((p) => `[warn] ${p}`);
  if (json) return { code: 0, out: [JSON.stringify({ masters })], err };
  return { code: 0, out: render(masters, process.stdout.isTTY ? await terminalPaint() : PLAIN), err };
}
