// CPU lists: the worker_cpu_affinity argument and the CPUs this process may run on.

import { readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { invalid } from './errors.js';
import type { Directive } from './parser.js';

/** worker_cpu_affinity as written: `auto`, or one CPU list per mask. */
export type Affinity = { auto: true } | { auto: false; masks: number[][] };

export function parseAffinity(d: Directive): Affinity {
  if (d.args[0] === 'auto') {
    if (d.args.length > 1) invalid(d, d.args[1]!, '"auto" must be alone');
    return { auto: true };
  }
  const masks = d.args.map((m) => {
    if (!/^[01]+$/.test(m)) invalid(d, m);
    if (m.length > 1024) invalid(d, m, 'the mask is longer than 1024 CPUs');
    const list: number[] = [];
    for (let i = 0; i < m.length; i++) if (m[m.length - 1 - i] === '1') list.push(i);
    if (list.length === 0) invalid(d, m, 'the mask selects no CPU');
    return list;
  });
  return { auto: false, masks };
}

/** Cpus_allowed_list of /proc/self/status, or null when there is none we can read. */
function allowedCpus(): number[] | null {
  let status: string;
  try {
    status = readFileSync('/proc/self/status', 'utf8');
  } catch {
    return null;
  }
  const m = /^Cpus_allowed_list:\s*(\S+)\s*$/m.exec(status);
  if (!m) return null;
  const out: number[] = [];
  for (const part of m[1]!.split(',')) {
    const r = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!r) return null;
    const a = Number(r[1]);
    const b = r[2] === undefined ? a : Number(r[2]);
    for (let c = a; c <= b; c++) out.push(c);
  }
  return out.length > 0 ? out : null;
}

/** CPUs this process may run on, else 0..ncpu-1. */
export function usableCpus(): number[] {
  const allowed = allowedCpus();
  if (allowed) return allowed;
  const n = Math.max(1, cpus().length || availableParallelism());
  return Array.from({ length: n }, (_, i) => i);
}
