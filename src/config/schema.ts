// The directives of tsmaster.conf(5) and the conversion of parsed directives into a typed,
// validated Config. The `directives` table below is the single source of truth for names,
// arity, defaults and one-line docs: man/tsmaster.conf.5 is checked against it by
// test/man.test.ts.

import { readFileSync, statSync } from 'node:fs';
import { availableParallelism, constants as osConstants, cpus } from 'node:os';
import { isIPv4, isIPv6 } from 'node:net';
import { resolve } from 'node:path';
import { ConfigError, fail, syscallFailure } from './errors.js';
import type { Directive } from './parser.js';
import { LOG_LEVELS, type Config, type ListenSpec, type LogLevel, type Source, type WorkerSpec } from './types.js';

export interface DirectiveDef {
  /** Directive name as written in the file. */
  readonly name: string;
  /** Syntax line as shown in the man page, e.g. `pid path;`. */
  readonly syntax: string;
  /** Default value text as shown in the man page after `Default:`; `none` when there is none. */
  readonly default: string;
  /** One-line description. */
  readonly doc: string;
  /** Smallest and largest number of arguments (Infinity = no limit). */
  readonly minArgs: number;
  readonly maxArgs: number;
  /** May appear more than once. */
  readonly multiple: boolean;
}

const TABLE = [
  {
    name: 'pid',
    syntax: 'pid path;',
    default: 'logs/tsmaster.pid',
    doc: 'File where the master writes its process ID.',
    minArgs: 1, maxArgs: 1, multiple: false,
  },
  {
    name: 'error_log',
    syntax: 'error_log path | stderr [level];',
    default: 'logs/error.log notice',
    doc: 'Log file of the master (or stderr) and the lowest level written.',
    minArgs: 1, maxArgs: 2, multiple: false,
  },
  {
    name: 'daemon',
    syntax: 'daemon on | off;',
    default: 'on',
    doc: 'Whether the master detaches from the terminal and runs in the background.',
    minArgs: 1, maxArgs: 1, multiple: false,
  },
  {
    name: 'user',
    syntax: 'user user [group];',
    default: 'none',
    doc: 'User and group the workers run as; the group defaults to the primary group of the user.',
    minArgs: 1, maxArgs: 2, multiple: false,
  },
  {
    name: 'worker_processes',
    syntax: 'worker_processes number | auto;',
    default: '1',
    doc: 'Number of worker processes; auto starts one per available CPU.',
    minArgs: 1, maxArgs: 1, multiple: false,
  },
  {
    name: 'worker_shutdown_timeout',
    syntax: 'worker_shutdown_timeout time;',
    default: '10s',
    doc: 'How long a worker may take to stop gracefully before it is killed.',
    minArgs: 1, maxArgs: 1, multiple: false,
  },
  {
    name: 'worker_reload_batch',
    syntax: 'worker_reload_batch number | number% | off;',
    default: 'off',
    doc: 'Replace workers on a reload this many at a time (or this share of worker_processes), each batch ready before as many old ones drain; off replaces them all at once.',
    minArgs: 1, maxArgs: 1, multiple: false,
  },
  {
    name: 'term_shutdown',
    syntax: 'term_shutdown fast | graceful;',
    default: 'fast',
    doc: 'What SIGTERM means to the master: the fast stop, as nginx, or the graceful stop that container orchestrators expect.',
    minArgs: 1, maxArgs: 1, multiple: false,
  },
  {
    name: 'worker_heartbeat_timeout',
    syntax: 'worker_heartbeat_timeout time | off;',
    default: '60s',
    doc: 'A worker that does not answer heartbeats for this long is killed and replaced.',
    minArgs: 1, maxArgs: 1, multiple: false,
  },
  {
    name: 'worker_rlimit_nofile',
    syntax: 'worker_rlimit_nofile number;',
    default: 'none',
    doc: 'Limit on the number of open files (RLIMIT_NOFILE) of worker processes.',
    minArgs: 1, maxArgs: 1, multiple: false,
  },
  {
    name: 'worker_cpu_affinity',
    syntax: 'worker_cpu_affinity auto | cpumask ...;',
    default: 'none',
    doc: 'Binds worker processes to CPUs: one mask per worker, cycled, or auto.',
    minArgs: 1, maxArgs: Infinity, multiple: false,
  },
  {
    name: 'worker_priority',
    syntax: 'worker_priority number;',
    default: 'none',
    doc: 'Scheduling priority (nice value, -20 to 19) of worker processes.',
    minArgs: 1, maxArgs: 1, multiple: false,
  },
  {
    name: 'worker_max_memory',
    syntax: 'worker_max_memory size | off;',
    default: 'off',
    doc: 'A worker whose resident memory grows beyond this size is replaced gracefully.',
    minArgs: 1, maxArgs: 1, multiple: false,
  },
  {
    name: 'worker_log',
    syntax: 'worker_log path | stderr | off;',
    default: 'same as error_log',
    doc: 'File that receives the standard output and standard error of the workers.',
    minArgs: 1, maxArgs: 1, multiple: false,
  },
  {
    name: 'worker_stop_signal',
    syntax: 'worker_stop_signal signal;',
    default: 'QUIT',
    doc: 'Signal that asks an exec worker to stop gracefully.',
    minArgs: 1, maxArgs: 1, multiple: false,
  },
  {
    name: 'ready_timeout',
    syntax: 'ready_timeout time;',
    default: '30s',
    doc: 'How long new workers, or a new master during an upgrade, have to become ready.',
    minArgs: 1, maxArgs: 1, multiple: false,
  },
  {
    name: 'env',
    syntax: 'env name[=value];',
    default: 'none',
    doc: 'Passes an environment variable of the master, or sets one, for the workers.',
    minArgs: 1, maxArgs: 1, multiple: true,
  },
  {
    name: 'listen',
    syntax: 'listen address [reuseport] [backlog=number] [mode=octal] [name=name] [ipv6only=on|off];',
    default: 'none',
    doc: 'A socket the master binds and hands to every worker; at least one is required.',
    minArgs: 1, maxArgs: Infinity, multiple: true,
  },
  {
    name: 'metrics_listen',
    syntax: 'metrics_listen address [backlog=number] [mode=octal] [ipv6only=on|off] | off;',
    default: 'off',
    doc: 'A socket of the master itself (never the workers\'), serving Prometheus metrics on /metrics and health on /healthz and /readyz.',
    minArgs: 1, maxArgs: Infinity, multiple: false,
  },
  {
    name: 'app',
    syntax: 'app path;',
    default: 'none',
    doc: 'JavaScript module that a Node.js worker loads; exclusive with exec.',
    minArgs: 1, maxArgs: 1, multiple: false,
  },
  {
    name: 'exec',
    syntax: 'exec command [argument ...];',
    default: 'none',
    doc: 'Program that each worker runs, given the sockets by socket activation; exclusive with app.',
    minArgs: 1, maxArgs: Infinity, multiple: false,
  },
  {
    name: 'control_socket',
    syntax: 'control_socket path | off;',
    default: 'logs/tsmaster.pid.sock',
    doc: 'Unix socket on which the master answers tsmaster -s status and upgrade progress.',
    minArgs: 1, maxArgs: 1, multiple: false,
  },
  {
    name: 'include',
    syntax: 'include file | mask;',
    default: 'none',
    doc: 'Reads another file, or every file matching a mask, in place of the directive.',
    minArgs: 1, maxArgs: 1, multiple: true,
  },
] as const satisfies readonly DirectiveDef[];

type DirectiveName = (typeof TABLE)[number]['name'];

/** Every directive of tsmaster.conf(5), in the order of the man page. */
export const directives: ReadonlyArray<DirectiveDef> = TABLE;

const BY_NAME = new Map<string, DirectiveDef>(TABLE.map((d) => [d.name, d]));


/** Variables of the master's environment that workers always get (when set). */
export const DEFAULT_WORKER_ENV: readonly string[] = ['PATH', 'HOME', 'TZ', 'NODE_ENV', 'LANG'];

/** Largest path a unix socket can have (sun_path is 108 bytes with the trailing NUL). */
export const UNIX_PATH_MAX = 107;

/** Timers in Node cannot exceed 2^31-1 ms. */
const MAX_MS = 2 ** 31 - 1;

// ---------------------------------------------------------------------------------------------
// value parsers (exported for the CLI and the tests)

const TIME_UNITS: ReadonlyArray<[string, number]> = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1_000],
  ['ms', 1],
];

/**
 * nginx-style duration: `500ms`, `10s`, `1m`, `1h`, `1d`, combinations in decreasing order
 * (`1m30s`), or a plain number of seconds. Returns milliseconds, or null when invalid.
 */
export function parseDuration(text: string): number | null {
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const re = /(\d+)(ms|s|m|h|d)/y;
  let pos = 0;
  let total = 0;
  let lastRank = -1;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) return null;
    const rank = TIME_UNITS.findIndex(([u]) => u === m[2]);
    if (rank <= lastRank) return null;
    lastRank = rank;
    total += Number(m[1]) * TIME_UNITS[rank]![1];
    pos = re.lastIndex;
  }
  return pos > 0 && Number.isSafeInteger(total) ? total : null;
}

/** Size: plain bytes or a `k`, `m`, `g` suffix (either case). Returns bytes, or null when invalid. */
export function parseSize(text: string): number | null {
  const m = /^(\d+)([kmg]?)$/i.exec(text);
  if (!m) return null;
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  const v = Number(m[1]) * mult;
  return Number.isSafeInteger(v) ? v : null;
}

// ---------------------------------------------------------------------------------------------
// helpers

interface Ctx {
  file: string; // main file, for errors without a line
  prefix: string;
}

function src(d: Directive): Source {
  return { file: d.file, line: d.line };
}

function invalid(d: Directive, value: string, reason?: string): never {
  fail(`invalid value "${value}" in "${d.name}" directive${reason ? `, ${reason}` : ''}`, d.file, d.line);
}

/** Error without a line: `MESSAGE in FILE`. */
function failFile(message: string, file: string): never {
  throw new ConfigError(`${message} in ${file}`, file, 0);
}

function int(d: Directive, text: string, min: number, max: number, signed = false): number {
  if (!(signed ? /^[+-]?\d+$/ : /^\d+$/).test(text)) invalid(d, text);
  const v = Number(text);
  if (v < min || v > max) invalid(d, text, `it must be between ${min} and ${max}`);
  return v;
}

function flag(d: Directive, text: string): boolean {
  if (text === 'on') return true;
  if (text === 'off') return false;
  invalid(d, text, 'it must be "on" or "off"');
}

function duration(d: Directive, text: string, min: number): number {
  const ms = parseDuration(text);
  if (ms === null) invalid(d, text);
  if (ms < min) invalid(d, text, min === 1 ? 'it must be greater than 0' : `it must be at least ${min}ms`);
  if (ms > MAX_MS) invalid(d, text, `it must be at most ${MAX_MS}ms`);
  return ms;
}

function pathArg(d: Directive, text: string, ctx: Ctx): string {
  if (text === '') invalid(d, text);
  return resolve(ctx.prefix, text);
}

function socketPath(d: Directive, text: string, ctx: Ctx): string {
  const p = pathArg(d, text, ctx);
  if (Buffer.byteLength(p) > UNIX_PATH_MAX) invalid(d, text, `the socket path "${p}" is longer than ${UNIX_PATH_MAX} bytes`);
  return p;
}

function logTarget(d: Directive, text: string, ctx: Ctx): string | 'stderr' {
  if (text === 'stderr') return 'stderr';
  if (/^(syslog|memory):/.test(text)) invalid(d, text, `${text.slice(0, text.indexOf(':'))} logging is not supported`);
  return pathArg(d, text, ctx);
}

// /etc/passwd and /etc/group lookups without native code (local accounts only, no NSS).
function readAccounts(file: string): string[][] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#') && !l.startsWith('+') && !l.startsWith('-'))
    .map((l) => l.split(':'));
}

export function lookupUser(name: string, passwdFile = '/etc/passwd'): { uid: number; gid: number; home: string } | null {
  for (const f of readAccounts(passwdFile)) {
    if (f[0] === name && f.length >= 4 && /^\d+$/.test(f[2]!) && /^\d+$/.test(f[3]!)) return { uid: Number(f[2]), gid: Number(f[3]), home: f[5] || '/' };
  }
  return null;
}

export function lookupGroup(name: string, groupFile = '/etc/group'): number | null {
  for (const f of readAccounts(groupFile)) {
    if (f[0] === name && f.length >= 3 && /^\d+$/.test(f[2]!)) return Number(f[2]);
  }
  return null;
}

/** CPUs this process may run on (from /proc/self/status), else 0..ncpu-1. */
export function usableCpus(): number[] {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const m = /^Cpus_allowed_list:\s*(\S+)\s*$/m.exec(status);
    if (m) {
      const out: number[] = [];
      for (const part of m[1]!.split(',')) {
        const r = /^(\d+)(?:-(\d+))?$/.exec(part);
        if (!r) throw new Error('bad cpu list');
        const a = Number(r[1]);
        const b = r[2] === undefined ? a : Number(r[2]);
        for (let c = a; c <= b; c++) out.push(c);
      }
      if (out.length > 0) return out;
    }
  } catch {
    // fall through
  }
  const n = Math.max(1, cpus().length || availableParallelism());
  return Array.from({ length: n }, (_, i) => i);
}

// ---------------------------------------------------------------------------------------------
// listen

type AddrParse = { kind: 'tcp'; host: string; port: number; v6: boolean } | { kind: 'unix'; path: string };

function addrError(d: Directive, err: string, addr: string): never {
  fail(`${err} in "${addr}" of the "listen" directive`, d.file, d.line);
}

function parsePort(d: Directive, text: string, addr: string): number {
  if (text === '') addrError(d, 'no port', addr);
  if (!/^\d+$/.test(text) || Number(text) > 65535) addrError(d, 'invalid port', addr);
  return Number(text);
}

function parseAddress(d: Directive, addr: string, ctx: Ctx): AddrParse {
  if (addr.startsWith('unix:')) {
    const p = addr.slice(5);
    if (p === '') addrError(d, 'no path', addr);
    const path = resolve(ctx.prefix, p);
    if (Buffer.byteLength(path) > UNIX_PATH_MAX) addrError(d, `path longer than ${UNIX_PATH_MAX} bytes`, addr);
    return { kind: 'unix', path };
  }
  if (addr === '') addrError(d, 'no host', addr);
  if (/^\d+$/.test(addr)) return { kind: 'tcp', host: '0.0.0.0', port: parsePort(d, addr, addr), v6: false };
  if (addr.startsWith('[')) {
    const close = addr.indexOf(']');
    if (close < 0) addrError(d, 'invalid IPv6 address', addr);
    const inner = addr.slice(1, close);
    if (!isIPv6(inner) || inner.includes('%')) addrError(d, 'invalid IPv6 address', addr);
    const rest = addr.slice(close + 1);
    if (rest === '') addrError(d, 'no port', addr);
    if (!rest.startsWith(':')) addrError(d, 'invalid port', addr);
    const port = parsePort(d, rest.slice(1), addr);
    // canonical text (lower case, zeros compressed) via the WHATWG URL parser
    const host = new URL(`http://[${inner}]/`).hostname.slice(1, -1);
    return { kind: 'tcp', host, port, v6: true };
  }
  const colon = addr.lastIndexOf(':');
  if (colon < 0) {
    if (isIPv6(addr)) addrError(d, 'invalid IPv6 address, use [address]:port', addr);
    addrError(d, 'no port', addr);
  }
  const hostText = addr.slice(0, colon);
  const port = parsePort(d, addr.slice(colon + 1), addr);
  if (hostText === '') addrError(d, 'no host', addr);
  if (hostText.includes(':')) addrError(d, 'invalid IPv6 address, use [address]:port', addr);
  let host: string;
  if (hostText === '*') host = '0.0.0.0';
  else if (isIPv4(hostText)) host = hostText;
  else if (hostText.toLowerCase() === 'localhost') host = '127.0.0.1';
  else addrError(d, 'host not found', addr);
  return { kind: 'tcp', host, port, v6: false };
}

/** A name systemd accepts in LISTEN_FDNAMES: 1 to 255 printable ASCII characters, no ":". */
function validFdName(name: string): boolean {
  return name.length >= 1 && name.length <= 255 && /^[\x20-\x7e]+$/.test(name) && !name.includes(':');
}

function parseListen(d: Directive, ctx: Ctx): { spec: ListenSpec; explicitName: boolean } {
  const addrText = d.args[0]!;
  const addr = parseAddress(d, addrText, ctx);
  const canonical = addr.kind === 'unix' ? `unix:${addr.path}` : addr.v6 ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
  let reuseport = false;
  let backlog = 511;
  let mode: number | null = null;
  let name: string | null = null;
  let ipv6Only = addr.kind === 'tcp' && addr.v6;
  const seen = new Set<string>();
  for (const param of d.args.slice(1)) {
    const eq = param.indexOf('=');
    const key = eq < 0 ? param : param.slice(0, eq);
    const value = eq < 0 ? null : param.slice(eq + 1);
    const known = key === 'reuseport' ? value === null : ['backlog', 'mode', 'name', 'ipv6only'].includes(key) && value !== null;
    if (!known) fail(`invalid parameter "${param}" in "listen" directive`, d.file, d.line);
    if (seen.has(key)) fail(`duplicate parameter "${key}" in "listen" directive`, d.file, d.line);
    seen.add(key);
    const unsupported = (): never => fail(`"${key}" parameter is not supported on addr "${canonical}"`, d.file, d.line);
    switch (key) {
      case 'reuseport':
        if (addr.kind === 'unix') unsupported();
        reuseport = true;
        break;
      case 'backlog':
        if (!/^\d+$/.test(value!) || Number(value) < 1 || Number(value) > 2 ** 31 - 1) invalid(d, param);
        backlog = Number(value);
        break;
      case 'mode':
        if (addr.kind !== 'unix') unsupported();
        if (!/^[0-7]{3,4}$/.test(value!)) invalid(d, param, 'it must be 3 or 4 octal digits');
        mode = parseInt(value!, 8);
        break;
      case 'name':
        if (!validFdName(value!)) invalid(d, param, 'it must be 1 to 255 printable ASCII characters without ":"');
        name = value;
        break;
      case 'ipv6only':
        if (addr.kind !== 'tcp' || !addr.v6) unsupported();
        if (value !== 'on' && value !== 'off') invalid(d, param, 'it must be "on" or "off"');
        ipv6Only = value === 'on';
        break;
    }
  }
  const source = src(d);
  const spec: ListenSpec =
    addr.kind === 'unix'
      ? { kind: 'unix', path: addr.path, mode, backlog, reuseport: false, name: name ?? canonical, key: canonical, source }
      : { kind: 'tcp', host: addr.host, port: addr.port, ipv6Only, backlog, reuseport, name: name ?? canonical, key: `tcp:${canonical}`, source };
  return { spec, explicitName: name !== null };
}

// ---------------------------------------------------------------------------------------------
// directives → Config

interface Draft {
  pid?: string;
  errorLog?: { path: string | 'stderr'; level: LogLevel };
  daemon?: boolean;
  user?: Config['user'];
  workerProcesses?: number;
  workerShutdownTimeoutMs?: number;
  workerReloadBatch?: Config['workerReloadBatch'];
  termShutdown?: 'fast' | 'graceful';
  metricsListen?: ListenSpec | null;
  workerHeartbeatTimeoutMs?: number | null;
  workerRlimitNofile?: number;
  affinity?: { auto: true } | { auto: false; masks: number[][] };
  workerPriority?: number;
  workerMaxMemory?: number | null;
  workerLog?: string | 'stderr' | null;
  workerStopSignal?: NodeJS.Signals;
  readyTimeoutMs?: number;
  env: Array<{ name: string; value: string | undefined }>;
  listens: ListenSpec[];
  listenNames: Map<string, boolean>; // name → given with name=
  worker?: WorkerSpec;
  controlSocket?: string | null;
}

type Handler = (d: Directive, st: Draft, ctx: Ctx) => void;

const HANDLERS: Record<Exclude<DirectiveName, 'include'>, Handler> = {
  pid(d, st, ctx) {
    st.pid = pathArg(d, d.args[0]!, ctx);
  },
  error_log(d, st, ctx) {
    const path = logTarget(d, d.args[0]!, ctx);
    const levelText = d.args[1] ?? 'notice';
    if (!(LOG_LEVELS as readonly string[]).includes(levelText)) fail(`invalid log level "${levelText}" in "error_log" directive`, d.file, d.line);
    st.errorLog = { path, level: levelText as LogLevel };
  },
  daemon(d, st) {
    st.daemon = flag(d, d.args[0]!);
  },
  user(d, st) {
    const name = d.args[0]!;
    const pw = name === '' ? null : lookupUser(name);
    if (!pw) fail(`getpwnam("${name}") failed`, d.file, d.line);
    let gid = pw.gid;
    if (d.args[1] !== undefined) {
      const g = d.args[1] === '' ? null : lookupGroup(d.args[1]);
      if (g === null) fail(`getgrnam("${d.args[1]}") failed`, d.file, d.line);
      gid = g;
    }
    st.user = { name, uid: pw.uid, gid, home: pw.home };
  },
  worker_processes(d, st) {
    const v = d.args[0]!;
    st.workerProcesses = v === 'auto' ? Math.min(1024, Math.max(1, availableParallelism())) : int(d, v, 1, 1024);
  },
  worker_shutdown_timeout(d, st) {
    st.workerShutdownTimeoutMs = duration(d, d.args[0]!, 0);
  },
  worker_reload_batch(d, st) {
    const v = d.args[0]!;
    if (v === 'off') st.workerReloadBatch = null;
    else if (v.endsWith('%')) st.workerReloadBatch = { percent: int(d, v.slice(0, -1), 1, 100) };
    else st.workerReloadBatch = { count: int(d, v, 1, 1024) };
  },
  term_shutdown(d, st) {
    const v = d.args[0]!;
    if (v !== 'fast' && v !== 'graceful') invalid(d, v, 'it must be "fast" or "graceful"');
    st.termShutdown = v;
  },
  worker_heartbeat_timeout(d, st) {
    const v = d.args[0]!;
    st.workerHeartbeatTimeoutMs = v === 'off' ? null : duration(d, v, 1);
  },
  worker_rlimit_nofile(d, st) {
    st.workerRlimitNofile = int(d, d.args[0]!, 1, 2 ** 31 - 1);
  },
  worker_cpu_affinity(d, st) {
    if (d.args[0] === 'auto') {
      if (d.args.length > 1) invalid(d, d.args[1]!, '"auto" must be alone');
      st.affinity = { auto: true };
      return;
    }
    const masks = d.args.map((m) => {
      if (!/^[01]+$/.test(m)) invalid(d, m);
      if (m.length > 1024) invalid(d, m, 'the mask is longer than 1024 CPUs');
      const list: number[] = [];
      for (let i = 0; i < m.length; i++) if (m[m.length - 1 - i] === '1') list.push(i);
      if (list.length === 0) invalid(d, m, 'the mask selects no CPU');
      return list;
    });
    st.affinity = { auto: false, masks };
  },
  worker_priority(d, st) {
    st.workerPriority = int(d, d.args[0]!, -20, 19, true);
  },
  worker_max_memory(d, st) {
    const v = d.args[0]!;
    if (v === 'off') {
      st.workerMaxMemory = null;
      return;
    }
    const bytes = parseSize(v);
    if (bytes === null) invalid(d, v);
    if (bytes === 0) invalid(d, v, 'it must be greater than 0');
    st.workerMaxMemory = bytes;
  },
  worker_log(d, st, ctx) {
    const v = d.args[0]!;
    st.workerLog = v === 'off' ? null : logTarget(d, v, ctx);
  },
  worker_stop_signal(d, st) {
    const v = d.args[0]!;
    const upper = v.toUpperCase();
    const name = upper.startsWith('SIG') ? upper : `SIG${upper}`;
    if (!/^[A-Z0-9]+$/.test(upper) || !Object.hasOwn(osConstants.signals, name)) invalid(d, v, 'unknown signal');
    st.workerStopSignal = name as NodeJS.Signals;
  },
  ready_timeout(d, st) {
    st.readyTimeoutMs = duration(d, d.args[0]!, 1);
  },
  env(d, st) {
    const v = d.args[0]!;
    const eq = v.indexOf('=');
    const name = eq < 0 ? v : v.slice(0, eq);
    if (name === '') invalid(d, v);
    st.env.push({ name, value: eq < 0 ? undefined : v.slice(eq + 1) });
  },
  listen(d, st, ctx) {
    const { spec, explicitName } = parseListen(d, ctx);
    const isEphemeral = spec.kind === 'tcp' && spec.port === 0;
    if (!isEphemeral && st.listens.some((l) => l.key === spec.key)) {
      fail(`duplicate listen "${spec.key.replace(/^tcp:/, '')}"`, d.file, d.line);
    }
    const prev = st.listenNames.get(spec.name);
    if (prev !== undefined && (prev || explicitName)) fail(`duplicate listen name "${spec.name}"`, d.file, d.line);
    if (prev === undefined || explicitName) st.listenNames.set(spec.name, explicitName);
    st.listens.push(spec);
  },
  metrics_listen(d, st, ctx) {
    if (d.args.length === 1 && d.args[0] === 'off') {
      st.metricsListen = null;
      return;
    }
    const { spec, explicitName } = parseListen(d, ctx);
    if (spec.reuseport || explicitName) fail('"metrics_listen" takes neither "reuseport" nor "name="', d.file, d.line);
    st.metricsListen = spec;
  },
  app(d, st, ctx) {
    if (st.worker) fail('"app" and "exec" directives are mutually exclusive', d.file, d.line);
    const path = pathArg(d, d.args[0]!, ctx);
    let isDir: boolean;
    try {
      isDir = statSync(path).isDirectory();
    } catch (err) {
      fail(syscallFailure(err, 'stat', path), d.file, d.line, err);
    }
    if (isDir) invalid(d, d.args[0]!, `"${path}" is a directory`);
    st.worker = { kind: 'app', path };
  },
  exec(d, st, ctx) {
    if (st.worker) fail('"app" and "exec" directives are mutually exclusive', d.file, d.line);
    const argv = [...d.args];
    const cmd = argv[0]!;
    if (cmd === '') invalid(d, cmd);
    // a command with a slash is a path (relative to the prefix); a bare name is looked up in PATH
    if (cmd.includes('/')) argv[0] = resolve(ctx.prefix, cmd);
    st.worker = { kind: 'exec', argv };
  },
  control_socket(d, st, ctx) {
    const v = d.args[0]!;
    st.controlSocket = v === 'off' ? null : socketPath(d, v, ctx);
  },
};

function resolveEnv(entries: Draft['env'], user: Config['user']): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of DEFAULT_WORKER_ENV) {
    const v = process.env[name];
    if (v !== undefined) env[name] = v;
  }
  // Workers running as `user` are that user: root's HOME would point them at root's files.
  if (user) Object.assign(env, { HOME: user.home, USER: user.name, LOGNAME: user.name });
  for (const { name, value } of entries) {
    const v = value ?? process.env[name];
    if (v !== undefined) env[name] = v;
    else delete env[name];
  }
  return env;
}

function resolveAffinity(a: NonNullable<Draft['affinity']>, workers: number): number[][] {
  const cycle = a.auto ? usableCpus().map((c) => [c]) : a.masks;
  const length = cycle.length * Math.ceil(workers / cycle.length);
  return Array.from({ length }, (_, i) => [...cycle[i % cycle.length]!]);
}

/**
 * Turns directives (already include-expanded, file directives first, then -g ones) into a
 * Config. `file` is the main configuration file, `prefix` the absolute prefix directory.
 * Throws ConfigError at the first invalid directive, in order.
 */
export function buildConfig(list: readonly Directive[], opts: { file: string; prefix: string }): Config {
  const ctx: Ctx = { file: opts.file, prefix: opts.prefix };
  const st: Draft = { env: [], listens: [], listenNames: new Map() };
  const seen = new Set<string>();
  for (const d of list) {
    const def = BY_NAME.get(d.name);
    if (!def || d.name === 'include') fail(`unknown directive "${d.name}"`, d.file, d.line);
    if (d.args.length < def.minArgs || d.args.length > def.maxArgs) {
      fail(`invalid number of arguments in "${d.name}" directive`, d.file, d.line);
    }
    if (!def.multiple) {
      if (seen.has(d.name)) fail(`"${d.name}" directive is duplicate`, d.file, d.line);
      seen.add(d.name);
    }
    HANDLERS[d.name as keyof typeof HANDLERS](d, st, ctx);
  }

  if (!st.worker) failFile('"app" or "exec" directive is required', ctx.file);
  if (st.listens.length === 0) failFile('"listen" directive is required', ctx.file);
  const metrics = st.metricsListen;
  if (metrics && !(metrics.kind === 'tcp' && metrics.port === 0) && st.listens.some((l) => l.key === metrics.key)) {
    fail(`metrics_listen "${metrics.key.replace(/^tcp:/, '')}" is also a listen`, metrics.source.file, metrics.source.line);
  }

  const pid = st.pid ?? resolve(ctx.prefix, 'logs/tsmaster.pid');
  // The default is not checked against UNIX_PATH_MAX: a deep prefix must not make an otherwise
  // valid file invalid; binding it is the business of the control server.
  const controlSocket = st.controlSocket === undefined ? `${pid}.sock` : st.controlSocket;
  const errorLog = st.errorLog ?? { path: resolve(ctx.prefix, 'logs/error.log'), level: 'notice' as const };
  const workerProcesses = st.workerProcesses ?? 1;

  return {
    file: ctx.file,
    prefix: ctx.prefix,
    pid,
    errorLog,
    daemon: st.daemon ?? true,
    user: st.user ?? null,
    workerProcesses,
    workerShutdownTimeoutMs: st.workerShutdownTimeoutMs ?? 10_000,
    workerReloadBatch: st.workerReloadBatch ?? null,
    termShutdown: st.termShutdown ?? 'fast',
    metricsListen: st.metricsListen ?? null,
    workerHeartbeatTimeoutMs: st.workerHeartbeatTimeoutMs === undefined ? 60_000 : st.workerHeartbeatTimeoutMs,
    workerRlimitNofile: st.workerRlimitNofile ?? null,
    workerCpuAffinity: st.affinity ? resolveAffinity(st.affinity, workerProcesses) : null,
    workerPriority: st.workerPriority ?? null,
    workerMaxMemory: st.workerMaxMemory ?? null,
    workerLog: st.workerLog === undefined ? errorLog.path : st.workerLog,
    workerStopSignal: st.workerStopSignal ?? 'SIGQUIT',
    readyTimeoutMs: st.readyTimeoutMs ?? 30_000,
    env: resolveEnv(st.env, st.user ?? null),
    listens: st.listens,
    worker: st.worker,
    controlSocket,
  };
}
