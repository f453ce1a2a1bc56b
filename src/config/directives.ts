// The directives of tsmaster.conf(5), in the order of the man page: each one's documentation,
// parser and default. man/tsmaster.conf.5 is checked against them by test/man.test.ts.

import { statSync } from 'node:fs';
import { availableParallelism, constants as osConstants } from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { lookupGroup, lookupUser } from './accounts.js';
import { parseAffinity, type Affinity } from './cpus.js';
import { type DirectiveDef, following, none, off, repeated, shown, single } from './definition.js';
import { fail, invalid, syscallFailure } from './errors.js';
import { readEnvFile } from './env-file.js';
import { checkListen, parseListen, UNIX_PATH_MAX } from './listen.js';
import type { Directive } from './parser.js';
import { LOG_LEVELS, type Config, type LogLevel, type ListenSpec, type WorkerSpec } from './types.js';
import { duration, durationText, flag, flagText, int, parseSize, path } from './values.js';

function logTarget(d: Directive, text: string, prefix: string): string | 'stderr' {
  if (text === 'stderr') return 'stderr';
  if (/^(syslog|memory):/.test(text)) invalid(d, text, `${text.slice(0, text.indexOf(':'))} logging is not supported`);
  return path(d, text, prefix);
}

/** The error_log level when the directive or its level is left out. */
const DEFAULT_LEVEL: LogLevel = 'notice';

/** The control socket without control_socket: the pidfile's name with `.sock`. */
const besidePid = (pid: string): string => `${pid}.sock`;

export const pid = single({
  name: 'pid',
  syntax: 'pid path;',
  default: 'logs/tsmaster.pid',
  doc: 'File where the master writes its process ID.',
  parse: (d, prefix) => path(d, d.args[0]!, prefix),
});

export const errorLog = single({
  name: 'error_log',
  syntax: 'error_log path | stderr [level];',
  default: `logs/error.log ${DEFAULT_LEVEL}`,
  doc: 'Log file of the master (or stderr) and the lowest level written.',
  args: [1, 2],
  parse(d, prefix): Config['errorLog'] {
    const target = logTarget(d, d.args[0]!, prefix);
    const level = d.args[1] ?? DEFAULT_LEVEL;
    if (!(LOG_LEVELS as readonly string[]).includes(level)) fail(`invalid log level "${level}" in "error_log" directive`, d.file, d.line);
    return { path: target, level: level as LogLevel };
  },
});

export const daemon = single({
  name: 'daemon',
  syntax: 'daemon on | off;',
  default: shown(true, flagText),
  doc: 'Whether the master detaches from the terminal and runs in the background.',
  parse: (d) => flag(d, d.args[0]!),
});

export const user = single<Config['user']>({
  name: 'user',
  syntax: 'user user [group];',
  default: none,
  doc: 'User and group the workers run as; the group defaults to the primary group of the user.',
  args: [1, 2],
  parse(d) {
    const [name, group] = d.args as [string, string?];
    const pw = name === '' ? null : lookupUser(name);
    if (!pw) fail(`getpwnam("${name}") failed`, d.file, d.line);
    let gid = pw.gid;
    if (group !== undefined) {
      const g = group === '' ? null : lookupGroup(group);
      if (g === null) fail(`getgrnam("${group}") failed`, d.file, d.line);
      gid = g;
    }
    return { name, uid: pw.uid, gid, home: pw.home };
  },
});

export const workerProcesses = single({
  name: 'worker_processes',
  syntax: 'worker_processes number | auto;',
  default: shown(1, String),
  doc: 'Number of worker processes; auto starts one per available CPU.',
  parse: (d) => (d.args[0] === 'auto' ? Math.min(1024, Math.max(1, availableParallelism())) : int(d, d.args[0]!, 1, 1024)),
});

export const workerShutdownTimeout = single({
  name: 'worker_shutdown_timeout',
  syntax: 'worker_shutdown_timeout time;',
  default: shown(10_000, durationText),
  doc: 'How long a worker may take to stop gracefully before it is killed.',
  parse: (d) => duration(d, d.args[0]!, 0),
});

export const workerReloadBatch = single<Config['workerReloadBatch']>({
  name: 'worker_reload_batch',
  syntax: 'worker_reload_batch number | number% | off;',
  default: off,
  doc: 'Replace workers on a reload this many at a time (or this share of worker_processes), each batch ready before as many old ones drain; off replaces them all at once.',
  parse(d) {
    const v = d.args[0]!;
    if (v === 'off') return null;
    return v.endsWith('%') ? { percent: int(d, v.slice(0, -1), 1, 100) } : { count: int(d, v, 1, 1024) };
  },
});

export const termShutdown = single({
  name: 'term_shutdown',
  syntax: 'term_shutdown fast | graceful;',
  default: shown('fast', String),
  doc: 'What SIGTERM means to the master: the fast stop, as nginx, or the graceful stop that container orchestrators expect.',
  parse(d): Config['termShutdown'] {
    const v = d.args[0]!;
    if (v !== 'fast' && v !== 'graceful') invalid(d, v, 'it must be "fast" or "graceful"');
    return v;
  },
});

export const workerHeartbeatTimeout = single<number | null>({
  name: 'worker_heartbeat_timeout',
  syntax: 'worker_heartbeat_timeout time | off;',
  default: shown(60_000, durationText),
  doc: 'A worker that does not answer heartbeats for this long is killed and replaced.',
  parse: (d) => (d.args[0] === 'off' ? null : duration(d, d.args[0]!, 1)),
});

export const workerRlimitNofile = single<number | null>({
  name: 'worker_rlimit_nofile',
  syntax: 'worker_rlimit_nofile number;',
  default: none,
  doc: 'Limit on the number of open files (RLIMIT_NOFILE) of worker processes.',
  parse: (d) => int(d, d.args[0]!, 1, 2 ** 31 - 1),
});

export const workerCpuAffinity = single<Affinity | null>({
  name: 'worker_cpu_affinity',
  syntax: 'worker_cpu_affinity auto | cpumask ...;',
  default: none,
  doc: 'Binds worker processes to CPUs: one mask per worker, cycled, or auto.',
  args: [1, Infinity],
  parse: parseAffinity,
});

export const workerPriority = single<number | null>({
  name: 'worker_priority',
  syntax: 'worker_priority number;',
  default: none,
  doc: 'Scheduling priority (nice value, -20 to 19) of worker processes.',
  parse: (d) => int(d, d.args[0]!, -20, 19, true),
});

export const workerMaxMemory = single<number | null>({
  name: 'worker_max_memory',
  syntax: 'worker_max_memory size | off;',
  default: off,
  doc: 'A worker whose resident memory grows beyond this size is replaced gracefully.',
  parse(d) {
    const v = d.args[0]!;
    if (v === 'off') return null;
    const bytes = parseSize(v);
    if (bytes === null) invalid(d, v);
    if (bytes === 0) invalid(d, v, 'it must be greater than 0');
    return bytes;
  },
});

/**
 * With `user`, workers never get a descriptor of the master's own file (they could truncate
 * it or forge its lines): their default log is a file beside it, error.log → error.worker.log.
 */
export function workerLogBeside(errorLog: string): string {
  const ext = extname(errorLog);
  return join(dirname(errorLog), `${basename(errorLog, ext)}.worker${ext}`);
}

export const workerLog = following({
  name: 'worker_log',
  syntax: 'worker_log path | stderr | off;',
  default: 'same as error_log; with user, a file of its own beside it',
  doc: 'File that receives the standard output and standard error of the workers.',
  parse: (d, prefix) => (d.args[0] === 'off' ? null : logTarget(d, d.args[0]!, prefix)),
  follow: ({ errorLog, user }: Pick<Config, 'errorLog' | 'user'>) => (user && errorLog.path !== 'stderr' ? workerLogBeside(errorLog.path) : errorLog.path),
});

export const workerLogPrefix = single({
  name: 'worker_log_prefix',
  syntax: 'worker_log_prefix on | off;',
  default: shown(true, flagText),
  doc: "Starts each line a Node worker's app writes to stdout or stderr with the time, the stream, the worker's pid and its slot; off leaves the lines as written (JSON logs for a log shipper).",
  parse: (d) => flag(d, d.args[0]!),
});

export const workerStopSignal = single({
  name: 'worker_stop_signal',
  syntax: 'worker_stop_signal signal;',
  default: shown('SIGQUIT', (signal) => signal.slice('SIG'.length)),
  doc: 'Signal that asks an exec worker to stop gracefully.',
  parse(d): NodeJS.Signals {
    const v = d.args[0]!;
    const upper = v.toUpperCase();
    const name = upper.startsWith('SIG') ? upper : `SIG${upper}`;
    if (!/^[A-Z0-9]+$/.test(upper) || !Object.hasOwn(osConstants.signals, name)) invalid(d, v, 'unknown signal');
    return name as NodeJS.Signals;
  },
});

export const workerInspect = single<number | null>({
  name: 'worker_inspect',
  syntax: 'worker_inspect port | off;',
  default: off,
  doc: 'Opens the Node.js inspector of each Node worker on 127.0.0.1, slot N on port + N, for debugging.',
  parse: (d) => (d.args[0] === 'off' ? null : int(d, d.args[0]!, 1, 65535)),
});

export const workerSourceMaps = single({
  name: 'worker_source_maps',
  syntax: 'worker_source_maps on | off;',
  default: shown(false, flagText),
  doc: "Runs Node workers with --enable-source-maps, so stack traces name the app's own source files and lines.",
  parse: (d) => flag(d, d.args[0]!),
});

export const readyTimeout = single({
  name: 'ready_timeout',
  syntax: 'ready_timeout time;',
  default: shown(30_000, durationText),
  doc: 'How long new workers, or a new master during an upgrade, have to become ready.',
  parse: (d) => duration(d, d.args[0]!, 1),
});

export const env = repeated({
  name: 'env',
  syntax: 'env name[=value];',
  doc: 'Passes an environment variable of the master, or sets one, for the workers.',
  parse(d) {
    const v = d.args[0]!;
    const eq = v.indexOf('=');
    const name = eq < 0 ? v : v.slice(0, eq);
    if (name === '') invalid(d, v);
    return { name, value: eq < 0 ? undefined : v.slice(eq + 1) };
  },
});

export const envFile = repeated({
  name: 'env_file',
  syntax: 'env_file path;',
  doc: 'Sets environment variables for the workers from a file in the dotenv format, read again on every reload.',
  parse: (d, prefix) => readEnvFile(d, path(d, d.args[0]!, prefix)),
});

export const listen = repeated({
  name: 'listen',
  syntax: 'listen address [reuseport] [backlog=number] [mode=octal] [name=name] [ipv6only=on|off];',
  doc: 'A socket the master binds and hands to every worker; at least one is required.',
  args: [1, Infinity],
  parse: parseListen,
  check: checkListen,
});

export const metricsListen = single<ListenSpec | null>({
  name: 'metrics_listen',
  syntax: 'metrics_listen address [backlog=number] [mode=octal] [ipv6only=on|off] | off;',
  default: off,
  doc: 'A socket of the master itself (never the workers\'), serving Prometheus metrics on /metrics and health on /healthz and /readyz.',
  args: [1, Infinity],
  parse(d, prefix) {
    if (d.args.length === 1 && d.args[0] === 'off') return null;
    const { spec, explicitName } = parseListen(d, prefix);
    if (spec.reuseport || explicitName) fail('"metrics_listen" takes neither "reuseport" nor "name="', d.file, d.line);
    return spec;
  },
});

export const app = single<WorkerSpec | null>({
  name: 'app',
  syntax: 'app path;',
  default: none,
  doc: 'JavaScript module (or TypeScript where Node strips types) that a Node.js worker loads; exclusive with exec.',
  parse(d, prefix) {
    const file = path(d, d.args[0]!, prefix);
    let isDir: boolean;
    try {
      isDir = statSync(file).isDirectory();
    } catch (err) {
      fail(syscallFailure(err, 'stat', file), d.file, d.line, err);
    }
    if (isDir) invalid(d, d.args[0]!, `"${file}" is a directory`);
    return { kind: 'app', path: file };
  },
});

export const exec = single<WorkerSpec | null>({
  name: 'exec',
  syntax: 'exec command [argument ...];',
  default: none,
  doc: 'Program that each worker runs, given the sockets by socket activation; exclusive with app.',
  args: [1, Infinity],
  parse(d, prefix) {
    const argv = [...d.args];
    const cmd = argv[0]!;
    if (cmd === '') invalid(d, cmd);
    // a command with a slash is a path (relative to the prefix); a bare name is looked up in PATH
    if (cmd.includes('/')) argv[0] = resolve(prefix, cmd);
    return { kind: 'exec', argv };
  },
});

export const controlSocket = following({
  name: 'control_socket',
  syntax: 'control_socket path | off;',
  default: besidePid(pid.default),
  doc: 'Unix socket on which the master answers tsmaster -s status and upgrade progress.',
  parse(d, prefix) {
    const v = d.args[0]!;
    if (v === 'off') return null;
    const p = path(d, v, prefix);
    if (Buffer.byteLength(p) > UNIX_PATH_MAX) invalid(d, v, `the socket path "${p}" is longer than ${UNIX_PATH_MAX} bytes`);
    return p;
  },
  // Not checked against UNIX_PATH_MAX: a deep prefix must not make an otherwise valid file
  // invalid; binding it is the business of the control server.
  follow: (config: Pick<Config, 'pid'>) => besidePid(config.pid),
});

/** Expanded by the parser (parser.ts) before buildConfig sees the directives. */
const include: DirectiveDef = {
  name: 'include',
  syntax: 'include file | mask;',
  default: none.text,
  doc: 'Reads another file, or every file matching a mask, in place of the directive.',
  minArgs: 1,
  maxArgs: 1,
  multiple: true,
};

/** The directives buildConfig applies. */
export const definitions = [
  pid, errorLog, daemon, user, workerProcesses, workerShutdownTimeout, workerReloadBatch, termShutdown,
  workerHeartbeatTimeout, workerRlimitNofile, workerCpuAffinity, workerPriority, workerMaxMemory, workerLog,
  workerLogPrefix, workerStopSignal, workerInspect, workerSourceMaps, readyTimeout, env, envFile, listen, metricsListen, app, exec, controlSocket,
] as const;

/** Every directive of tsmaster.conf(5), in the order of the man page. */
export const directives: readonly DirectiveDef[] = [...definitions, include];
