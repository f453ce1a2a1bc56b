#!/usr/bin/env node
// argv → command. The only place that calls process.exit.
//
// Start-up time is the CLI's whole cost for -v, -t and -s: only what every command needs is
// imported statically here; each command imports its own modules when it runs, and those are
// compiled through Node's module compile cache (compile-cache.ts).
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/types.js';
import type { Master } from '../master/master.js';
import { TsmError } from '../errors.js';
import type { ParentMessage } from '../protocol.js';
import { version } from '../version.js';
import { parseArgs, usage, type CliOptions } from './args.js';
import { enableCompileCache } from './compile-cache.js';
import type { Outcome } from './signal.js';

function print(o: Outcome): never {
  for (const line of o.out) process.stdout.write(`${line}\n`);
  for (const line of o.err) process.stderr.write(`tsmaster: ${line}\n`);
  process.exit(o.code);
}

function fail(message: string, level = 'emerg'): never {
  return print({ code: 1, out: [], err: [`[${level}] ${message}`] });
}

/**
 * A master that cannot start: the launcher or the old master waiting on the IPC channel
 * gets the reason too, so it reaches the operator and the old master's log.
 */
async function failToParent(message: string): Promise<never> {
  if (process.send) {
    const msg: ParentMessage = { t: 'failed', pid: process.pid, lines: [message] };
    await new Promise((resolve) => process.send!(msg, undefined, {}, resolve));
  }
  return fail(message);
}

/**
 * The node binary by the path it was started with, not its realpath: a USR2 after a deploy
 * switched a symlink to a new Node runs the new one.
 */
function nodePath(): string {
  const a0 = process.argv0;
  if (a0.includes('/')) return path.resolve(a0);
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = path.resolve(dir || '.', a0);
    try {
      if (fs.realpathSync(p) === fs.realpathSync(process.execPath)) return p;
    } catch {
      // not there
    }
  }
  return process.execPath;
}

function configPaths(o: CliOptions): { prefix: string; file: string } {
  const prefix = path.resolve(o.prefix ?? process.cwd());
  return { prefix, file: path.resolve(prefix, o.configFile ?? 'tsmaster.conf') };
}

async function testConfig(o: CliOptions, file: string, config: Config | null, error: string | null): Promise<never> {
  const [{ missingDirectories }, { readConfigFile }, { unsafeDirectories }] = await Promise.all([
    import('../config/missing-directories.js'),
    import('../config/parser.js'),
    import('../config/strict-modes.js'),
  ]);
  const missing = config ? missingDirectories(config) : [];
  if (error === null && missing.length > 0) error = missing.join(`\ntsmaster: [emerg] `);
  if (error !== null) print({ code: 1, out: [], err: [`[emerg] ${error}`, `configuration file ${file} test failed`] });
  const out: string[] = [];
  if (o.dump && config) out.push(`# configuration file ${config.file}:`, readConfigFile(config.file));
  const warnings = config ? unsafeDirectories(config).map((w) => `[warn] ${w}`) : [];
  return print({ code: 0, out, err: [...warnings, `the configuration file ${file} syntax is ok`, `configuration file ${file} test is successful`] });
}

async function main(argv: string[]): Promise<never> {
  let o: CliOptions;
  try {
    o = parseArgs(argv);
  } catch (err) {
    return print({ code: 1, out: [], err: [(err as Error).message] });
  }
  if (o.help) print({ code: 0, out: [usage], err: [] });
  if (o.version) {
    // As nginx: on stderr, without the "tsmaster: " prefix of messages.
    process.stderr.write(`tsmaster version: tsmaster/${version}\n`);
    if (o.version === 2) process.stderr.write(`built with node ${process.versions.node} (${process.platform}-${process.arch})\n`);
    process.exit(0);
  }

  enableCompileCache();
  const { loadConfig } = await import('../config/index.js');
  const { prefix, file } = configPaths(o);
  let config: Config | null = null;
  let error: string | null = null;
  try {
    config = loadConfig({ file, prefix, ...(o.globals ? { globals: o.globals } : {}) });
  } catch (err) {
    error = (err as Error).message;
    // Run from elsewhere than the master's prefix, with neither -p nor -c: say how to point at it.
    if (o.prefix === null && o.configFile === null && !fs.existsSync(file)) error += `; give the master's prefix and configuration with -p PREFIX and -c FILE`;
  }
  if (o.test) {
    // Loaded only here: the app check spawns the workers' Node, which no other command needs.
    if (config) error = await (await import('./app-check.js')).checkApp(config, o.globals);
    await testConfig(o, file, config, error);
  }
  if (!config) return failToParent(error ?? 'no configuration');

  try {
    switch (o.signal) {
      case 'stop':
        return print(await (await import('./signal.js')).stopMaster(config, false));
      case 'quit':
        return print(await (await import('./signal.js')).stopMaster(config, true));
      case 'reopen':
        return print((await import('./signal.js')).reopen(config));
      case 'reload':
        return print(await (await import('./signal.js')).reload(config));
      case 'upgrade':
        return print(await (await import('./upgrade.js')).upgrade(config));
      case 'status':
        return print(await (await import('./status.js')).status(config, o.json));
      case null:
        break;
    }
  } catch (err) {
    if (err instanceof TsmError) return fail(err.message, 'error');
    throw err;
  }

  // The command line a USR2 starts again: the path we were started with, not its realpath,
  // so a deploy that switches a `current` symlink runs the new release.
  const command = [nodePath(), ...process.execArgv, path.resolve(process.argv[1]!), ...argv];
  const [{ INHERIT_ENV }, { DAEMON_ENV, launchDaemon }] = await Promise.all([import('../protocol.js'), import('./launch.js')]);
  const inherited = process.env[INHERIT_ENV] !== undefined;
  const isDaemon = process.env[DAEMON_ENV] === '1';
  delete process.env[DAEMON_ENV];
  if (config.daemon && !inherited && !isDaemon) {
    return print(await launchDaemon(command, config.readyTimeoutMs + (await import('./signal.js')).CLI_GRACE_MS));
  }
  const [{ Master }, { MASTER_TITLE }] = await Promise.all([import('../master/master.js'), import('../master/identity.js')]);
  let master: Master;
  try {
    master = new Master(config, {
      configFile: file,
      prefix,
      ...(o.globals ? { globals: o.globals } : {}),
      argv: command,
      title: `${MASTER_TITLE} ${[path.resolve(process.argv[1]!), ...argv].join(' ')}`,
      onTerminal: !config.daemon && !inherited && !isDaemon && Boolean(process.stdin.isTTY || process.stderr.isTTY),
      daemon: isDaemon || (inherited && config.daemon),
    });
  } catch (err) {
    return failToParent((err as Error).message);
  }
  process.on('uncaughtException', (err) => master.log.crit(`uncaught exception: ${err.stack ?? err.message}`));
  process.exit(await master.run());
}

await main(process.argv.slice(2));
