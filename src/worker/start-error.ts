// Why a worker could not start, in one line for the master's outcome (and so for the CLI of
// a start, a reload or an upgrade): the app's error and where in the app's own code it was
// thrown. The whole stack goes to the worker log as before.
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TsmError } from '../errors.js';
import { START_ERROR_CHARS, isObject, printable } from '../protocol.js';

/** tsmaster's own files, built or (through source maps) as written: their frames are not where the app failed. */
const ROOT = path.dirname(path.dirname(path.dirname(fileURLToPath(import.meta.url))));
const OWN = ['dist', 'src'].map((d) => path.join(ROOT, d) + path.sep);

function fileOf(location: string): string {
  return location.startsWith('file://') ? location.replace(/^file:\/\/[^/]*/, '').replace(/%20/g, ' ') : location;
}

/**
 * The first frame of `stack` in the app's own code (past node_modules if it can), as
 * `/path/file.mjs:3:7`. A SyntaxError of CommonJS, or of an import that names nothing,
 * heads its stack with `file:line` instead.
 */
export function appFrame(stack: string): string | null {
  const head = /^((?:file:\/\/)?\/[^\n]*:\d+)\n/.exec(stack);
  if (head) return fileOf(head[1]!);
  const frames: string[] = [];
  for (const m of stack.matchAll(/^\s+at (?:.*? \()?((?:file:\/\/)?\/[^()\n]+:\d+:\d+)\)?$/gm)) {
    const where = fileOf(m[1]!);
    if (!OWN.some((own) => where.startsWith(own))) frames.push(where);
  }
  return frames.find((f) => !f.includes(`${path.sep}node_modules${path.sep}`)) ?? frames[0] ?? null;
}

/**
 * An ES module's SyntaxError carries no place (Node keeps it hidden): `node --check` of the
 * app's file says it, when the error is in that file. Run only on this failure path.
 */
function syntaxErrorPlace(app: string): string | null {
  const r = spawnSync(process.execPath, ['--check', app], { encoding: 'utf8', timeout: 5000 });
  const first = /^(\/[^\n]*:\d+)\n/.exec(r.stderr ?? '');
  return first ? first[1]! : null;
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0]!.trim();
}

/** One line: `Error: DATABASE_URL is not set (at /srv/app/config.mjs:1:38)`. */
export function describeStartError(err: unknown, app: string, ownListens: readonly string[] = []): string {
  const e = err instanceof TsmError && err.code === 'TSM_ERR_APP' && err.cause !== undefined ? err.cause : err;
  let text: string;
  if (e instanceof TsmError) text = firstLine(e.message);
  else if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    const label = typeof code === 'string' && !e.message.includes(code) ? `${e.name} [${code}]` : e.name;
    const where = appFrame(e.stack ?? '') ?? (e instanceof SyntaxError ? syntaxErrorPlace(app) : null);
    text = `${label}: ${firstLine(e.message)}${where ? ` (at ${where})` : ''}`;
  } else text = `the app threw ${firstLine(String(e))}`;
  if (ownListens.length > 0) {
    text += `; the app calls listen() itself (at ${ownListens[0]}): export the server, the app or the request listener instead, and tsmaster serves it on the sockets of its listen directives`;
  }
  text = printable(text);
  return text.length > START_ERROR_CHARS ? `${text.slice(0, START_ERROR_CHARS - 1)}…` : text;
}

/**
 * Notes where the app calls listen() on a server itself while it starts (tsmaster's own
 * calls pass an inherited fd), so that a failure can say so, as Node's cluster also
 * intercepts listen() in its workers. `stop` puts listen() back as it was.
 */
export function watchOwnListens(): { calls: string[]; stop(): void } {
  const calls: string[] = [];
  const listen = net.Server.prototype.listen;
  net.Server.prototype.listen = function (this: net.Server, ...args: unknown[]) {
    const first = args[0];
    if (!(isObject(first) && 'fd' in first)) calls.push(appFrame(new Error().stack ?? '') ?? 'an unknown place');
    return (listen as (...a: unknown[]) => net.Server).apply(this, args);
  } as typeof listen;
  return { calls, stop: () => void (net.Server.prototype.listen = listen) };
}
