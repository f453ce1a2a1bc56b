// TypeScript apps as users write them: tsc's CommonJS and ESM output, source maps, tsx, and
// Node's own type stripping (Node 24, from the npm registry, where this Node has none). The
// projects are the ones in examples/typescript, compiled here by the real tsc.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { defaultExport } from '../src/worker/runtime.js';
import { cli, freePort, get, isGone, root, runCli, startMaster, tempDir, waitFor } from './helpers/master.js';
import { nonStrippingNode, strippingNode, untraced } from './helpers/node-bin.js';

const examples = path.join(root, 'examples', 'typescript');
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');

/** A copy of an example project, its node_modules (typescript, @types/node, tsx) the repo's. */
function project(t: Test, name: string): string {
  const dir = tempDir(t, `tsm-ts-${name}-`);
  fs.cpSync(path.join(examples, name), dir, { recursive: true });
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  return dir;
}

function compile(t: Test, dir: string): void {
  const [env, ...args] = untraced(process.execPath, tsc, '-p', dir);
  const r = spawnSync(env!, args, { encoding: 'utf8' });
  t.equal(r.status, 0, `tsc -p ${path.basename(dir)}: ${r.stdout}${r.stderr}`);
}

/** The example's own tsmaster.conf, on a free port. */
function conf(dir: string, port: number): string {
  return fs.readFileSync(path.join(dir, 'tsmaster.conf'), 'utf8').replace(/^listen\s.*$/m, `listen 127.0.0.1:${port};`);
}

/** The same for startMaster, which adds the error_log it reads. */
function masterConf(dir: string, port: number): string {
  return conf(dir, port).replace(/^error_log\s.*\n/m, '');
}

/** The line of `new Error('here')` in a source file, as a stack trace names it. */
function lineOfHere(file: string): number {
  return fs.readFileSync(file, 'utf8').split('\n').findIndex((l) => l.includes("new Error('here')")) + 1;
}

t.test('the default export of a CommonJS module: module.exports, or tsc\'s exports.default beside __esModule', async (t) => {
  const app = () => undefined;
  t.equal(defaultExport({ default: app }), app, 'module.exports = app');
  t.equal(defaultExport({ default: Object.defineProperty({ default: app }, '__esModule', { value: true }) }), app, 'exports.default = app');
  const named = Object.defineProperty({ start: app }, '__esModule', { value: true });
  t.equal(defaultExport({ default: named }), named, 'tsc output with no default export stays the exports object (an app with start())');
  const plain = { default: app };
  t.equal(defaultExport({ default: plain }), plain, 'no __esModule: an object whose property is named default is not unwrapped');
  t.equal(defaultExport({}), undefined);
});

t.test('tsc CommonJS output serves, and with --enable-source-maps its stack traces name the .ts', async (t) => {
  const dir = project(t, 'commonjs');
  compile(t, dir);
  t.match(fs.readFileSync(path.join(dir, 'dist', 'server.js'), 'utf8'), /exports\.default = handler/, 'tsc wrote exports.default');
  const port = await freePort();
  const m = await startMaster(t, { dir, conf: masterConf(dir, port), command: [...untraced(process.execPath, '--enable-source-maps'), cli] });
  const r = await get({ port });
  t.equal(r.status, 200);
  t.match(r.body, /^hello from commonjs, worker \d+$/m);
  const where = await get({ port, path: '/where' });
  t.match(where.body, `${path.join(dir, 'src', 'server.ts')}:${lineOfHere(path.join(dir, 'src', 'server.ts'))}:`, 'the worker (it has the master\'s Node options) maps the stack to src/server.ts');
  m.signal('SIGQUIT');
  await waitFor('the first master exits', () => isGone(m.masterPid), 10_000);

  // Without the option, the same stack names the compiled file.
  const port2 = await freePort();
  await startMaster(t, { dir, conf: masterConf(dir, port2), command: [...untraced(process.execPath), cli] });
  const plain = await get({ port: port2, path: '/where' });
  t.match(plain.body, `${path.join(dir, 'dist', 'server.js')}:${lineOfHere(path.join(dir, 'dist', 'server.js'))}:`);
});

t.test('tsc ESM output ("type": "module", module nodenext) serves', async (t) => {
  const dir = project(t, 'esm');
  compile(t, dir);
  const port = await freePort();
  await startMaster(t, { dir, conf: masterConf(dir, port), command: [...untraced(process.execPath), cli] });
  const r = await get({ port });
  t.equal(r.status, 200);
  t.match(r.body, /^hello from esm, worker \d+$/m);
});

t.test('the type-stripping example type-checks with its tsconfig (erasableSyntaxOnly, .ts imports)', async (t) => {
  compile(t, project(t, 'strip'));
});

const nonStripping = nonStrippingNode();

t.test('where Node does not strip types, -t refuses a .ts app and says how to run it', { skip: nonStripping.skip }, async (t) => {
  if (nonStripping.skip !== false) return;
  const dir = project(t, 'strip');
  const file = path.join(dir, 'tsmaster.conf');
  fs.writeFileSync(file, conf(dir, 0));
  const r = await runCli(['-t', '-p', dir, '-c', file, '-g', 'worker_processes 1;'], { command: [...untraced(nonStripping.node), cli] });
  t.equal(r.code, 1);
  const app = path.join(dir, 'src', 'server.ts');
  t.equal(
    r.stderr,
    `tsmaster: [emerg] app "${app}": the workers' Node ${nonStripping.version} does not strip TypeScript types (Node 22.18+ and 24 do): ` +
      `compile it (cd ${dir} && npx tsc) and set app to the .js that tsc writes, ` +
      `or run under tsx: cd ${dir} && npm install tsx && node --import tsx ${cli} -p ${dir} -c ${file} -g 'worker_processes 1;'\n` +
      `tsmaster: configuration file ${file} test failed\n`,
  );
});

t.test('under tsx (node --import tsx, as -t advises), -t passes and a .ts app serves', async (t) => {
  const dir = project(t, 'strip');
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'tsmaster.conf'), conf(dir, port));
  const tsx = untraced(process.execPath, '--import', 'tsx');
  const check = await runCli(['-t', '-p', dir, '-c', path.join(dir, 'tsmaster.conf')], { command: [...tsx, cli], cwd: dir });
  t.equal(check.code, 0, check.stderr);
  await startMaster(t, { dir, conf: masterConf(dir, port), command: [...tsx, cli] });
  const r = await get({ port });
  t.equal(r.status, 200);
  t.match(r.body, /^hello from typescript, worker \d+$/m);
});

const stripping = strippingNode();

t.test('where Node strips types (this Node, or Node 24): -t passes, the .ts app serves, its stack traces name the .ts lines', { skip: stripping.skip }, async (t) => {
  if (stripping.skip !== false) return;
  const dir = project(t, 'strip');
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'tsmaster.conf'), conf(dir, port));
  const check = await runCli(['-t', '-p', dir, '-c', path.join(dir, 'tsmaster.conf')], { command: [...untraced(stripping.node), cli] });
  t.equal(check.code, 0, check.stderr);
  await startMaster(t, { dir, conf: masterConf(dir, port), command: [...untraced(stripping.node), cli] });
  const r = await get({ port });
  t.equal(r.status, 200);
  t.match(r.body, /^hello from typescript, worker \d+$/m);
  const server = path.join(dir, 'src', 'server.ts');
  t.match((await get({ port, path: '/where' })).body, `${server}:${lineOfHere(server)}:`, 'no source map needed');
});

t.test('where Node strips types: -t refuses TypeScript that stripping cannot run (enum), and TypeScript under node_modules', { skip: stripping.skip }, async (t) => {
  if (stripping.skip !== false) return;
  const dir = project(t, 'strip');
  const file = path.join(dir, 'tsmaster.conf');
  fs.writeFileSync(path.join(dir, 'src', 'enum.ts'), 'enum Color { Red }\nexport default function handler(_req: unknown, res: { end(s: string): void }) { res.end(String(Color.Red)); }\n');
  fs.writeFileSync(file, conf(dir, 0).replace(/^app\s.*$/m, 'app src/enum.ts;'));
  const r = await runCli(['-t', '-p', dir, '-c', file], { command: [...untraced(stripping.node), cli] });
  t.equal(r.code, 1);
  t.match(r.stderr, `[emerg] app "${path.join(dir, 'src', 'enum.ts')}" cannot be loaded: TypeScript enum is not supported in strip-only mode: compile it (cd ${dir} && npx tsc)`);
  t.match(r.stderr, `or run under tsx: cd ${dir} && npm install tsx && node --import tsx ${cli} -p ${dir} -c ${file}\n`);

  const vendored = path.join(dir, 'vendor', 'node_modules', 'app');
  fs.mkdirSync(vendored, { recursive: true });
  fs.copyFileSync(path.join(dir, 'src', 'greeting.ts'), path.join(vendored, 'index.ts'));
  fs.writeFileSync(file, conf(dir, 0).replace(/^app\s.*$/m, 'app vendor/node_modules/app/index.ts;'));
  const nm = await runCli(['-t', '-p', dir, '-c', file], { command: [...untraced(stripping.node), cli] });
  t.equal(nm.code, 1);
  t.match(nm.stderr, /\[emerg\] app ".*index\.ts" cannot be loaded: Stripping types is currently unsupported for files under node_modules/);
});
