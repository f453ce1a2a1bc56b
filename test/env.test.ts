// The workers' environment: env_file read again on every reload and upgrade, env directives
// over it, NODE_APP_INSTANCE beside TSMASTER_WORKER_ID, a broken env file refused with its line.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parseConfigText } from '../src/config/index.js';
import { app, freePort, get, runCli, startMaster, tempDir, waitFor, workersOf } from './helpers/master.js';

const NAMES = ['APP_COLOR', 'QUOTED', 'FROM_CONF', 'TSMASTER_WORKER_ID', 'NODE_APP_INSTANCE'];

/** What `n` fresh connections see: each answer's variables. */
async function sample(port: number, n = 6): Promise<Array<Record<string, string | null>>> {
  const out = [];
  for (let i = 0; i < n; i++) out.push(JSON.parse((await get({ port, path: `/?names=${NAMES.join(',')}` })).body) as Record<string, string | null>);
  return out;
}

t.test('env_file in-process: order, the last file wins, env beats files, bounds', async (t) => {
  const dir = tempDir(t);
  const file = (name: string, text: string | Buffer) => (fs.writeFileSync(path.join(dir, name), text), name);
  const conf = (body: string) => parseConfigText(`${body}\nlisten 8080;\napp ${app('hello.mjs')};\n`, path.join(dir, 'x.conf'), dir);
  const a = file('a.env', 'A=1\nB=from-a\nexport C=3\n');
  const b = file('b.env', 'B=from-b\n');
  const c = conf(`env_file ${a};\nenv_file ${b};\nenv C=conf;`).env;
  t.same([c.A, c.B, c.C], ['1', 'from-b', 'conf'], 'files in order, then env directives');
  const rejects = (body: string, re: RegExp) => t.throws(() => conf(body), { code: 'TSM_ERR_CONFIG', message: re }, body);
  rejects(`env_file ${file('big.env', Buffer.alloc(1024 * 1024 + 1, 'A'))};`, /env_file ".*big\.env" is larger than 1048576 bytes in .*x\.conf:1/);
  rejects(`env_file ${file('nul.env', 'A="x\u0000y"\n')};`, /invalid variable "A"/);
  rejects(`env_file ${dir};`, /is not a regular file/);
  rejects('env_file a.env b.env;', /invalid number of arguments in "env_file" directive/);
});

t.test('env_file: read at start, again on reload and on upgrade; env beats it; NODE_APP_INSTANCE', async (t) => {
  const port = await freePort();
  const dir = tempDir(t);
  const envFile = path.join(dir, 'app.env');
  fs.writeFileSync(envFile, '# the app\nAPP_COLOR=blue\nQUOTED="two words"\nFROM_CONF=file\n');
  const m = await startMaster(t, {
    dir,
    conf: `worker_processes 2;\nlisten 127.0.0.1:${port};\napp ${app('env-echo.mjs')};\nenv_file app.env;\nenv FROM_CONF=conf;\ncontrol_socket off;\n`,
  });
  const first = await sample(port);
  t.same(new Set(first.map((e) => e.APP_COLOR)), new Set(['blue']), 'the file is read at start');
  t.ok(first.every((e) => e.QUOTED === 'two words'), 'dotenv quoting, as Node parses it');
  t.ok(first.every((e) => e.FROM_CONF === 'conf'), 'an env directive beats the file');
  t.ok(first.every((e) => e.NODE_APP_INSTANCE !== null && e.NODE_APP_INSTANCE === e.TSMASTER_WORKER_ID), 'NODE_APP_INSTANCE is the slot, as TSMASTER_WORKER_ID');

  const before = workersOf(m.masterPid);
  fs.writeFileSync(envFile, 'APP_COLOR=green\n');
  const r = await m.cli(['-s', 'reload']);
  t.equal(r.code, 0, r.stderr);
  await waitFor('the old workers gone', () => workersOf(m.masterPid).every((p) => !before.includes(p)) && workersOf(m.masterPid).length === 2);
  t.same(new Set((await sample(port)).map((e) => e.APP_COLOR)), new Set(['green']), 'a reload reads the file again');

  fs.writeFileSync(envFile, 'APP_COLOR=red\n');
  const up = await m.cli(['-s', 'upgrade'], { timeoutMs: 60_000 });
  t.equal(up.code, 0, up.stdout + up.stderr);
  const newMaster = Number(fs.readFileSync(m.pidFile, 'utf8'));
  t.not(newMaster, m.masterPid, 'a new master');
  await waitFor('the old master gone', () => !fs.existsSync(`/proc/${m.masterPid}`) || /\) Z /.test(fs.readFileSync(`/proc/${m.masterPid}/stat`, 'utf8')));
  t.same(new Set((await sample(port)).map((e) => e.APP_COLOR)), new Set(['red']), 'a new master reads the file again');
  t.teardown(() => {
    try {
      process.kill(newMaster, 'SIGKILL');
    } catch {}
  });
  await m.cli(['-s', 'stop']);
});

t.test('a broken env_file: -t says where, a reload fails and the old workers serve on', async (t) => {
  const port = await freePort();
  const dir = tempDir(t);
  const envFile = path.join(dir, 'app.env');
  fs.writeFileSync(envFile, 'APP_COLOR=blue\n');
  const m = await startMaster(t, { dir, conf: `worker_processes 1;\nlisten 127.0.0.1:${port};\napp ${app('env-echo.mjs')};\nenv_file app.env;\n` });
  fs.rmSync(envFile);
  execFileSync('mkfifo', [envFile]);
  const test = await runCli(['-t', '-p', dir, '-c', m.conf], { timeoutMs: 10_000 });
  t.not(test.code, 0, '-t fails');
  t.match(test.stderr, new RegExp(`env_file "${envFile}" is not a regular file in ${m.conf}:\\d+\n`), 'one line with file:line; a FIFO is not read (it would block)');
  t.notMatch(test.stderr, /\n\s+at /, 'no stack trace');
  const before = workersOf(m.masterPid);
  const r = await m.cli(['-s', 'reload']);
  t.not(r.code, 0, 'the reload fails');
  t.same(workersOf(m.masterPid), before, 'the old workers serve on');
  t.equal((await sample(port, 1))[0]!.APP_COLOR, 'blue');
  fs.rmSync(envFile);
  const missing = await runCli(['-t', '-p', dir, '-c', m.conf], { timeoutMs: 10_000 });
  t.match(missing.stderr, /env_file: open\(\) ".*app\.env" failed \(2: No such file or directory\) in .*tsmaster\.conf:\d+\n/);
});
