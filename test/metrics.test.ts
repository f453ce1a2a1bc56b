// metrics_listen: Prometheus metrics, health and readiness from the master's own socket,
// app metrics summed over the workers, worker ids in the environment, a real Prometheus.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t, { type Test as Tap } from 'tap';
import { validAppFamilies } from '../src/metrics/master-metrics.js';
import { cannotAttack } from './helpers/nobody.js';
import { fixtures, freePort, get, isGone, killAll, sleep, startMaster, tempDir, waitFor, waitForAnswer, workersOf, type Instance } from './helpers/master.js';

const app = path.join(fixtures, 'apps', 'metrics-app.mjs');
/** A skip reason when the binary is missing, false when it runs: a missing tool never passes silently. */
const missing = (bin: string) => (spawnSync(bin, ['--version']).status === 0 ? false : `${bin} is not installed (Debian: apt-get install prometheus)`);
const noPromtool = missing('promtool');
const noPrometheus = missing('prometheus');

/** `promtool check metrics` on an exposition, as a subtest that says why when it is skipped. */
function promtoolCheck(t: Tap, body: string): Promise<unknown> {
  return t.test('promtool check metrics accepts the exposition', { skip: noPromtool }, async (t) => {
    const check = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
    t.equal(check.status, 0, `promtool check metrics: ${check.stdout}${check.stderr}`);
  });
}

/** One sample's value from an exposition, by its name and label text (`{a="b"}` or ''). */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

async function scrape(port: number): Promise<string> {
  const r = await get({ port, path: '/metrics' });
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  return r.body;
}

async function start(t: Parameters<typeof startMaster>[0], extra = '', workers = 2, appFile = app): Promise<{ m: Instance; port: number; metrics: number }> {
  const port = await freePort();
  const metrics = await freePort();
  const m = await startMaster(t, { conf: `worker_processes ${workers};\nlisten 127.0.0.1:${port};\nmetrics_listen 127.0.0.1:${metrics};\n${extra}app ${appFile};\n` });
  return { m, port, metrics };
}

t.test('validAppFamilies: what a worker sends is rebuilt, and a bad family dropped, before it is aggregated', async (t) => {
  const good = { name: 'app_hits_total', help: 'h', type: 'counter', values: [{ value: 1, labels: { route: '/' } }], aggregator: 'sum' };
  t.same(validAppFamilies([good]), [good]);
  t.same(validAppFamilies([]), []);
  t.equal(validAppFamilies('x'), null, 'not an array');
  t.equal(validAppFamilies([good, { ...good, values: Array(10_000).fill({ value: 1 }) }]), null, 'bounded');
  const dropped: Array<[string, unknown]> = [
    ['the master\'s own names are not the app\'s', { ...good, name: 'tsmaster_requests_total' }],
    ['a name Prometheus would reject', { ...good, name: 'bad name' }],
    ['an unknown type', { ...good, type: 'untyped' }],
    ['a value that is not a number', { ...good, values: [{ value: '1' }] }],
    ['a forged series name', { ...good, values: [{ value: 1, metricName: 'tsmaster_workers{state="ready"} 42\n#' }] }],
    ['a label value that is not a string or number', { ...good, values: [{ value: 1, labels: { a: ['"}\ntsmaster_x 1'] } }] }],
    ['a bad label name', { ...good, values: [{ value: 1, labels: { 'a"b': 'x' } }] }],
    ['an unknown aggregator', { ...good, aggregator: 'boom' }],
  ];
  for (const [why, family] of dropped) t.same(validAppFamilies([family, good]), [good], why);
  const [hist] = validAppFamilies([{ name: 'app_seconds', help: 'x\ny', type: 'histogram', values: [{ value: 2, labels: { le: 0.5 }, metricName: 'app_seconds_bucket' }] }])!;
  t.same(hist, { name: 'app_seconds', help: 'x y', type: 'histogram', aggregator: 'sum', values: [{ value: 2, labels: { le: '0.5' }, metricName: 'app_seconds_bucket' }] }, 'histogram series names are kept, labels as strings, help on one line');
});

t.test('/metrics, /healthz, /readyz and 404 on the master\'s own socket, never the workers\'', async (t) => {
  // metrics-app plus /block, which busy-waits: the event-loop delay must show it.
  const { m, port, metrics } = await start(t, '', 2, path.join(fixtures, 'apps', 'metrics-block.mjs'));
  const served = new Map<string, number>();
  for (let i = 0; i < 20; i++) {
    const pid = /^ok (\d+)/.exec((await get({ port })).body)?.[1] ?? 'no pid';
    served.set(pid, (served.get(pid) ?? 0) + 1);
  }
  const perSlot = (text: string) => ['0', '1'].map((slot) => sample(text, 'tsmaster_worker_requests_total', `{slot="${slot}",generation="1"}`) ?? 0);
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  // The per-worker counts come with the heartbeat, every second.
  const body = await waitForMetric(metrics, (text) => (sample(text, 'tsmaster_requests_total') ?? 0) >= 20 && sum(perSlot(text)) >= 20);
  t.equal(sample(body, 'tsmaster_requests_total'), 20, 'requests_total: the 20 requests');
  const answered = [...served.values(), 0, 0].slice(0, 2).sort((a, b) => a - b);
  t.same(perSlot(body).sort((a, b) => a - b), answered, `worker_requests_total{slot,generation}: what each worker answered (${[...served.values()].join(' + ')})`);
  t.equal(sample(body, 'tsmaster_build_info', `{version="${JSON.parse(fs.readFileSync(path.join(fixtures, '..', '..', 'package.json'), 'utf8')).version}",node="${process.version}"}`), 1, 'build_info');
  t.equal(sample(body, 'tsmaster_generation'), 1);
  t.equal(sample(body, 'tsmaster_workers', '{state="ready"}'), 2);
  t.ok((sample(body, 'tsmaster_start_time_seconds') ?? 0) > 1.7e9, 'start time in seconds');
  for (const slot of ['0', '1']) {
    const l = `{slot="${slot}",generation="1"}`;
    t.ok((sample(body, 'tsmaster_worker_resident_memory_bytes', l) ?? 0) > 1e6, `RSS of slot ${slot}`);
    t.ok((sample(body, 'tsmaster_worker_cpu_seconds_total', l) ?? 0) > 0, `CPU seconds of slot ${slot}`);
    t.ok((sample(body, 'tsmaster_worker_heap_used_bytes', l) ?? 0) > 1e5, `heap of slot ${slot}`);
    const p50 = sample(body, 'tsmaster_worker_event_loop_delay_p50_seconds', l);
    const p99 = sample(body, 'tsmaster_worker_event_loop_delay_p99_seconds', l);
    t.ok(Number.isFinite(p50) && p50! >= 0, `loop delay p50 of slot ${slot}: ${p50}`);
    t.ok(Number.isFinite(p99) && p99! >= p50!, `loop delay p99 of slot ${slot}: ${p99}`);
    t.ok(sample(body, 'tsmaster_worker_connections', l) !== undefined);
  }
  t.equal(sample(body, 'app_workers'), 2, 'the app\'s gauge, summed over the workers');
  await promtoolCheck(t, body);

  // A worker that blocks its loop for 500 ms, 2.5 s before the next scrape (heartbeats come
  // every second): the gauges cover the time since the previous scrape round, so the stall shows.
  const maxes = (text: string) => ['0', '1'].map((slot) => sample(text, 'tsmaster_worker_event_loop_delay_max_seconds', `{slot="${slot}",generation="1"}`) ?? 0);
  const p99s = (text: string) => ['0', '1'].map((slot) => sample(text, 'tsmaster_worker_event_loop_delay_p99_seconds', `{slot="${slot}",generation="1"}`) ?? 0);
  t.equal((await get({ port, path: '/block?ms=500' })).status, 200);
  await sleep(2500);
  const after = (await get({ port: metrics, path: '/metrics' })).body;
  t.ok(Math.max(...maxes(after)) >= 0.4, `the stall is in the next scrape: max ${Math.max(...maxes(after))} s`);
  t.ok(Math.max(...p99s(after)) <= Math.max(...maxes(after)), 'p99 no more than the max');
  const next = await waitForMetric(metrics, (text) => Math.max(...maxes(text)) < 0.25);
  t.ok(Math.max(...p99s(next)) < 0.25, 'and gone from the round after');

  t.equal((await get({ port: metrics, path: '/healthz' })).status, 200);
  t.equal((await get({ port: metrics, path: '/readyz' })).status, 200);
  t.equal((await get({ port: metrics, path: '/nope' })).status, 404);
  t.equal((await get({ port: metrics, path: '/' })).status, 404);
  t.match((await get({ port })).body, /^ok \d+/, 'the app port serves the app');
  t.equal((await get({ port, path: '/metrics' })).body.startsWith('ok '), true, 'and not the metrics');
  const holders = workersOf(m.masterPid).filter((w) => fs.readdirSync(`/proc/${w}/fd`).some((fd) => socketPort(w, fd) === metrics));
  t.same(holders, [], 'no worker holds the metrics socket');
});

/** The local port of the TCP socket on fd `fd` of `pid`, if it is one. */
function socketPort(pid: number, fd: string): number | undefined {
  let link: string;
  try {
    link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
  } catch {
    return undefined;
  }
  const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
  if (!inode) return undefined;
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[9] === inode) return parseInt(f[1]!.split(':')[1]!, 16);
  }
  return undefined;
}

/** The first exposition for which `ok` holds. */
function waitForMetric(port: number, ok: (text: string) => boolean, timeoutMs = 15_000): Promise<string> {
  return waitFor('the metrics to match', async () => {
    const text = await scrape(port);
    return ok(text) ? text : undefined;
  }, timeoutMs);
}

t.test('a worker (as nobody) that lies on its channel cannot forge series or break the exposition', { skip: cannotAttack }, async (t) => {
  const port = await freePort();
  const metrics = await freePort();
  const m = await startMaster(t, { conf: `user nobody;\nworker_processes 1;\nlisten 127.0.0.1:${port};\nmetrics_listen 127.0.0.1:${metrics};\napp ${fixtures}/apps/hostile-metrics.mjs;\n` });
  for (let i = 0; i < 3; i++) await get({ port });
  await sleep(1200); // a few rounds of forged heartbeats
  const body = await scrape(metrics);
  t.equal(sample(body, 'app_ok_total'), 7, 'its well-formed family is served');
  t.notMatch(body, /tsmaster_forged|state="ready"\} 42/, 'no forged series');
  t.notMatch(body, /^app_[xyz]/m, 'the bad families are dropped');
  t.ok(Number.isSafeInteger(sample(body, 'tsmaster_requests_total')), 'the request total stays a count');
  t.equal(sample(body, 'tsmaster_worker_connections', '{slot="0",generation="1"}'), 0, 'connections: null ignored');
  t.equal(m.lines().filter((l) => /a message that is not JSON of a known type was dropped/.test(l.text)).length, 1, 'the line that is not JSON is dropped, said once');
  await promtoolCheck(t, body);
});

t.test('a reload may not make the metrics socket a listen', async (t) => {
  const { m, metrics } = await start(t);
  fs.writeFileSync(m.conf, fs.readFileSync(m.conf, 'utf8').replace(/^metrics_listen .*$/m, `listen 127.0.0.1:${metrics};`));
  const r = await m.cli(['-s', 'reload']);
  t.equal(r.code, 1);
  t.match(r.stderr, /is this master's metrics_listen socket/);
  t.equal((await get({ port: metrics, path: '/healthz' })).status, 200, 'the master still serves its metrics there');
});

t.test('app metrics are summed over 3 workers', async (t) => {
  const { port, metrics } = await start(t, '', 3);
  for (let i = 0; i < 30; i++) await get({ port });
  const body = await scrape(metrics);
  t.equal(sample(body, 'app_hits_total'), 30, '30 requests, wherever each was served');
  t.equal(sample(body, 'app_workers'), 3);
  t.match(body, /^# TYPE app_hits_total counter$/m);
});

t.test('every kind of worker has its slot and generation in the environment', async (t) => {
  const { m, port } = await start(t);
  const seen = new Set<string>();
  for (let i = 0; i < 40 && seen.size < 2; i++) seen.add((await get({ port, path: '/env' })).body.trim());
  t.same([...seen].sort(), ['0 1', '1 1'], 'Node workers: TSMASTER_WORKER_ID 0 and 1, TSMASTER_GENERATION 1');
  const r = await m.cli(['-s', 'reload']);
  t.equal(r.code, 0);
  const after = new Set<string>();
  for (let i = 0; i < 40 && after.size < 2; i++) after.add((await get({ port, path: '/env' })).body.trim());
  t.same([...after].sort(), ['0 2', '1 2'], 'generation 2 after a reload');

  const dir = tempDir(t);
  const out = path.join(dir, 'ids');
  const execPort = await freePort();
  await startMaster(t, {
    dir,
    conf: `worker_processes 2;\nlisten 127.0.0.1:${execPort};\nexec /bin/sh -c "echo $TSMASTER_WORKER_ID.$TSMASTER_GENERATION >> ${out}; exec sleep 600";\n`,
  });
  t.same(fs.readFileSync(out, 'utf8').trim().split('\n').sort(), ['0.1', '1.1'], 'exec workers too');
});

t.test('restart reasons: crash, heartbeat, memory', async (t) => {
  const { m, port, metrics } = await start(t, 'worker_heartbeat_timeout 2s;\nworker_max_memory 120m;\n', 1);
  const reason = (text: string, r: string) => sample(text, 'tsmaster_worker_restarts_total', `{reason="${r}"}`);
  t.equal(reason(await scrape(metrics), 'crash'), 0);

  await get({ port, path: '/crash' }).catch(() => undefined);
  await waitForMetric(metrics, (text) => reason(text, 'crash') === 1);
  t.pass('a crash counts as crash');

  await waitFor('a worker again', () => workersOf(m.masterPid).length === 1 || undefined);
  await waitForAnswer(port);
  const hung = get({ port, path: '/hang' }).catch(() => undefined);
  await waitForMetric(metrics, (text) => reason(text, 'heartbeat') === 1, 30_000);
  await hung;
  t.pass('a hung worker counts as heartbeat');

  await waitForAnswer(port);
  for (let i = 0; i < 4; i++) await get({ port, path: '/grow' });
  const text = await waitForMetric(metrics, (text) => reason(text, 'memory') === 1, 30_000);
  t.equal(reason(text, 'crash'), 1, 'and nothing else counted twice');
  t.equal(reason(text, 'heartbeat'), 1);
});

t.test('reload and upgrade results, and scrapes go on across an upgrade', async (t) => {
  const { m, port, metrics } = await start(t);
  t.equal((await m.cli(['-s', 'reload'])).code, 0);
  const conf = fs.readFileSync(m.conf, 'utf8');
  fs.writeFileSync(m.conf, conf.replace(/^app .*$/m, `app ${path.join(fixtures, 'apps', 'throws.mjs')};`));
  t.equal((await m.cli(['-s', 'reload'])).code, 1, 'a broken app fails the reload');
  t.equal((await m.cli(['-s', 'upgrade'])).code, 1, 'and the upgrade: the new master is never ready');
  fs.writeFileSync(m.conf, conf);
  let text = await scrape(metrics);
  t.equal(sample(text, 'tsmaster_reloads_total', '{result="ok"}'), 1);
  t.equal(sample(text, 'tsmaster_reloads_total', '{result="failed"}'), 1);
  t.equal(sample(text, 'tsmaster_upgrades_total', '{result="failed"}'), 1, 'the old master counts the failed upgrade');

  // A new master that becomes ready, then dies before this one quits: rolled back, not failed.
  const mark = m.lines().length;
  m.signal('SIGUSR2');
  const since = (err: Error) => new Error(`${err.message}; the log since USR2:\n${m.lines().slice(mark).map((l) => `${l.pid} [${l.level}] ${l.text}`).join('\n')}`);
  const ready = await m.waitLog(/^new master process \d+ is ready/, { pid: m.masterPid, after: mark, timeoutMs: 45_000 }).catch((err: Error) => Promise.reject(since(err)));
  const newMaster = Number(/^new master process (\d+)/.exec(ready.text)![1]);
  const phase = (x: string, p: string) => sample(x, 'tsmaster_upgrade_phase', `{phase="${p}"}`);
  text = await waitForMetric(metrics, (x) => phase(x, 'new') === 1);
  t.equal(phase(text, 'none'), 0, 'mid-upgrade, the ready new master serves metrics_listen and says tsmaster_upgrade_phase new');
  process.kill(newMaster, 'SIGKILL');
  await m.waitEvent('rolled-back', {}, { pid: m.masterPid, after: mark }).catch((err: Error) => Promise.reject(since(err)));
  text = await waitForMetric(metrics, (x) => sample(x, 'tsmaster_upgrades_total', '{result="rolled_back"}') === 1);
  t.pass('the old master counts upgrades_total{result="rolled_back"} when its ready new master dies');
  t.equal(sample(text, 'tsmaster_upgrades_total', '{result="failed"}'), 1, 'and not as failed');
  t.equal(sample(text, 'tsmaster_upgrades_total', '{result="ok"}'), 0, 'nor as ok');
  t.equal(phase(text, 'none'), 1, 'and the upgrade phase is none again');
  t.equal((await get({ port: metrics, path: '/readyz' })).status, 200, 'the old master serves again');
  for (let i = 0; i < 10; i++) await get({ port });
  text = await waitForMetric(metrics, (x) => (sample(x, 'tsmaster_requests_total') ?? 0) >= 10);
  const before = sample(text, 'tsmaster_requests_total')!;

  // Scrape and probe all along the upgrade: not one may fail, /readyz never says 503.
  let scrapes = 0;
  const failed: string[] = [];
  let going = true;
  const loop = (async () => {
    while (going) {
      try {
        await scrape(metrics);
        const ready = await get({ port: metrics, path: '/readyz' });
        if (ready.status !== 200) failed.push(`/readyz ${ready.status} ${ready.body.trim()}`);
        scrapes++;
      } catch (err) {
        failed.push((err as Error).message);
      }
      await sleep(20);
    }
  })();
  const up = await m.cli(['-s', 'upgrade']);
  going = false;
  await loop;
  t.equal(up.code, 0, `upgrade: ${up.stderr}`);
  t.same(failed, [], `${scrapes} scrapes and probes during the upgrade, none failed`);
  await waitFor('old master gone', () => isGone(m.masterPid));
  text = await waitForMetric(metrics, (x) => sample(x, 'tsmaster_upgrades_total', '{result="ok"}') === 1);
  t.pass('the new master counts the upgrade once its old master is gone');
  t.ok(sample(text, 'tsmaster_requests_total')! >= before, 'requests_total survives the upgrade');
});

t.test('ready_timeout is a restart reason; /readyz is 503 while no generation is ready, after WINCH too, and 200 after HUP', async (t) => {
  const port = await freePort();
  const metrics = await freePort();
  const dir = tempDir(t);
  const mark = path.join(dir, 'broken');
  const conf = `worker_processes 1;\nlisten 127.0.0.1:${port};\nmetrics_listen 127.0.0.1:${metrics};\n`;
  // It served; once the mark is there, a worker started again never gets ready (start(ctx) never resolves).
  const m = await startMaster(t, { dir, conf: `${conf}ready_timeout 1s;\napp ${fixtures}/apps/breaks-on-mark.mjs;\nenv BREAK_MARK=${mark};\nenv BREAK_MODE=hang;\n` });
  fs.writeFileSync(mark, '');
  process.kill(workersOf(m.masterPid)[0]!, 'SIGKILL');
  const reason = (text: string, r: string) => sample(text, 'tsmaster_worker_restarts_total', `{reason="${r}"}`);
  let probe = await waitFor('/readyz 503', async () => {
    const p = await get({ port: metrics, path: '/readyz' });
    return p.status === 503 ? p : undefined;
  });
  t.match(probe.body, /no ready worker/, 'not ready: generation 1 has no ready worker');
  const text = await waitForMetric(metrics, (x) => (reason(x, 'ready_timeout') ?? 0) >= 1, 30_000);
  t.pass('a worker not ready within ready_timeout counts as ready_timeout');
  t.equal(reason(text, 'crash'), 1, 'not as a crash: the one crash is the kill');
  t.equal(reason(text, 'heartbeat'), 0);
  t.equal(sample(text, 'tsmaster_workers', '{state="ready"}'), 0);

  // A reload to an app that gets ready (default ready_timeout): ready.
  fs.writeFileSync(m.conf, fs.readFileSync(m.conf, 'utf8').replace('ready_timeout 1s;\n', '').replace(/^app .*$/m, `app ${app};`));
  const r = await m.cli(['-s', 'reload']);
  t.equal(r.code, 0, `reload: ${r.stderr}`);
  t.equal((await get({ port: metrics, path: '/readyz' })).status, 200, '200 once a generation serves');

  // WINCH: the workers drain and go, the master stays: nothing serves.
  m.signal('SIGWINCH');
  probe = await waitFor('/readyz 503 after WINCH', async () => {
    const p = await get({ port: metrics, path: '/readyz' });
    return p.status === 503 ? p : undefined;
  });
  t.match(probe.body, /no ready worker/, '503 after WINCH');
  await waitFor('the workers gone', () => workersOf(m.masterPid).length === 0 || undefined);
  t.equal((await get({ port: metrics, path: '/readyz' })).status, 503, 'still 503 with no worker at all');
  t.equal((await get({ port: metrics, path: '/healthz' })).status, 200, '/healthz stays 200');

  // HUP after WINCH starts a generation again.
  m.signal('SIGHUP');
  await waitFor('/readyz 200 after HUP', async () => (await get({ port: metrics, path: '/readyz' })).status === 200 || undefined, 30_000);
  t.pass('200 again after HUP');
  t.match(await waitForAnswer(port), /^ok \d+/, 'and the app answers');
  // Scrapes within half a second of a rendering share it: the count shows on a later round.
  await waitForMetric(metrics, (x) => sample(x, 'tsmaster_workers', '{state="ready"}') === 1);
  t.pass('one ready worker in tsmaster_workers');
});

t.test('connections still open in a retiring generation', async (t) => {
  // Long enough to outlast a reload on 2 busy CPUs: the metric must see it still open.
  const { m, port, metrics } = await start(t, 'worker_shutdown_timeout 60s;\n', 1);
  const slow = get({ port, path: '/?ms=12000' });
  await sleep(300);
  t.equal((await m.cli(['-s', 'reload'])).code, 0);
  const text = await waitForMetric(metrics, (x) => sample(x, 'tsmaster_draining_connections', '{generation="1"}') === 1);
  t.equal(sample(text, 'tsmaster_generation'), 2, 'generation 2 serves while generation 1 drains its one connection');
  t.equal((await slow).status, 200);
  await waitForMetric(metrics, (x) => sample(x, 'tsmaster_draining_connections', '{generation="1"}') === undefined, 30_000);
  t.pass('gone with the generation');
});

t.test('/readyz is 503 during QUIT while the workers still finish their requests', async (t) => {
  const { m, port, metrics } = await start(t, '', 1);
  const [worker] = workersOf(m.masterPid);
  const slow = get({ port, path: '/?ms=2000' });
  await sleep(300);
  m.signal('SIGQUIT');
  const deadline = Date.now() + 1500;
  let status = 0;
  while (Date.now() < deadline && status !== 503) {
    status = (await get({ port: metrics, path: '/readyz' })).status;
    if (status !== 503) await sleep(20);
  }
  t.equal(status, 503, '/readyz says not ready');
  t.notOk(isGone(worker!), 'while the worker is still there');
  t.equal((await get({ port: metrics, path: '/healthz' })).status, 200, '/healthz stays 200: the master is fine');
  t.equal((await slow).status, 200, 'the request in flight is answered');
  await waitFor('master exit', () => isGone(m.masterPid));
});

t.test('slow clients cannot hold the metrics socket, nor lock probes out', async (t) => {
  const { metrics } = await start(t, '', 1);
  const idle: net.Socket[] = [];
  t.teardown(() => idle.forEach((s) => s.destroy()));
  // More silent connections than the server takes, each sending half a request line.
  let n = 0;
  let allClosed: () => void = () => undefined;
  const closed = new Promise<void>((resolve) => {
    allClosed = resolve;
    setTimeout(resolve, 12_000);
  });
  // More than the 64 the server takes.
  for (let i = 0; i < 70; i++) {
    const s = net.connect(metrics, '127.0.0.1');
    s.on('error', () => undefined);
    s.once('close', () => ++n === 70 && allClosed());
    s.write('GET /metr');
    idle.push(s);
  }
  await sleep(200);
  const probe = await get({ port: metrics, path: '/healthz' });
  t.equal(probe.status, 200, 'a probe gets through at once: the oldest stalled client makes room');
  await closed;
  t.equal(n, idle.length, 'every stalled client was dropped by the deadline');
  t.equal((await get({ port: metrics, path: '/healthz' })).status, 200, 'and the master answers');
});

t.test('a real Prometheus scrapes metrics_listen', { skip: noPrometheus }, async (t) => {
  const { port, metrics } = await start(t);
  for (let i = 0; i < 5; i++) await get({ port });
  const dir = tempDir(t);
  const web = await freePort();
  fs.writeFileSync(
    path.join(dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: tsmaster\n    static_configs:\n      - targets: ['127.0.0.1:${metrics}']\n`,
  );
  const prom = spawn('prometheus', [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${web}`], { stdio: 'ignore' });
  t.teardown(() => killAll([prom.pid!]));
  const query = async (q: string) => {
    const r = await get({ port: web, path: `/api/v1/query?query=${encodeURIComponent(q)}` });
    return JSON.parse(r.body) as { data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
  };
  const up = await waitFor('Prometheus scraped the target', async () => {
    try {
      const res = await query('up{job="tsmaster"}');
      return res.data.result[0]?.value[1] === '1' ? res : undefined;
    } catch {
      return undefined;
    }
  }, 60_000);
  t.equal(up.data.result[0]!.metric.instance, `127.0.0.1:${metrics}`);
  const workers = await waitFor('worker series ingested', async () => {
    const res = await query('tsmaster_workers{state="ready"}');
    return res.data.result.length > 0 ? res : undefined;
  }, 30_000);
  t.equal(workers.data.result[0]!.value[1], '2', 'Prometheus has tsmaster_workers{state="ready"} 2');
  const apps = await query('app_workers');
  t.equal(apps.data.result[0]?.value[1], '2', 'and the app metrics');
});


