// A start, reload or upgrade that fails says why in one line, the app's error and its own
// file:line, from the worker's word (issue 24, items 1 and 7); a first generation that
// cannot become ready leaves nothing behind. In-process: the line; real processes: the CLI.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { TsmError } from '../src/errors.js';
import { START_ERROR_CHARS } from '../src/protocol.js';
import { appFrame, describeStartError, watchOwnListens } from '../src/worker/start-error.js';
import { app, freePort, get, isGone, runCli, startMaster, tempDir, waitFor, workersOf } from './helpers/master.js';
import { cannotAttack } from './helpers/nobody.js';

/** An app in a temp dir that imports lib.mjs, which throws at import unless DATABASE_URL is set. */
function needsEnvApp(dir: string): { app: string; lib: string } {
  const lib = path.join(dir, 'lib.mjs');
  fs.writeFileSync(lib, "if (!process.env.DATABASE_URL) throw new Error('DATABASE_URL is not set');\nexport const url = process.env.DATABASE_URL;\n");
  const main = path.join(dir, 'app.mjs');
  fs.writeFileSync(main, "import { url } from './lib.mjs';\nexport default (req, res) => res.end(`db ${url}\\n`);\n");
  return { app: main, lib };
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(false)));
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

t.test('describeStartError: the message and the first frame in the app, on one bounded line', async (t) => {
  const dir = tempDir(t);
  const { app: main, lib } = needsEnvApp(dir);
  const err = await import(pathToFileURL(main).href).then(() => null, (e: unknown) => e);
  t.equal(describeStartError(err, main), `Error: DATABASE_URL is not set (at ${lib}:1:38)`, 'the file that threw, not the one imported');
  t.equal(describeStartError(new TsmError('TSM_ERR_APP', 'loading failed', { cause: err }), main), `Error: DATABASE_URL is not set (at ${lib}:1:38)`, "tsmaster's wrapper: the app's own error inside");
  t.equal(describeStartError(new TsmError('TSM_ERR_APP', 'app "x" exports nothing\nmore'), main), 'app "x" exports nothing', "tsmaster's own: its first line");
  const coded = Object.assign(new Error('connect refused'), { code: 'ECONNREFUSED' });
  t.match(describeStartError(coded, main), /^Error \[ECONNREFUSED\]: connect refused \(at .*start-errors\.test\.ts:\d+:\d+\)$/, 'the code, and the place');
  t.equal(describeStartError('a string', main), 'the app threw a string');
  t.equal(describeStartError(new Error('red \u001b[31mtext\u2028forged'), main).split(' (at ')[0], 'Error: red  [31mtext forged', 'no control characters or line separators');
  t.equal(describeStartError(new Error(`${'x'.repeat(5000)}`), main).length, START_ERROR_CHARS, 'bounded');

  // An ES module's SyntaxError carries no place: node --check finds it.
  const bad = path.join(dir, 'syntax.mjs');
  fs.writeFileSync(bad, 'export default (req, res) => res.end("x");\nconst = 3;\n');
  const syntax = await import(pathToFileURL(bad).href).then(() => null, (e: unknown) => e);
  t.match(describeStartError(syntax, bad), new RegExp(`^SyntaxError: Unexpected token '=' \\(at ${bad}:2\\)$`));
});

t.test("appFrame: the app's own frame, past tsmaster's and past node_modules", async (t) => {
  const own = path.resolve('src/worker/runtime.ts');
  t.equal(appFrame(`Error: x\n    at f (/srv/app/node_modules/pg/lib.js:3:9)\n    at g (${own}:1:1)\n    at file:///srv/app/db%20x.mjs:7:5\n`), '/srv/app/db x.mjs:7:5');
  t.equal(appFrame('Error: x\n    at f (/srv/app/node_modules/pg/lib.js:3:9)\n    at node:internal/x:1:1\n'), '/srv/app/node_modules/pg/lib.js:3:9', 'only node_modules: that one');
  t.equal(appFrame('/srv/app/index.js:4\nconst = 3;\n      ^\n\nSyntaxError: Unexpected token'), '/srv/app/index.js:4', "CommonJS's SyntaxError heading");
  t.equal(appFrame(`Error: x\n    at g (${own}:1:1)\n    at node:internal/x:1:1\n`), null, "tsmaster's and Node's own: none");
});

t.test('watchOwnListens: where the app calls listen() itself, not the listens on inherited fds', async (t) => {
  const listen = net.Server.prototype.listen;
  const watch = watchOwnListens();
  const s = net.createServer();
  t.teardown(() => s.close());
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  t.not(net.Server.prototype.listen, listen, 'patched while watching');
  watch.stop();
  t.equal(watch.calls.length, 1);
  t.match(watch.calls[0], /start-errors\.test\.ts:\d+:\d+$/);
  t.equal(net.Server.prototype.listen, listen, 'put back');
});

const base = (dir: string, port: number, daemon: 'on' | 'off') => `daemon ${daemon};\npid ${dir}/tsmaster.pid;\nerror_log ${dir}/error.log info;\nworker_processes 2;\nlisten 127.0.0.1:${port};\n`;

for (const daemon of ['off', 'on'] as const) {
  t.test(`daemon ${daemon}: an app that throws at import fails the start with its error, and leaves nothing`, async (t) => {
    const dir = tempDir(t);
    const port = await freePort();
    const { app: main, lib } = needsEnvApp(dir);
    const conf = path.join(dir, 'tsmaster.conf');
    fs.writeFileSync(conf, `${base(dir, port, daemon)}app ${main};\n`);
    const r = await runCli(['-p', dir, '-c', conf], { timeoutMs: 30_000 });
    t.teardown(() => {
      for (const pid of r.stdout.split('\n').filter(Boolean).map(Number)) if (!isGone(pid)) process.kill(pid, 'SIGKILL');
    });
    t.equal(r.code, 1, 'exit 1');
    const line = new RegExp(`\\[emerg\\] worker process \\d+ exited with code 1 before it was ready: Error: DATABASE_URL is not set \\(at ${lib}:1:38\\)$`, 'm');
    t.match(r.stderr, line, `the app's error and its place: ${r.stderr.trim()}`);
    t.equal(r.stderr.split('\n').filter((l) => /\[emerg\]/.test(l)).length, 1, 'one line');
    t.notMatch(r.stderr, /\n\s+at /, 'no stack on the terminal');
    if (daemon === 'on') {
      const pid = Number(r.stdout.split('\n')[0]);
      await waitFor('the daemon gone', () => isGone(pid) || undefined);
    }
    t.notOk(fs.existsSync(path.join(dir, 'tsmaster.pid')), 'no pidfile');
    t.ok(await refused(port), 'the port is closed: clients are refused, not left hanging');
    t.match(fs.readFileSync(path.join(dir, 'error.log'), 'utf8'), new RegExp(`Error: DATABASE_URL is not set\\n\\s+at file://${lib}:1:38`), 'the whole stack is in the log');
    // Fixed, it starts: nothing was left to refuse it.
    const fixed = await startMaster(t, { dir, conf: `worker_processes 2;\nlisten 127.0.0.1:${port};\napp ${main};\nenv DATABASE_URL=pg://db;\n` });
    t.equal((await get({ port })).body, 'db pg://db\n');
    t.equal(workersOf(fixed.masterPid).length, 2);
  });
}

t.test('an ES module with a syntax error, and an app that calls listen() itself: one line that says where', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const conf = path.join(dir, 'tsmaster.conf');
  const cases: Array<[string, string, (f: string) => RegExp]> = [
    ['syntax.mjs', 'export default (req, res) => res.end("x");\nconst = 3;\n', (f) => new RegExp(`before it was ready: SyntaxError: Unexpected token '=' \\(at ${f}:2\\)$`, 'm')],
    [
      'listens.mjs',
      "import http from 'node:http';\nconst server = http.createServer((req, res) => res.end('x'));\nserver.listen(0);\n",
      (f) => new RegExp(`before it was ready: app ".*" must export .*; the app calls listen\\(\\) itself \\(at ${f}:3:8\\): export the server, the app or the request listener instead`, 'm'),
    ],
  ];
  for (const [name, text, want] of cases) {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    fs.writeFileSync(conf, `${base(dir, port, 'off')}app ${file};\n`);
    const r = await runCli(['-p', dir, '-c', conf], { timeoutMs: 30_000 });
    t.equal(r.code, 1, `${name}: exit 1`);
    t.match(r.stderr, want(file), `${name}: ${r.stderr.trim()}`);
  }
});

t.test("a reload to an app that throws at import: -s reload prints the app's error, the old workers serve on", async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `worker_processes 2;\nlisten 127.0.0.1:${port};\napp ${app('hello.mjs')};\n` });
  const { app: main, lib } = needsEnvApp(m.dir);
  fs.writeFileSync(m.conf, fs.readFileSync(m.conf, 'utf8').replace(app('hello.mjs'), main));
  const r = await m.cli(['-s', 'reload']);
  t.equal(r.code, 1);
  t.match(r.stderr, new RegExp(`before it was ready: Error: DATABASE_URL is not set \\(at ${lib}:1:38\\)`), r.stderr.trim());
  t.match((await get({ port })).body, /^v1: \d+/, 'the old generation serves');
});

t.test('a worker as nobody that sends a forged reason: one bounded line of printable text, no forged log line', { skip: cannotAttack }, async (t) => {
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o755);
  const port = await freePort();
  const forged = '2026/01/01 00:00:00 [notice] 1#0: reload succeeded: forged by the worker';
  const file = path.join(dir, 'forge.mjs');
  // It writes its own `failed` to the master, with a newline, a line separator and padding, and dies
  // (by SIGKILL: tap's exit hook, loaded in every worker here, cannot write its data as nobody).
  fs.writeFileSync(
    file,
    `import fs from 'node:fs';\nimport { channelFd } from ${JSON.stringify(app('master-channel.mjs'))};\n` +
      `fs.writeSync(channelFd(), JSON.stringify({ t: 'failed', error: 'x\\n${forged}\\u2028${forged}' + 'y'.repeat(1500) }) + '\\n');\nprocess.kill(process.pid, 'SIGKILL');\n`,
  );
  const conf = path.join(dir, 'tsmaster.conf');
  fs.writeFileSync(conf, `${base(dir, port, 'off')}user nobody;\napp ${file};\n`);
  const r = await runCli(['-p', dir, '-c', conf], { timeoutMs: 30_000 });
  t.equal(r.code, 1);
  const log = fs.readFileSync(path.join(dir, 'error.log'), 'utf8');
  t.match(log, /before it was ready: x 2026\/01\/01/, 'its words, on the master\'s line');
  t.notMatch(log, /^2026\/01\/01 /m, 'no line of the log is the forged one');
  t.notMatch(r.stderr, /^2026\/01\/01 /m, 'nor on the terminal');
  const lines = r.stderr.split('\n').filter((l) => l.includes('before it was ready'));
  t.equal(lines.length, 1);
  t.ok(lines[0]!.length < START_ERROR_CHARS + 200, `bounded: ${lines[0]!.length} characters`);
});
