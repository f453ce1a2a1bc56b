// Day-one edges: what a new user runs into first gets one line that says what to do.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { spawn } from 'node:child_process';
import { childrenOf as allChildrenOf } from '../src/proc.js';
import { cli, freePort, get, killAll, root, runCli, tempDir, waitFor } from './helpers/master.js';

t.test('-t fails on a directory the master would need and does not find', async (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'app.mjs'), 'export default (req, res) => res.end("ok");\n');
  fs.writeFileSync(path.join(dir, 'tsmaster.conf'), 'listen 127.0.0.1:0;\napp app.mjs;\nworker_log out/app.log;\n');
  const r = await runCli(['-t', '-p', dir]);
  t.equal(r.code, 1, 'exit 1');
  t.match(r.stderr, `tsmaster: [emerg] directory "${dir}/logs" of pid "${dir}/logs/tsmaster.pid" does not exist\n`, 'the default pid wants logs/');
  t.match(r.stderr, `[emerg] directory "${dir}/logs" of error_log "${dir}/logs/error.log" does not exist\n`);
  t.match(r.stderr, `[emerg] directory "${dir}/out" of worker_log "${dir}/out/app.log" does not exist\n`);
  t.match(r.stderr, /test failed\n$/);
  fs.mkdirSync(path.join(dir, 'logs'));
  fs.mkdirSync(path.join(dir, 'out'));
  const ok = await runCli(['-t', '-p', dir]);
  t.equal(ok.code, 0, ok.stderr);
});

t.test('-s from another directory says how to point at the master', async (t) => {
  const elsewhere = tempDir(t);
  for (const cmd of ['status', 'reload', 'quit']) {
    const r = await runCli(['-s', cmd], { cwd: elsewhere });
    t.equal(r.code, 1, `-s ${cmd}: exit 1`);
    t.equal(
      r.stderr,
      `tsmaster: [emerg] open() "${elsewhere}/tsmaster.conf" failed (2: No such file or directory); give the master's prefix and configuration with -p PREFIX and -c FILE\n`,
      `-s ${cmd}: one line with the hint`,
    );
  }
});

t.test('the sample configuration (npm start) starts without a warning', async (t) => {
  // The sample as shipped, on a free port instead of 8080.
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o755);
  const port = await freePort();
  for (const f of ['app.js', 'tsmaster.conf']) fs.copyFileSync(path.join(root, 'dist', 'sample', f), path.join(dir, f));
  const conf = path.join(dir, 'tsmaster.conf');
  const text = fs.readFileSync(conf, 'utf8');
  t.match(text, /^listen 127\.0\.0\.1:8080;$/m);
  fs.writeFileSync(conf, text.replace(/^listen .*$/m, `listen 127.0.0.1:${port};`));
  const master = spawn(process.execPath, [cli, '-p', dir, '-c', 'tsmaster.conf'], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => killAll([master.pid!, ...allChildrenOf(master.pid!)]));
  let stderr = '';
  master.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  await waitFor('the sample ready', () => /generation 1: all 2 worker\(s\) ready/.test(stderr));
  t.equal((await get({ port })).status, 200, 'it serves');
  t.notMatch(stderr, /\[(warn|error|alert|crit|emerg)\]/, 'no warning on its stderr');
  const test = await runCli(['-t', '-p', dir]);
  t.equal(test.code, 0);
  t.notMatch(test.stderr, /\[warn\]/, '-t warns of nothing');
  master.kill('SIGTERM');
  await waitFor('the master gone', () => master.exitCode !== null);
  t.equal(master.exitCode, 0);
});
