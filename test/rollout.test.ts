// worker_reload_batch: reloads that replace workers a few at a time, with real masters under
// load that never retries (the batch machine's steps in-process are in step.test.ts).
import fs from 'node:fs';
import t, { type Test } from 'tap';
import { askStatus } from '../src/control/client.js';
import { isAlive } from '../src/proc.js';
import { parseText } from '../src/config/parser.js';
import { buildConfig } from '../src/config/build.js';
import { batchSize } from '../src/master/batches.js';
import { startLoad, type Load } from './helpers/load.js';
import { app, childrenOf, freePort, startMaster, waitFor, workersOf, type Instance } from './helpers/master.js';

function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\\0', ' ');
  } catch {
    return '';
  }
}

function config(directives: string) {
  const file = '/etc/tsmaster/test.conf';
  return buildConfig(parseText(`${directives}\nlisten 8080;\nexec /bin/true;\n`, file, { includeBase: '/etc/tsmaster' }), { file, prefix: '/etc/tsmaster' });
}

t.test('batchSize: a count, a share of the workers (rounded up), or all at once', async (t) => {
  t.equal(batchSize(config(''), 4), null, 'off by default');
  t.equal(batchSize(config('worker_reload_batch off;'), 4), null);
  t.equal(batchSize(config('worker_reload_batch 1;'), 4), 1);
  t.equal(batchSize(config('worker_reload_batch 4;'), 4), null, 'a batch of all the workers is no batch');
  t.equal(batchSize(config('worker_reload_batch 25%;'), 4), 1);
  t.equal(batchSize(config('worker_reload_batch 30%;'), 4), 2, 'rounded up');
  t.equal(batchSize(config('worker_reload_batch 1%;'), 4), 1, 'at least one');
  for (const bad of ['0', '101%', 'x', '%', '-1']) {
    t.throws(() => config(`worker_reload_batch ${bad};`), /invalid value/, `refused: ${bad}`);
  }
});

/**
 * The most processes `count` saw alive at once while `during` ran. A scan of /proc takes a
 * while: a worker that exits during it and its replacement started after it could both be
 * seen, so only those still alive when the scan is over are counted.
 */
/**
 * Worker processes only: a master also has short-lived children of its own (pidusage's
 * getconf on the first status request), which are not workers.
 */
const isWorker = (pid: number) => /tsmaster: worker process|worker\/main\.js/.test(cmdline(pid));

async function peakAlive(count: () => number[], during: () => Promise<void>): Promise<number> {
  let peak = 0;
  const sample = () => (peak = Math.max(peak, count().filter((p) => isAlive(p) && isWorker(p)).length));
  const timer = setInterval(sample, 10);
  try {
    await during();
  } finally {
    clearInterval(timer);
  }
  sample();
  return peak;
}

const peakChildren = (masterPid: number, during: () => Promise<void>) => peakAlive(() => childrenOf(masterPid), during);

/** A master with 4 workers and worker_reload_batch 1, under keep-alive and close load that flows. */
async function batchedUnderLoad(t: Test): Promise<{ m: Instance; loads: Load[] }> {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 4;\nworker_reload_batch 1;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  const loads = [startLoad({ port, keepAlive: true, concurrency: 4 }), startLoad({ port, keepAlive: false, concurrency: 4 })];
  t.teardown(() => Promise.all(loads.map((l) => l.stop())));
  await waitFor('traffic', () => loads.every((l) => l.result.ok > 20));
  return { m, loads };
}

async function zeroFailed(t: Test, loads: Load[]) {
  const [k, c] = await Promise.all(loads.map((l) => l.stop()));
  t.same({ failed: k!.failed, non2xx: k!.non2xx, errors: k!.errors }, { failed: 0, non2xx: 0, errors: [] }, `keep-alive: zero failed of ${k!.ok}`);
  t.same({ failed: c!.failed, non2xx: c!.non2xx, errors: c!.errors }, { failed: 0, non2xx: 0, errors: [] }, `close: zero failed of ${c!.ok}`);
}

t.test('worker_processes 4, worker_reload_batch 1: a reload never has more than 5 workers, fails no request', async (t) => {
  const { m, loads } = await batchedUnderLoad(t);
  const first = workersOf(m.masterPid);
  const peak = await peakChildren(m.masterPid, async () => {
    const r = await m.cli(['-s', 'reload']);
    t.equal(r.code, 0, `reload: ${r.stderr}`);
  });
  t.ok(peak <= 5, `at most 5 workers alive at once (saw ${peak})`);
  await zeroFailed(t, loads);
  await waitFor('4 new workers', () => workersOf(m.masterPid).length === 4 || undefined);
  t.same(workersOf(m.masterPid).filter((p) => first.includes(p)), [], 'every worker is new');
  for (let k = 1; k <= 4; k++) t.ok(m.lines().some((l) => l.text.startsWith(`reload: batch ${k} of 4: generation 2 starts slot(s) ${k - 1}`)), `batch ${k} of 4 in the log`);
});

t.test('a release broken in the third batch: the reload fails, says how far it got, and the old release takes every slot back', async (t) => {
  const { m, loads } = await batchedUnderLoad(t);
  fs.writeFileSync(m.conf, fs.readFileSync(m.conf, 'utf8').replace(app('hello.mjs'), `${app('broken-from-slot.mjs')};\nenv CRASH_FROM_SLOT=2`));
  let r = { code: null as number | null, stderr: '' };
  const peak = await peakChildren(m.masterPid, async () => {
    r = await m.cli(['-s', 'reload']);
  });
  t.equal(r.code, 1, 'the reload exits 1');
  t.match(r.stderr, /worker process \d+ of generation 2 exited with code 1 before it was ready: Error: broken release in slot [23] \(at .*broken-from-slot\.mjs:5:9\) \(in batch 3 of 4\)/, `and says why and how far it got: ${r.stderr.trim()}`);
  t.ok(peak <= 5, `at most 5 workers alive at once (saw ${peak})`);
  await zeroFailed(t, loads);
  await waitFor('4 workers of generation 1', async () => {
    const st = await askStatus(`${m.pidFile}.sock`).catch(() => null);
    if (!st) return undefined;
    return st.workers.length === 4 && st.workers.every((w) => w.generation === 1 && w.state === 'ready') ? st : undefined;
  });
  t.pass('generation 1 serves on all 4 slots again');
  t.ok(m.events().some((e) => e.event === 'reload-failed' && e.serving === 1 && /\(in batch 3 of 4\)$/.test(e.reason)), 'logged: generation 1 serves, and how far the reload got');
});

/** Every worker of an upgrade's two masters (the new master itself not counted). */
function upgradeWorkers(oldPid: number): number[] {
  const kids = childrenOf(oldPid);
  const masters = kids.filter((p) => /^tsmaster: master process|cli\/main\.js/.test(cmdline(p)));
  return [...kids.filter((p) => !masters.includes(p)), ...masters.flatMap((p) => childrenOf(p))];
}

t.test('a batched upgrade: the new master starts a worker at a time, the old one drains one for each; at most 5 workers', async (t) => {
  const { m, loads } = await batchedUnderLoad(t);
  const oldPid = m.masterPid;
  const peak = await peakAlive(() => upgradeWorkers(oldPid), async () => {
    const r = await m.cli(['-s', 'upgrade'], { timeoutMs: 120_000 });
    t.equal(r.code, 0, `upgrade: ${r.stderr}`);
  });
  t.ok(peak <= 5, `at most 5 workers alive at once (saw ${peak})`);
  await zeroFailed(t, loads);
  for (let k = 1; k <= 3; k++) t.ok(m.lines().some((l) => l.pid === oldPid && new RegExp(`has batch ${k} of 4 ready; draining slot\\(s\\) ${k - 1}$`).test(l.text)), `the old master drained slot ${k - 1} for batch ${k}`);
});

t.test('a batched upgrade rolled back in its third batch: the old master has its 4 workers again', async (t) => {
  const { m, loads } = await batchedUnderLoad(t);
  const oldPid = m.masterPid;
  const after = m.lines().length;
  m.signal('SIGUSR2');
  const third = await m.waitLog(/^upgrade: batch 3 of 4: starting slot\(s\) 2$/, { after });
  process.kill(third.pid, 'SIGKILL');
  await m.waitEvent('rolled-back', {}, { after, pid: oldPid });
  await waitFor('4 workers of the old master, all ready', async () => {
    const st = await askStatus(`${m.pidFile}.sock`).catch(() => null);
    return st && st.pid === oldPid && st.workers.length === 4 && st.workers.every((w) => w.state === 'ready') ? st : undefined;
  }, 30_000);
  t.pass('the old master serves with all 4 workers');
  await zeroFailed(t, loads);
});

