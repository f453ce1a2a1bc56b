// README.md and man/tsmaster.8 against the code: every option of src/cli/args.ts is in the
// OPTIONS of tsmaster(8), every master signal is in its SIGNALS and in the README, groff
// formats the page without warnings, and the README opens with `npm start` and `npm test`.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, usage } from '../src/cli/args.js';
import { MASTER_SIGNALS } from '../src/master/event-queue.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MAN = resolve(ROOT, 'man/tsmaster.8');
const roff = readFileSync(MAN, 'utf8').split('\n');
const readme = readFileSync(resolve(ROOT, 'README.md'), 'utf8');

/** Plain text of a roff line: font escapes dropped, \- \e and quotes resolved. */
function plain(line: string): string {
  return line
    .replace(/\\f[BIRP]/g, '')
    .replace(/\\-/g, '-')
    .replace(/\\\(aq/g, "'")
    .replace(/\\\(dq/g, '"')
    .replace(/\\e/g, '\\')
    .replace(/^\.[A-Z]{1,2}\s+/, '')
    .replace(/"/g, '');
}

/** Lines of `.SH name` up to the next `.SH`. */
function section(name: string): string[] {
  const start = roff.findIndex((l) => l === `.SH ${name}` || l === `.SH "${name}"`);
  if (start < 0) return [];
  const end = roff.findIndex((l, i) => i > start && l.startsWith('.SH '));
  return roff.slice(start + 1, end < 0 ? roff.length : end);
}

/** Lines of `.SS name` inside `lines`, up to the next `.SS`. */
function subsection(lines: string[], name: string): string[] {
  const start = lines.indexOf(`.SS ${name}`);
  if (start < 0) return [];
  const end = lines.findIndex((l, i) => i > start && l.startsWith('.SS '));
  return lines.slice(start + 1, end < 0 ? lines.length : end);
}

/** The tags of the top-level `.TP` entries (entries nested in .RS/.RE are left out). */
function tags(lines: string[]): string[] {
  const out: string[] = [];
  let depth = 0;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (l.startsWith('.RS')) depth++;
    else if (l.startsWith('.RE')) depth--;
    else if (depth === 0 && l === '.TP' && lines[i + 1] !== undefined) out.push(plain(lines[i + 1]!));
  }
  return out;
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** `word` as a whole token: not inside a longer option or name. */
const token = (word: string): RegExp => new RegExp(`(^|[\\s,(\\[])${escape(word)}($|[\\s,)\\]])`);

/** Options named by the usage text: the synopsis groups and the lines of the option list. */
function usageOptions(text: string): string[] {
  const opts = new Set<string>();
  const [synopsis = '', ...rest] = text.split('\n');
  for (const m of synopsis.matchAll(/\[-([^\s\]-]+)\]/g)) for (const ch of m[1]!) opts.add(`-${ch}`);
  for (const m of synopsis.matchAll(/\[-(\S) [^\]]+\]/g)) opts.add(`-${m[1]}`);
  for (const line of rest) {
    const m = /^\s+(-\S+)/.exec(line);
    if (m) for (const o of m[1]!.split(',')) opts.add(o);
  }
  return [...opts].sort();
}

const options = usageOptions(usage);
const VALUE: Record<string, string[]> = { '-s': ['-s', 'stop'], '-p': ['-p', '/tmp'], '-c': ['-c', 'x.conf'], '-g': ['-g', 'daemon off;'], '--json': ['-s', 'status', '--json'] };

t.test('the usage text names the options parseArgs accepts, and only those', async (t) => {
  t.ok(options.length >= 10, `options found in the usage: ${options.join(' ')}`);
  for (const o of ['-h', '-t', '-s', '-c', '-p', '-g']) t.ok(options.includes(o), `usage names ${o}`);
  for (const o of options) t.doesNotThrow(() => parseArgs(VALUE[o] ?? [o]), `parseArgs accepts ${o}`);
  const letters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789?!@#%';
  for (const ch of letters) {
    if (options.includes(`-${ch}`)) continue;
    t.throws(() => parseArgs([`-${ch}`]), `parseArgs rejects -${ch}, which the usage does not name`);
  }
});

t.test('every option has an entry in OPTIONS of tsmaster(8)', async (t) => {
  const entries = tags(section('OPTIONS'));
  t.ok(entries.length > 0, 'OPTIONS has .TP entries');
  for (const o of options) t.ok(entries.some((tag) => token(o).test(tag)), `${o} is documented in OPTIONS`);
  const values = section('OPTIONS').map(plain).join('\n');
  for (const cmd of ['stop', 'quit', 'reopen', 'reload', 'upgrade', 'status']) t.match(values, token(cmd), `-s ${cmd} is documented`);
});

t.test('every master signal is in SIGNALS of tsmaster(8) and in the README', async (t) => {
  const master = tags(subsection(section('SIGNALS'), 'Master'));
  t.ok(master.length > 0, 'SIGNALS has a Master subsection with entries');
  const workers = tags(subsection(section('SIGNALS'), 'Workers'));
  for (const s of ['QUIT', 'TERM', 'INT', 'USR1', 'HUP']) t.ok(workers.some((tag) => token(s).test(tag)), `worker signal ${s} is documented`);

  const start = readme.search(/^## Signals/m);
  t.ok(start >= 0, 'the README has a Signals section');
  const rest = readme.slice(start + 1);
  const end = rest.search(/^## /m);
  const readmeSignals = end < 0 ? rest : rest.slice(0, end);

  for (const signal of MASTER_SIGNALS) {
    const name = signal.replace(/^SIG/, '');
    const word = new RegExp(`\\b(SIG)?${name}\\b`);
    t.ok(master.some((tag) => word.test(tag)), `${signal} is documented in SIGNALS (Master)`);
    t.match(readmeSignals, word, `${signal} is in the README's Signals section`);
  }
});

const groff = spawnSync('groff', ['-man', '-ww', '-Tutf8', MAN], { encoding: 'utf8' });
t.test('groff formats tsmaster(8) without warnings', { skip: groff.error ? 'groff is not installed' : false }, async (t) => {
  t.equal(groff.status, 0, 'groff exits 0');
  t.equal(groff.stderr, '', 'no warnings');
});

t.test('the README opens with what tsmaster is, then `npm start` and `npm test`', async (t) => {
  const lines = readme.split('\n').map((l) => l.trim());
  const firstSection = lines.findIndex((l) => l.startsWith('## '));
  const body = lines.slice(0, firstSection < 0 ? lines.length : firstSection).filter((l) => l !== '' && !l.startsWith('#'));
  t.match(body[0], /tsmaster/, 'the first line says what tsmaster is');
  const next = body.slice(1, 3).join('\n');
  t.match(next, /`npm start`/, '`npm start` comes next');
  t.match(next, /`npm test`/, '`npm test` comes next');

  // What the README says `npm start` does is what package.json and the sample config do.
  const pkg = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  t.match(pkg.scripts.start, /-p dist\/sample/, 'npm start runs the sample');
  t.match(pkg.scripts.test, /\btap$/, 'npm test runs tap');
  const sample = readFileSync(resolve(ROOT, 'src/sample/tsmaster.conf'), 'utf8');
  const workers = /^worker_processes\s+(\d+);/m.exec(sample)?.[1];
  const listen = /^listen\s+(\S+);/m.exec(sample)?.[1];
  t.match(sample, /^daemon off;/m, 'the sample runs in the foreground');
  const startLine = body.find((l) => l.includes('`npm start`')) ?? '';
  t.ok(startLine.includes(`${workers} workers`), `the README says ${workers} workers`);
  t.ok(startLine.includes(`http://${listen}/`), `the README says http://${listen}/`);
});
