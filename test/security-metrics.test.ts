// metrics_listen and the workers' channel under attack (issue 21, items 1, 5, 6, 9): network
// clients as nobody that pipeline or flood scrapes, and worker apps run as nobody that flood
// their channel or lie in their heartbeats. Each attack runs while the master is probed: every
// probe must answer, and the master must stay small.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { Channel, type Message } from '../src/channel.js';
import { ask } from '../src/control/client.js';
import { MAX_LABEL_VALUE, validAppFamilies } from '../src/metrics/master-metrics.js';
import { headEnd } from '../src/metrics/server.js';
import { rssBytes } from '../src/proc.js';
import { app, freePort, get, sleep, startMaster, tempDir, waitFor, waitForAnswer, type Instance } from './helpers/master.js';
import { cannotAttack, daemonAsNobody } from './helpers/nobody.js';

const MB = 1024 * 1024;
/** The bar of the issue: what the master may grow to under any of these attacks. */
const MAX_MASTER_RSS = 300 * MB;

/**
 * Python as nobody against metrics_listen at argv[1] for argv[3] seconds, with argv[4]
 * connections. `pipeline`: each writes bursts of 20,000 `GET /metrics` and never reads,
 * connecting again when the master closes it. `scrape`: each scrapes /metrics over and over,
 * reading the answers. Prints `ready`, then how many connections and answers it had.
 */
const ATTACK = `import json, socket, sys, threading, time
port, mode, secs, conns = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
burst = b"GET /metrics HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" * 20000
scrape = b"GET /metrics HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n"
stop = time.time() + secs
stats = {"connections": 0, "answers": 0}
def attack():
    while time.time() < stop:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=1)
        except OSError:
            time.sleep(0.01); continue
        stats["connections"] += 1
        try:
            if mode == "pipeline":
                while time.time() < stop: s.sendall(burst)
            else:
                s.sendall(scrape)
                while s.recv(65536): pass
                stats["answers"] += 1
        except OSError: pass
        s.close()
threads = [threading.Thread(target=attack) for _ in range(conns)]
print("ready", flush=True)
for th in threads: th.start()
for th in threads: th.join()
print(json.dumps(stats), flush=True)
time.sleep(60)`;

/** The attack as nobody; resolves with its figures once it is over. */
async function attack(t: Tap, port: number, mode: 'pipeline' | 'scrape', seconds: number, connections: number): Promise<() => Promise<{ connections: number; answers: number }>> {
  const child = await daemonAsNobody(t, ATTACK, String(port), mode, String(seconds), String(connections));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  return () => waitFor('the attack to end', () => /\{.*\}/.exec(out)?.[0], (seconds + 30) * 1000).then((s) => JSON.parse(s) as { connections: number; answers: number });
}
type Tap = Parameters<typeof startMaster>[0];

/** The master's loop answers a control-socket ping within `ms`. */
async function loopAnswers(m: Instance, ms: number): Promise<boolean> {
  try {
    const res = await ask(`${m.pidFile}.sock`, { cmd: 'ping' }, ms);
    return res.ok && 'pong' in res && res.pong === m.masterPid;
  } catch {
    return false;
  }
}

/**
 * Every 0.5 s for `ms`: /healthz on `metrics` with a 1 s timeout, a control-socket ping with
 * the same, and the master's RSS. Returns the probes that failed and the largest RSS seen.
 */
async function probe(m: Instance, metrics: number, ms: number): Promise<{ probes: number; failed: string[]; maxRss: number }> {
  const failed: string[] = [];
  let maxRss = 0;
  let probes = 0;
  for (const end = Date.now() + ms; Date.now() < end; ) {
    const next = sleep(500);
    probes++;
    const [health, ping] = await Promise.all([get({ port: metrics, path: '/healthz', timeoutMs: 1000 }).then((r) => String(r.status), (err: Error) => err.message), loopAnswers(m, 1000)]);
    if (health !== '200') failed.push(`/healthz: ${health}`);
    if (!ping) failed.push('control ping: no answer within 1 s');
    maxRss = Math.max(maxRss, rssBytes(m.masterPid) ?? 0);
    await next;
  }
  return { probes, failed, maxRss };
}

function openDir(t: Tap): string {
  const dir = tempDir(t, 'tsm-secm-');
  fs.chmodSync(dir, 0o755);
  return dir;
}

async function start(t: Tap, body: string): Promise<{ m: Instance; port: number; metrics: number }> {
  const port = await freePort();
  const metrics = await freePort();
  const m = await startMaster(t, { dir: openDir(t), conf: `listen 127.0.0.1:${port};\nmetrics_listen 127.0.0.1:${metrics};\n${body}` });
  return { m, port, metrics };
}

const mb = (bytes: number) => `${Math.round(bytes / MB)} MB`;

t.test('validAppFamilies: a label value longer than MAX_LABEL_VALUE drops its family', async (t) => {
  const family = (value: string) => ({ name: 'app_x', help: 'h', type: 'gauge', aggregator: 'sum', values: [{ value: 1, labels: { path: value } }] });
  t.equal(validAppFamilies([family('x'.repeat(MAX_LABEL_VALUE))])!.length, 1, 'at the cap: kept');
  t.same(validAppFamilies([family('x'.repeat(MAX_LABEL_VALUE + 1))]), [], 'over it: dropped');
  const many = { ...family('a'), values: Array.from({ length: 11 }, (_, i) => ({ value: i, labels: { i: String(i) } })) };
  t.equal(validAppFamilies([many], 10), null, "over the worker's share of a scrape's series");
});

t.test('channel: each line is bounded by its type before it is kept or parsed', async (t) => {
  const dir = tempDir(t);
  const sock = path.join(dir, 'ch.sock');
  const got: Message[] = [];
  const problems: string[] = [];
  let metricsBudget = 0;
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(sock, r));
  t.teardown(() => server.close());
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const peer = net.connect(sock);
  t.teardown(() => peer.destroy());
  const ch = new Channel(await accepted, (msg) => got.push(msg), { max: (type) => (type === 'metrics' ? metricsBudget : type === 'pong' ? 100 : null), skip: new Set(['metrics']) }, (why) => problems.push(why));
  const send = async (text: string) => {
    const before = got.length + problems.length;
    peer.write(text);
    await waitUntilSettled(() => got.length + problems.length, before);
  };
  await send('{"t":"pong","seq":1}\n');
  t.same(got.pop(), { t: 'pong', seq: 1 }, 'a short line of a known type is delivered');
  await send('{"t":"metrics","seq":1,"metrics":[]}\n{"t":"pong","seq":2}\n');
  t.same(got, [{ t: 'pong', seq: 2 }], 'a metrics answer nobody waits for is dropped, silently; the next line goes on');
  metricsBudget = 40;
  await send(`{"t":"metrics","seq":2,"metrics":["${'x'.repeat(100)}"]}\n{"t":"metrics","seq":3,"metrics":[]}\n`);
  t.same(got.pop(), { t: 'metrics', seq: 3, metrics: [] }, 'an answer within its budget is delivered');
  t.same(problems.pop(), 'a "metrics" message longer than 40 bytes was dropped', 'one over it is dropped, and said');
  await send('{"t":"pong","t":"metrics"}\nnot json at all\n{"t":"hello"}\n');
  t.same(problems, ['a message that is not JSON of a known type was dropped'], 'a second t, text, an unknown type: dropped, said once');
  t.equal(got.length, 1, 'nothing of them delivered');
  await send(`{"t":"pong","seq":3,"x":"${'x'.repeat(200)}"}\n`);
  t.same(problems.pop(), 'a "pong" message longer than 100 bytes: channel closed', 'a line of another type over its bound closes the channel');
  await waitFor('closed', () => !ch.connected || undefined);
});

/** Wait until `count()` moved past `before` and then stayed put for a moment. */
async function waitUntilSettled(count: () => number, before: number): Promise<void> {
  await waitFor('the channel to read', () => count() > before || undefined, 5000);
  await sleep(50);
}

t.test('headEnd: the blank line after a head, CRLF or LF, looked for within the head limit only', async (t) => {
  const end = (text: string) => headEnd(Buffer.from(text, 'latin1'));
  t.same(end('GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /next'), { index: 23, length: 4 });
  t.same(end('GET / HTTP/1.1\n\n'), { index: 14, length: 2 }, 'bare LF');
  t.same(end('GET / HTTP/1.1\n\r\n'), { index: 14, length: 3 });
  t.equal(end('GET / HTTP/1.1\r\nHost: x\r\n'), null, 'not all there yet');
  t.equal(end(`GET / HTTP/1.1\r\nX: ${'y'.repeat(9000)}\r\n\r\n`), null, 'past 8 KiB: no head (431)');
});

t.test('pipelining on metrics_listen: a few requests ahead get an answer each; a client that sends far more than it reads is closed', async (t) => {
  const { metrics } = await start(t, `worker_processes 1;\napp ${app('metrics-app.mjs')};\n`);
  // Writes `chunk` `times` times, `everyMs` apart, reads what comes for 1.5 s, then says what it got.
  const talk = (chunk: string, times: number, everyMs: number) =>
    new Promise<{ answers: number; closed: boolean }>((resolve) => {
      const s = net.connect(metrics, '127.0.0.1');
      let text = '';
      let closed = false;
      s.setEncoding('latin1');
      s.on('data', (d: string) => (text += d));
      s.on('error', () => undefined);
      s.on('close', () => (closed = true));
      let sent = 0;
      const writer = setInterval(() => {
        if (sent++ < times && !closed) s.write(chunk);
      }, everyMs);
      setTimeout(() => {
        clearInterval(writer);
        s.destroy();
        resolve({ answers: text.split('HTTP/1.1 200 OK').length - 1, closed });
      }, 1500);
    });
  const request = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
  t.same(await talk(request.repeat(3), 1, 10), { answers: 3, closed: false }, 'three pipelined requests: three answers, the connection stays');
  // 7 KB of requests every 20 ms, never waiting for the answers: each write was once a new
  // read that reset the count, and what it sent piled up in the master.
  const flood = await talk(request.repeat(200), 50, 20);
  t.ok(flood.closed, `the master closed it (after ${flood.answers} answer(s))`);
});

t.test('pipelined /metrics floods from 16 connections (as nobody): probes and -s status answer, the master stays small', { skip: cannotAttack }, async (t) => {
  const { m, metrics } = await start(t, `worker_processes 2;\napp ${app('metrics-app.mjs')};\n`);
  const before = rssBytes(m.masterPid)!;
  const done = await attack(t, metrics, 'pipeline', 10, 16);
  const probing = probe(m, metrics, 10_000);
  await sleep(4000);
  const status = await m.cli(['-s', 'status'], { timeoutMs: 30_000 });
  const { probes, failed, maxRss } = await probing;
  const figures = await done();
  t.ok(figures.connections >= 16, `the attack ran: ${figures.connections} connections`);
  t.equal(status.code, 0, `-s status answers during the attack: ${status.stderr}`);
  t.same(failed, [], `${probes} probes of /healthz and the control socket, every one answered within 1 s`);
  t.ok(maxRss < MAX_MASTER_RSS, `master RSS ${mb(before)} before, at most ${mb(maxRss)} during the attack`);
  t.equal((await get({ port: metrics, path: '/metrics' })).status, 200, 'and it scrapes afterwards');
});

t.test('8 workers (as nobody) answering 10,000 series of 780-byte labels to 32 concurrent scrapes: probes answer, the master stays small', { skip: cannotAttack }, async (t) => {
  const { m, metrics } = await start(t, `user nobody;\nworker_processes 8;\napp ${app('metrics-flood.mjs')};\n`);
  const before = rssBytes(m.masterPid)!;
  const done = await attack(t, metrics, 'scrape', 8, 32);
  const { probes, failed, maxRss } = await probe(m, metrics, 8000);
  const figures = await done();
  t.ok(figures.answers >= 32, `the attack ran: ${figures.answers} scrapes answered`);
  t.same(failed, [], `${probes} probes of /healthz and the control socket, every one answered within 1 s`);
  t.ok(maxRss < MAX_MASTER_RSS, `master RSS ${mb(before)} before, at most ${mb(maxRss)} during the attack`);
  const body = (await get({ port: metrics, path: '/metrics' })).body;
  t.match(body, /^tsmaster_workers\{state="ready"\} 8$/m, "the master's own metrics are served");
  t.notMatch(body, /app_flood/, 'the flood is not');
  t.ok(m.lines().some((l) => /^worker process \d+: a "metrics" message longer than 524288 bytes was dropped$/.test(l.text)), 'the master says it dropped answers over a worker\'s share (4 MiB / 8)');
});

t.test('4 workers (as nobody) flooding their channel with 7 MiB lines: the loop answers, the master stays small', { skip: cannotAttack }, async (t) => {
  const { m, port, metrics } = await start(t, `user nobody;\nworker_processes 4;\napp ${app('channel-flood.mjs')};\n`);
  const before = rssBytes(m.masterPid)!;
  const { probes, failed, maxRss } = await probe(m, metrics, 8000);
  t.same(failed, [], `${probes} probes of /healthz and the control socket while 4 workers send unasked metrics answers, every one answered within 1 s`);
  t.ok(maxRss < MAX_MASTER_RSS, `master RSS ${mb(before)} before, at most ${mb(maxRss)} during the flood`);
  const after = m.lines().length;
  t.match((await get({ port, path: '/long-pong' })).body, /^channel-flood \d+/);
  const closed = await m.waitLog(/^worker process \d+: a "pong" message longer than 1024 bytes: channel closed$/, { after });
  t.equal(closed.level, 'warn', 'a heartbeat line longer than a heartbeat needs closes that worker\'s channel');
  await m.waitLog(/^start worker process \d+ \(generation 1/, { after });
  await waitForAnswer(port);
  t.ok(await loopAnswers(m, 1000), 'the loop answers');
});

t.test('a worker (as nobody) that heartbeats rss 0 and 2^53 requests is recycled by worker_max_memory and counts no more than it could serve', { skip: cannotAttack }, async (t) => {
  const { m, port, metrics } = await start(t, `user nobody;\nworker_processes 1;\nworker_max_memory 120m;\napp ${app('heartbeat-lies.mjs')};\n`);
  const startedAt = Date.now();
  await sleep(1500); // lies told for a while
  const text = (await get({ port: metrics, path: '/metrics' })).body;
  const total = Number(/^tsmaster_requests_total (\S+)$/m.exec(text)?.[1]);
  const bound = (Date.now() - startedAt + 5000) * 1000;
  t.ok(Number.isSafeInteger(total) && total <= bound, `tsmaster_requests_total ${total}: no more than a million a second since the start (${bound})`);
  for (let i = 0; i < 3; i++) await get({ port, path: '/grow' });
  const over = await m.waitLog(/^worker process \d+ uses \d+ bytes, over worker_max_memory \d+: replacing it$/, { timeoutMs: 20_000 });
  t.equal(over.level, 'warn', 'replaced by what the kernel says it uses, not by what it says');
  t.notOk(m.lines().some((l) => /below what a fresh worker uses/.test(l.text)), 'its huge "ready" RSS did not turn worker_max_memory off');
});

t.test('an honest app whose metrics are over its share of a scrape: left out whole, said once, the master\'s own served', async (t) => {
  const { m, metrics } = await start(t, `worker_processes 1;\napp ${app('metrics-big.mjs')};\n`);
  const body = (await get({ port: metrics, path: '/metrics' })).body;
  t.match(body, /^tsmaster_workers\{state="ready"\} 1$/m, "the master's own metrics");
  t.notMatch(body, /app_big/, "the app's are left out");
  const said = await m.waitLog(/^worker process \d+: its app metrics \(\d+ bytes\) are over its share of a scrape \(1048576 bytes\): left out$/);
  t.equal(said.level, 'warn', 'at warn');
  await sleep(1100);
  await get({ port: metrics, path: '/metrics' });
  t.equal(m.lines().filter((l) => /over its share of a scrape/.test(l.text)).length, 1, 'said once for the worker');
});
