import { Chalk } from 'chalk';
import type { Config } from '../config/types.js';
import { oldbinControlPath, type MasterStatus } from '../control/protocol.js';
import { TsmError } from '../errors.js';
import { ask, isSocket } from './control-client.js';
import type { Outcome } from './signal.js';

function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

function bytes(n: number | null): string {
  return n === null ? '-' : `${(n / 1024 / 1024).toFixed(1)}M`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '));
}

/** The human form: one block per master, its workers in a table. Colours only on a terminal. */
export function render(masters: MasterStatus[], color: boolean): string[] {
  const c = new Chalk({ level: color ? 1 : 0 });
  const state = (s: string) => (s === 'ready' || s === 'running' ? c.green(s) : s === 'starting' || s === 'reloading' ? c.yellow(s) : c.red(s));
  const out: string[] = [];
  for (const m of masters) {
    const up =
      m.upgrade.role === 'old'
        ? `upgrading: new master ${m.upgrade.newPid} ${m.upgrade.newReady ? 'ready' : 'starting'}`
        : m.upgrade.role === 'new'
          ? `new master; old master ${m.upgrade.oldPid} ${m.upgrade.oldAlive ? 'still running' : 'gone'}`
          : 'no upgrade';
    out.push(
      `${c.bold(`master ${m.pid}`)}  generation ${m.generation}  ${state(m.state)}  up ${duration(m.uptimeMs)}  ${up}  requests ${m.totals.requests}  restarts ${m.totals.restarts}`,
    );
    const rows = [['PID', 'GEN', 'SLOT', 'STATE', 'UPTIME', 'RESTARTS', 'CPU%', 'RSS', 'CONNS', 'REQUESTS']];
    for (const w of m.workers) {
      rows.push([String(w.pid), String(w.generation), String(w.slot), w.state, duration(w.uptimeMs), String(w.restarts), w.cpu === null ? '-' : w.cpu.toFixed(1), bytes(w.rss), String(w.connections), String(w.requests)]);
    }
    // Pad before colouring, so escape codes do not skew the columns.
    const lines = table(rows);
    out.push(c.dim(lines[0]!), ...lines.slice(1).map((l, i) => l.replace(m.workers[i]!.state, state(m.workers[i]!.state))));
  }
  return out;
}

/** Every master answering on the control socket and, during an upgrade, on its .oldbin. */
export async function collect(config: Config): Promise<MasterStatus[]> {
  const path = config.controlSocket;
  if (!path) throw new TsmError('TSM_ERR_CONTROL', 'control_socket is off: -s status needs it');
  const masters: MasterStatus[] = [];
  for (const p of [oldbinControlPath(path), path]) {
    if (p !== path && !isSocket(p)) continue;
    const res = await ask(p, { cmd: 'status' });
    if (!res.ok) throw new TsmError('TSM_ERR_CONTROL', `control socket "${p}": ${res.error}`);
    if ('status' in res) masters.push(res.status);
  }
  return masters;
}

export async function status(config: Config, json: boolean): Promise<Outcome> {
  const masters = await collect(config);
  if (json) return { code: 0, out: [JSON.stringify({ masters }, null, 2)], err: [] };
  return { code: 0, out: render(masters, Boolean(process.stdout.isTTY)), err: [] };
}
