// Directives → Config: every occurrence through its definition, in order, so that the first
// invalid directive is the error; then what involves several directives.

import { type Affinity, usableCpus } from './cpus.js';
import type { Definition, Following, Repeated, Single } from './definition.js';
import * as D from './directives.js';
import { fail, failFile } from './errors.js';
import type { Directive } from './parser.js';
import type { Config } from './types.js';

/** Variables of the master's environment that workers always get (when set). */
const DEFAULT_WORKER_ENV: readonly string[] = ['PATH', 'HOME', 'TZ', 'NODE_ENV', 'LANG'];

const BY_NAME = new Map<string, Definition<unknown>>(D.definitions.map((d) => [d.name, d]));

/**
 * What workers get: the defaults, then env_file variables (files in order), then `env`
 * directives, so a line of the config beats a file.
 */
function resolveEnv(
  files: ReadonlyArray<Record<string, string>>,
  entries: ReadonlyArray<{ name: string; value: string | undefined }>,
  user: Config['user'],
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of DEFAULT_WORKER_ENV) {
    const v = process.env[name];
    if (v !== undefined) env[name] = v;
  }
  // Workers running as `user` are that user: root's HOME would point them at root's files.
  if (user) Object.assign(env, { HOME: user.home, USER: user.name, LOGNAME: user.name });
  for (const vars of files) Object.assign(env, vars);
  for (const { name, value } of entries) {
    const v = value ?? process.env[name];
    if (v !== undefined) env[name] = v;
    else delete env[name];
  }
  return env;
}

function resolveAffinity(a: Affinity, workers: number): number[][] {
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
  const { file, prefix } = opts;
  const given = new Map<string, unknown[]>();
  for (const d of list) {
    const def = BY_NAME.get(d.name);
    if (!def) fail(`unknown directive "${d.name}"`, d.file, d.line);
    if (d.args.length < def.minArgs || d.args.length > def.maxArgs) {
      fail(`invalid number of arguments in "${d.name}" directive`, d.file, d.line);
    }
    const earlier = given.get(d.name) ?? [];
    if (!def.multiple && earlier.length > 0) fail(`"${d.name}" directive is duplicate`, d.file, d.line);
    // app and exec both say what the workers run
    if ((def === D.app || def === D.exec) && (given.has(D.app.name) || given.has(D.exec.name))) {
      fail('"app" and "exec" directives are mutually exclusive', d.file, d.line);
    }
    const parsed = def.parse(d, prefix);
    def.check?.(parsed, earlier, d);
    given.set(d.name, [...earlier, parsed]);
  }
  // A null from the file (`off`) is a value: only a directive left out gets its default.
  const value = <T>(def: Definition<T>, otherwise: () => T): T => (given.has(def.name) ? (given.get(def.name)![0] as T) : otherwise());
  const one = <T>(def: Single<T>): T => value(def, () => def.fallback(prefix));
  const follow = <T, K extends keyof Config>(def: Following<T, K>, config: Pick<Config, K>): T => value(def, () => def.follow(config));
  const all = <T>(def: Repeated<T>): T[] => (given.get(def.name) ?? []) as T[];

  const worker = one(D.app) ?? one(D.exec);
  if (!worker) failFile('"app" or "exec" directive is required', file);
  const listens = all(D.listen).map((l) => l.spec);
  if (listens.length === 0) failFile('"listen" directive is required', file);
  const metrics = one(D.metricsListen);
  if (metrics && !(metrics.kind === 'tcp' && metrics.port === 0) && listens.some((l) => l.key === metrics.key)) {
    fail(`metrics_listen "${metrics.key.replace(/^tcp:/, '')}" is also a listen`, metrics.source.file, metrics.source.line);
  }

  const pid = one(D.pid);
  const errorLog = one(D.errorLog);
  const user = one(D.user);
  const workerLog = follow(D.workerLog, { errorLog, user });
  if (user && workerLog === errorLog.path && workerLog !== 'stderr') {
    const d = list.find((e) => e.name === D.workerLog.name)!;
    fail(`worker_log "${workerLog}" is the error_log: with "user", workers write a file of their own`, d.file, d.line);
  }
  const workerProcesses = one(D.workerProcesses);
  const affinity = one(D.workerCpuAffinity);
  return {
    file,
    prefix,
    pid,
    errorLog,
    daemon: one(D.daemon),
    user,
    workerProcesses,
    workerShutdownTimeoutMs: one(D.workerShutdownTimeout),
    workerReloadBatch: one(D.workerReloadBatch),
    termShutdown: one(D.termShutdown),
    metricsListen: metrics,
    workerHeartbeatTimeoutMs: one(D.workerHeartbeatTimeout),
    workerRlimitNofile: one(D.workerRlimitNofile),
    workerCpuAffinity: affinity && resolveAffinity(affinity, workerProcesses),
    workerPriority: one(D.workerPriority),
    workerMaxMemory: one(D.workerMaxMemory),
    workerLog,
    workerStopSignal: one(D.workerStopSignal),
    workerInspect: one(D.workerInspect),
    workerSourceMaps: one(D.workerSourceMaps),
    workerLogPrefix: one(D.workerLogPrefix),
    readyTimeoutMs: one(D.readyTimeout),
    env: resolveEnv(all(D.envFile), all(D.env), user),
    listens,
    worker,
    controlSocket: follow(D.controlSocket, { pid }),
  };
}
