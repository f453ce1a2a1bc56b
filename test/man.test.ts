// man/tsmaster.conf.5 must document every directive of the table in src/config/directives.ts,
// with the same syntax and default, and nothing that is not in the table.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { directives } from '../src/config/directives.js';
import { parseText } from '../src/config/parser.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MAN = resolve(ROOT, 'man/tsmaster.conf.5');
const roff = readFileSync(MAN, 'utf8');
const lines = roff.split('\n');

/** Plain text of a roff line: font escapes dropped, \- and \e and quotes resolved. */
function plain(line: string): string {
  return line
    .replace(/\\f[BIRP]/g, '')
    .replace(/\\-/g, '-')
    .replace(/\\\(dq/g, '"')
    .replace(/\\\(aq/g, "'")
    .replace(/\\e/g, '\\');
}

/** Text of one line after a macro such as `.B` / `.BR` (alternating fonts joined as groff does). */
function macroText(line: string): string {
  const m = /^\.(B|I|BR|RB|BI|IB|IR|RI)\s+(.*)$/.exec(line);
  if (!m) return plain(line);
  const args = [...m[2]!.matchAll(/"([^"]*)"|(\S+)/g)].map((a) => a[1] ?? a[2]!);
  return plain(m[1]!.length === 1 ? args.join(' ') : args.join(''));
}

function section(name: string): string[] {
  const start = lines.findIndex((l) => l === `.SH ${name}` || l === `.SH "${name}"`);
  if (start < 0) return [];
  const end = lines.findIndex((l, i) => i > start && l.startsWith('.SH '));
  return lines.slice(start + 1, end < 0 ? lines.length : end);
}

interface Entry { tag: string; body: string[] }

/** Top-level .TP entries of the DIRECTIVES section (nested lists inside .RS/.RE are skipped). */
function entries(): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const sec = section('DIRECTIVES');
  let depth = 0;
  let current: Entry | null = null;
  for (let i = 0; i < sec.length; i++) {
    const l = sec[i]!;
    if (l.startsWith('.RS')) depth++;
    if (l.startsWith('.RE')) depth--;
    if (depth === 0 && l === '.TP') {
      const tagLine = sec[i + 1] ?? '';
      const tag = macroText(tagLine);
      current = { tag, body: [] };
      out.set(tag.split(/\s/)[0]!, current);
      i++;
      continue;
    }
    if (current) current.body.push(l);
  }
  return out;
}

t.test('the page has the usual sections', async (t) => {
  t.match(lines[0]!, /^\.\\"/);
  t.ok(lines.some((l) => /^\.TH TSMASTER\.CONF 5 /.test(l)), '.TH');
  for (const s of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'DIRECTIVES', 'EXAMPLES', 'SEE ALSO']) {
    t.ok(section(s).length > 0, `section ${s}`);
  }
  t.match(section('NAME').join(' '), /^tsmaster\.conf \\- /);
  t.match(section('SEE ALSO').join(' '), /\.BR tsmaster \(8\)/);
  const description = section('DESCRIPTION').map(plain).join(' ');
  for (const topic of ['Syntax', 'Include files', 'Command line', 'Paths', 'Units']) {
    t.ok(section('DESCRIPTION').includes(`.SS ${topic}`), `subsection ${topic}`);
  }
  for (const unit of ['ms', 'prefix', 'kibibytes', 'mebibytes', 'gibibytes', 'A plain number means seconds']) {
    t.ok(description.includes(unit), `mentions ${unit}`);
  }
});

t.test('the directive table is well formed', async (t) => {
  const names = directives.map((d) => d.name);
  t.equal(new Set(names).size, names.length, 'names are unique');
  for (const d of directives) {
    t.match(d.name, /^[a-z_]+$/);
    t.ok(d.syntax.startsWith(`${d.name} `) && d.syntax.endsWith(';'), `syntax of ${d.name}`);
    t.ok(d.default.length > 0, `default of ${d.name}`);
    t.ok(d.doc.length > 0 && !d.doc.includes('\n'), `doc of ${d.name}`);
    t.ok(d.minArgs >= 1 && d.maxArgs >= d.minArgs, `arity of ${d.name}`);
  }
  t.ok(names.includes('include'), 'include is listed');
});

t.test('every directive has a .TP entry with its syntax and default', async (t) => {
  const man = entries();
  for (const d of directives) {
    const e = man.get(d.name);
    if (!e) {
      t.fail(`no .TP / .B ${d.name} entry in man/tsmaster.conf.5`);
      continue;
    }
    t.equal(e.tag, d.syntax, `syntax of ${d.name}`);
    const def = e.body.map(plain).find((l) => l.startsWith('Default: '));
    t.ok(def, `${d.name} has a Default: line`);
    const text = def!.slice('Default: '.length);
    t.ok(text === `${d.name} ${d.default};` || text === d.default, `default of ${d.name}: "${text}" documents "${d.default}"`);
    t.ok(e.body.some((l) => !l.startsWith('.') && !l.startsWith('Default:')), `${d.name} has a description`);
  }
  for (const name of man.keys()) {
    t.ok(directives.some((d) => d.name === name), `documented directive "${name}" exists`);
  }
});

t.test('the .TP tags use .B with the directive name', async (t) => {
  const sec = section('DIRECTIVES');
  for (const d of directives) {
    const i = sec.findIndex((l, k) => sec[k - 1] === '.TP' && l.startsWith(`.B ${d.name} `));
    t.ok(i > 0, `.TP\\n.B ${d.name}`);
  }
});

t.test('examples use only known directives and valid syntax', async (t) => {
  const ex = section('EXAMPLES');
  const blocks: string[] = [];
  let cur: string[] | null = null;
  for (const l of ex) {
    if (l === '.nf') cur = [];
    else if (l === '.fi' && cur) {
      blocks.push(cur.map(plain).join('\n'));
      cur = null;
    } else if (cur) cur.push(l);
  }
  const configs = blocks.filter((b) => !b.startsWith('tsmaster '));
  t.ok(configs.length >= 2, 'at least two configuration examples');
  const known = new Set(directives.map((d) => d.name));
  for (const b of configs) {
    const list = parseText(b.replace(/^include .*$/m, ''), '/example.conf', { includeBase: '/' });
    t.ok(list.length > 0);
    for (const d of list) t.ok(known.has(d.name), `example directive ${d.name}`);
  }
});

const groff = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z', MAN], { encoding: 'utf8' });
t.test('groff formats the page without warnings', { skip: groff.error ? 'groff is not installed' : false }, async (t) => {
  const r = groff;
  t.equal(r.status, 0);
  t.equal(r.stderr, '', 'no warnings');
});
