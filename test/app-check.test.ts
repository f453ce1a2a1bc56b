// `tsmaster -t` resolves the app as a worker would (its user, its Node and options) without
// running it.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { cannotAttack } from './helpers/nobody.js';
import { app, cli, runCli, tempDir } from './helpers/master.js';
import { untraced } from './helpers/node-bin.js';
import { spawnSync } from 'node:child_process';

const command = [...untraced(process.execPath), cli];

function writeConf(dir: string, body: string): string {
  const file = path.join(dir, 'tsmaster.conf');
  fs.writeFileSync(file, `daemon off;\npid ${dir}/tsmaster.pid;\nerror_log stderr;\nlisten 127.0.0.1:0;\n${body}`);
  return file;
}

t.test('-t: an app the worker user may not read fails, and passes once it may', { skip: cannotAttack }, async (t) => {
  const dir = tempDir(t); // 0700, root's
  fs.copyFileSync(app('hello.mjs'), path.join(dir, 'server.mjs'));
  const conf = writeConf(dir, `user nobody;\napp server.mjs;\n`);
  const r = await runCli(['-t', '-p', dir, '-c', conf], { command });
  t.equal(r.code, 1);
  t.equal(
    r.stderr,
    `tsmaster: [emerg] app "${dir}/server.mjs" cannot be read by user "nobody": EACCES: permission denied, open '${dir}/server.mjs'\n` +
      `tsmaster: configuration file ${conf} test failed\n`,
  );
  fs.chmodSync(dir, 0o755);
  const ok = await runCli(['-t', '-p', dir, '-c', conf], { command });
  t.equal(ok.code, 0, ok.stderr);
});

t.test('-t: an extension Node cannot load fails with Node\'s reason', async (t) => {
  const dir = tempDir(t);
  fs.copyFileSync(app('hello.mjs'), path.join(dir, 'server.coffee'));
  const conf = writeConf(dir, 'app server.coffee;\n');
  const r = await runCli(['-t', '-p', dir, '-c', conf], { command });
  t.equal(r.code, 1);
  t.match(r.stderr, `tsmaster: [emerg] app "${dir}/server.coffee" cannot be loaded: Unknown file extension ".coffee" for ${dir}/server.coffee\n`);
});

t.test('-t: an app that is not a regular file (a FIFO) fails at once, never waits on it', async (t) => {
  const dir = tempDir(t);
  spawnSync('mkfifo', [path.join(dir, 'server.mjs')]);
  const conf = writeConf(dir, 'app server.mjs;\n');
  const r = await runCli(['-t', '-p', dir, '-c', conf], { command, timeoutMs: 20_000 });
  t.equal(r.code, 1);
  t.match(r.stderr, `cannot be read: "${dir}/server.mjs" is not a regular file\n`);
});

t.test('-t loads the app without running it: neither its body nor its imports run', async (t) => {
  const dir = tempDir(t);
  const marker = path.join(dir, 'ran');
  fs.writeFileSync(path.join(dir, 'side.mjs'), `import fs from 'node:fs';\nfs.writeFileSync(${JSON.stringify(marker)}, 'import');\n`);
  fs.writeFileSync(
    path.join(dir, 'server.mjs'),
    `import './side.mjs';\nimport fs from 'node:fs';\nfs.writeFileSync(${JSON.stringify(marker)}, 'body');\nprocess.exit(3);\nexport default () => {};\n`,
  );
  const conf = writeConf(dir, 'app server.mjs;\n');
  const r = await runCli(['-t', '-p', dir, '-c', conf], { command });
  t.equal(r.code, 0, r.stderr);
  t.notOk(fs.existsSync(marker), 'nothing of the app ran');
});
