// The frameworks tests' pieces: the examples/ apps, a compiled NestJS app, and a reload plus
// an upgrade under load that never retries.
import fs from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import ts from 'typescript';
import { startLoad } from './load.js';
import { run } from './run.js';
import { freePort, get, root, startMaster, tempDir, waitFor, workersOf, type Instance } from './master.js';

export const example = (name: string): string => path.join(root, 'examples', name, 'app.mjs');

/** NestJS is TypeScript with decorators: compiled here as tsc would, beside the repo's node_modules. */
function compiledNest(t: Test): string {
  const dir = tempDir(t);
  const source = fs.readFileSync(path.join(root, 'examples', 'nest', 'app.ts'), 'utf8');
  const options = JSON.parse(fs.readFileSync(path.join(root, 'examples', 'nest', 'tsconfig.json'), 'utf8')).compilerOptions;
  const { options: compilerOptions } = ts.convertCompilerOptionsFromJson(options, dir);
  // transpileModule sees no package.json: say ESM, as NodeNext does under "type": "module".
  const out = ts.transpileModule(source, { fileName: 'app.ts', compilerOptions: { ...compilerOptions, module: ts.ModuleKind.ES2022 } });
  fs.writeFileSync(path.join(dir, 'app.mjs'), out.outputText);
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  return path.join(dir, 'app.mjs');
}

/**
 * Next.js serves what `next build` made. examples/next is a project of its own, as a Next.js
 * app is (React 19 would break tap's reporter at the top level): installed with npm ci there
 * (.ci/run does it first), built in place (.next, ignored by git).
 */
async function builtNext(t: Test): Promise<string> {
  const dir = path.join(root, 'examples', 'next');
  if (!fs.existsSync(path.join(dir, 'node_modules', 'next'))) {
    const i = await run('npm', ['ci', '--no-audit', '--no-fund'], { cwd: dir, timeoutMs: 300_000 });
    t.equal(i.code, 0, `npm ci in examples/next: ${i.code === 0 ? 'ok' : i.stdout + i.stderr}`);
  }
  const r = await run(process.execPath, [path.join(dir, 'node_modules', 'next', 'dist', 'bin', 'next'), 'build'], { cwd: dir, env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1' }, timeoutMs: 120_000 });
  t.equal(r.code, 0, `next build: ${r.code === 0 ? 'ok' : r.stdout + r.stderr}`);
  return path.join(dir, 'app.mjs');
}

/** A reload, then an upgrade, under load; returns every worker that was retired. */
async function deploy(t: Test, m: Instance, port: number): Promise<number[]> {
  const keep = startLoad({ port, keepAlive: true, concurrency: 4 });
  const close = startLoad({ port, keepAlive: false, concurrency: 2 });
  t.teardown(() => Promise.all([keep.stop(), close.stop()]));
  const old = [...workersOf(m.masterPid)];
  const more = async () => {
    const at = keep.result.ok + close.result.ok;
    await waitFor('more requests', () => keep.result.ok + close.result.ok > at + 50);
  };
  await more();
  t.equal((await m.cli(['-s', 'reload'])).code, 0, 'reload');
  await waitFor('the first workers gone', () => old.every((p) => !workersOf(m.masterPid).includes(p)));
  old.push(...workersOf(m.masterPid));
  await more();
  const up = await m.cli(['-s', 'upgrade'], { timeoutMs: 90_000 });
  t.equal(up.code, 0, `upgrade: ${up.stdout}${up.stderr}`);
  t.teardown(() => {
    try {
      process.kill(Number(fs.readFileSync(m.pidFile, 'utf8')), 'SIGKILL');
    } catch {}
  });
  await more();
  const [k, c] = await Promise.all([keep.stop(), close.stop()]);
  t.same({ failed: k.failed + c.failed, non2xx: k.non2xx + c.non2xx, errors: [...k.errors, ...c.errors] }, { failed: 0, non2xx: 0, errors: [] }, `0 failed of ${k.ok + c.ok} (answers: ${JSON.stringify([...new Set([...k.bodies.keys(), ...c.bodies.keys()])].map((b) => b.slice(0, 80)))})`);
  return old;
}

/** A line worker `pid` wrote to its stdout, as worker_log_prefix stamps it. */
export function stdoutLine(pid: number, text: string): RegExp {
  return new RegExp(`^\\d{4}/\\d\\d/\\d\\d \\d\\d:\\d\\d:\\d\\d \\[stdout\\] worker ${pid} slot \\d+: ${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm');
}

/**
 * The example `name` (2 workers) answers "<name> <pid>", goes through a reload and an upgrade
 * under load with 0 failures, and its close hook printed `closed(pid)` in every retired worker.
 */
export function testFramework(t: Test, name: string, closed: (pid: number) => string): void {
  t.test(`${name}: served as exported, a reload and an upgrade under load with 0 failures, its close hooks run in every old worker`, async (t) => {
    const port = await freePort();
    const app = name === 'nest' ? compiledNest(t) : name === 'next' ? await builtNext(t) : example(name);
    const m = await startMaster(t, { conf: `worker_processes 2;\nlisten 127.0.0.1:${port};\napp ${app};\n` });
    t.match((await get({ port })).body, new RegExp(`^${name} \\d+\\n$`), 'it answers');
    const old = await deploy(t, m, port);
    const log = fs.readFileSync(m.log, 'utf8');
    for (const pid of old) t.match(log, stdoutLine(pid, closed(pid)), `worker ${pid}: the close hook ran`);
    for (const pid of old) t.match(log, new RegExp(`worker process ${pid} exited with code 0`), `worker ${pid} exited 0`);
  });
}
