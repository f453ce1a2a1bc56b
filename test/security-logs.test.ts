// The worker user and the logs (issue 21, items 4 and 10): workers never hold a descriptor
// of the master's error_log, and what the worker user plants at its own worker_log never
// fails a reload. Each attack runs as nobody: the app itself, or a process of that user.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { app, fixtures, freePort, get, startMaster, tempDir, workersOf } from './helpers/master.js';
import { UNTOUCHED, asNobody, cannotAttack, secretFile } from './helpers/nobody.js';

const hello = path.join(fixtures, 'apps', 'hello.mjs');

/** A test dir nobody can enter but not write, with `sub` writable by nobody. */
function arena(t: Parameters<typeof tempDir>[0]): { dir: string; open: string } {
  const dir = tempDir(t, 'tsm-seclog-');
  fs.chmodSync(dir, 0o755);
  const open = path.join(dir, 'open');
  fs.mkdirSync(open, { mode: 0o755 });
  fs.chownSync(open, 65534, 65534);
  return { dir, open };
}

/** The regular files a process holds open for writing whose owner is root. */
function rootFilesWritable(pid: number): string[] {
  const found: string[] = [];
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const st = fs.statSync(`/proc/${pid}/fd/${fd}`);
      const flags = parseInt(/^flags:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))![1]!, 8);
      if (st.isFile() && st.uid === 0 && (flags & 3) !== 0) found.push(`${fd} -> ${fs.readlinkSync(`/proc/${pid}/fd/${fd}`)}`);
    } catch {
      // closed meanwhile
    }
  }
  return found;
}

t.test("the app as nobody cannot truncate, forge or blow up the master's error_log (default worker_log)", { skip: cannotAttack }, async (t) => {
  const { dir } = arena(t);
  const port = await freePort();
  const m = await startMaster(t, { dir, conf: `user nobody;\nworker_processes 2;\nlisten 127.0.0.1:${port};\napp ${app('log-attack.mjs')};\n` });
  for (const w of workersOf(m.masterPid)) t.same(rootFilesWritable(w), [], `worker ${w} holds no writable file of root`);
  const own = path.join(dir, 'error.worker.log');
  t.equal(fs.statSync(own).uid, 65534, "the workers' default log is a file of their own, beside the error_log");

  const before = fs.readFileSync(m.log, 'utf8');
  const r = await get({ port });
  t.equal(r.status, 200);
  t.match(r.body, /truncated 1; truncated 2/, 'the app truncated what it holds: its own file');
  const after = fs.readFileSync(m.log, 'utf8');
  t.ok(after.startsWith(before), "the master's history is all there");
  t.notMatch(after, /forged by the app/, 'no line in the master\'s name from the app');
  t.ok(fs.statSync(m.log).size < 1 << 20, 'the error_log did not become huge');
  t.ok(fs.statSync(own).size > 1 << 30, 'the sparse giant is the app\'s own file');

  // Its own file, hard-linked elsewhere by nobody: reloads and reopens go on.
  const link = asNobody(['/bin/ln', own, path.join(dir, 'open', 'mine')]);
  t.equal(link.code, 0, `nobody linked its log: ${link.stderr}`);
  const reload = await m.cli(['-s', 'reload']);
  t.equal(reload.code, 0, `the reload is not vetoed by a second link: ${reload.stderr}`);
  const up = await m.cli(['-s', 'upgrade'], { timeoutMs: 60_000 });
  t.equal(up.code, 0, `the upgrade reads the log in bounded chunks: ${up.stderr}`);
  t.match(up.stdout, /upgrade finished/);
  t.equal((await get({ port, path: '/again' })).status, 200);
});

t.test('entries nobody plants at its worker_log are replaced: reload, reopen and upgrade go on', { skip: cannotAttack }, async (t) => {
  const { dir, open } = arena(t);
  const secret = secretFile(path.join(dir, 'shadow'));
  const port = await freePort();
  const log = path.join(open, 'worker.log');
  const m = await startMaster(t, { dir, conf: `user nobody;\nworker_processes 1;\nworker_log ${log};\nlisten 127.0.0.1:${port};\napp ${hello};\n` });
  // A second name is harmless to a file opened with the worker user's rights: kept.
  const plants: Array<[string, string, boolean]> = [
    ['a symlink to a root file', `ln -s ${dir}/shadow ${log}`, true],
    ['a FIFO', `mkfifo ${log}`, true],
    ['a hard link to a file of its own', `touch ${open}/other && ln ${open}/other ${log}`, false],
  ];
  const replaced = /^worker_log ".*worker\.log" was not a regular file .*replaced with a new file/;
  for (const [what, cmd, replace] of plants) {
    const plant = asNobody(['/bin/sh', '-c', `rm -f ${log} && ${cmd}`]);
    t.equal(plant.code, 0, `nobody planted ${what}: ${plant.stderr}`);
    let after = m.lines().length;
    const reload = await m.cli(['-s', 'reload']);
    t.equal(reload.code, 0, `${what}: the reload goes on: ${reload.stderr}`);
    if (replace) {
      await m.waitLog(replaced, { after });
      const st = fs.lstatSync(log);
      t.ok(st.isFile() && st.nlink === 1 && st.uid === 65534, `${what}: a new regular file of the worker user`);
    }
    t.same(secret.check(), UNTOUCHED, `${what}: the root file is untouched`);

    asNobody(['/bin/sh', '-c', `rm -f ${log} ${open}/other && ${cmd}`]);
    after = m.lines().length;
    t.equal((await m.cli(['-s', 'reopen'])).code, 0);
    if (replace) await m.waitLog(replaced, { after });
    t.equal((await m.cli(['-s', 'status'])).code, 0, `${what}: the loop was not blocked`);
  }
  asNobody(['/bin/sh', '-c', `rm -f ${log} && ln -s ${dir}/shadow ${log}`]);
  const up = await m.cli(['-s', 'upgrade'], { timeoutMs: 60_000 });
  t.equal(up.code, 0, `the upgrade goes on: ${up.stderr}`);
  t.same(secret.check(), UNTOUCHED);
  t.equal((await get({ port })).status, 200);
});

t.test("worker_log stderr with daemon on: the master's stderr is its error_log, and is not handed to the worker user", { skip: cannotAttack }, async (t) => {
  const { dir } = arena(t);
  const port = await freePort();
  const m = await startMaster(t, { dir, daemon: true, conf: `user nobody;\nworker_processes 1;\nworker_log stderr;\nlisten 127.0.0.1:${port};\napp ${app('log-attack.mjs')};\n` });
  await m.waitLog(/^worker_log stderr: the master's standard error is a file of uid 0, not the worker user's: workers' output is discarded/);
  for (const w of workersOf(m.masterPid)) t.same(rootFilesWritable(w), [], `worker ${w} holds no writable file of root`);
  const before = fs.readFileSync(m.log, 'utf8');
  t.match((await get({ port })).body, /truncate 1: EINVAL; truncate 2: EINVAL/, 'what the app holds is /dev/null');
  t.ok(fs.readFileSync(m.log, 'utf8').startsWith(before), "the master's history is all there");
});
