// `-t` for the app: resolved as a worker would resolve it (the workers' Node and options,
// their user, environment and directory), without running it.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config/types.js';
import type { ProbeResult } from './app-probe.js';

const probe = path.join(path.dirname(fileURLToPath(import.meta.url)), 'app-probe.js');
const PROBE_TIMEOUT_MS = 30_000;
/** The probe prints one short line; more is not a probe's answer. */
const MAX_OUTPUT = 64 * 1024;
const TYPESCRIPT = new Set(['.ts', '.mts', '.cts']);

function runProbe(config: Config, app: string): Promise<ProbeResult> {
  const asUser = config.user && process.getuid?.() === 0 ? { uid: config.user.uid, gid: config.user.gid } : {};
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...process.execArgv, probe, app], {
      cwd: config.prefix,
      env: config.env,
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: PROBE_TIMEOUT_MS,
      ...asUser,
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.length > MAX_OUTPUT) child.kill('SIGKILL');
    });
    child.once('error', (err) => resolve({ code: 'ERR_PROBE', message: err.message }));
    child.once('close', (code, signal) => {
      try {
        resolve(JSON.parse(out) as ProbeResult);
      } catch {
        resolve({ code: 'ERR_PROBE', message: `the check exited with ${signal ?? code} and no answer` });
      }
    });
  });
}

/** The two ways to run TypeScript that this Node will not: the exact commands. */
function compileOrTsx(config: Config, globals: string | null): string {
  const cli = path.resolve(process.argv[1] ?? 'tsmaster');
  const args = ['-p', config.prefix, '-c', config.file, ...(globals === null ? [] : ['-g', globals])].map(shellWord).join(' ');
  return (
    `compile it (cd ${shellWord(config.prefix)} && npx tsc) and set app to the .js that tsc writes, ` +
    `or run under tsx: cd ${shellWord(config.prefix)} && npm install tsx && node --import tsx ${shellWord(cli)} ${args}`
  );
}

function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`;
}

/** Null when the workers can load the app, else why not, in one line. */
export async function checkApp(config: Config, globals: string | null): Promise<string | null> {
  if (config.worker.kind !== 'app') return null;
  const app = config.worker.path;
  const r = await runProbe(config, app);
  if ('format' in r) return null;
  const who = config.user && process.getuid?.() === 0 ? ` by user "${config.user.name}"` : '';
  if (r.code === 'ERR_UNKNOWN_FILE_EXTENSION' && TYPESCRIPT.has(path.extname(app))) {
    return `app "${app}": the workers' Node ${process.version} does not strip TypeScript types (Node 22.18+ and 24 do): ${compileOrTsx(config, globals)}`;
  }
  // Type stripping compiles nothing: enum, namespace, parameter properties need a compiler.
  if (r.code === 'ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX') return `app "${app}" cannot be loaded: ${r.message}: ${compileOrTsx(config, globals)}`;
  // A syscall's code (EACCES, ENOENT...), not one of Node's ERR_ codes.
  if (!r.code.startsWith('ERR_')) return `app "${app}" cannot be read${who}: ${r.message}`;
  return `app "${app}" cannot be loaded${who}: ${r.message}`;
}
