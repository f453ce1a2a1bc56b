// Bad input gets one clear line and exit 1, and leaves nothing behind; -t prints what nginx prints.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t, { type Test } from 'tap';
import { cmdline, fixtures, freePort, runCli, startMaster, tempDir, waitFor, type CliResult } from './helpers/master.js';

const hello = path.join(fixtures, 'apps', 'hello.mjs');

/** Processes whose command line mentions `dir`: what a failed start must not leave. */
function processesMentioning(dir: string): number[] {
  return fs
    .readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e) && Number(e) !== process.pid)
    .map(Number)
    .filter((p) => cmdline(p).includes(dir));
}

function writeConf(dir: string, body: string): string {
  const file = path.join(dir, 'tsmaster.conf');
  fs.writeFileSync(file, `pid ${dir}/tsmaster.pid;\nerror_log ${dir}/error.log;\n${body}`);
  return file;
}

/** One error line on stderr, exit 1, no pidfile, no process left. */
async function failsCleanly(t: Test, r: CliResult, dir: string, re: RegExp): Promise<void> {
  t.equal(r.code, 1, 'exit code 1');
  const lines = r.stderr.trim().split('\n');
  t.equal(lines.length, 1, `one line: ${r.stderr}`);
  t.match(lines[0], re);
  t.equal(r.stdout, '', 'nothing on stdout');
  t.notOk(fs.existsSync(path.join(dir, 'tsmaster.pid')), 'no pidfile left');
  await waitFor('no process left', () => processesMentioning(dir).length === 0, 5000);
}

t.test('-t on a good config', async (t) => {
  const dir = tempDir(t);
  const conf = writeConf(dir, `listen 127.0.0.1:0;\napp ${hello};\n`);
  const r = await runCli(['-t', '-c', conf]);
  t.equal(r.code, 0);
  t.equal(r.stderr, `tsmaster: the configuration file ${conf} syntax is ok\ntsmaster: configuration file ${conf} test is successful\n`);
  const dump = await runCli(['-T', '-c', conf]);
  t.equal(dump.code, 0);
  t.match(dump.stdout, `# configuration file ${conf}:\npid ${dir}/tsmaster.pid;`);
});

t.test('-t on a bad config names file and line', async (t) => {
  const dir = tempDir(t);
  const conf = writeConf(dir, `listen 127.0.0.1:0;\nlistn 8080;\napp ${hello};\n`);
  const r = await runCli(['-t', '-c', conf]);
  t.equal(r.code, 1);
  t.equal(r.stderr, `tsmaster: [emerg] unknown directive "listn" in ${conf}:4\ntsmaster: configuration file ${conf} test failed\n`);
});

const badConfigs: Array<[string, string, RegExp]> = [
  ['unknown directive', `listen 127.0.0.1:0;\nlistn 8080;\napp ${hello};\n`, /^tsmaster: \[emerg\] unknown directive "listn" in .*tsmaster\.conf:4$/],
  ['wrong arity', `pid;\nlisten 127.0.0.1:0;\napp ${hello};\n`, /^tsmaster: \[emerg\] invalid number of arguments in "pid" directive in .*:3$/],
  ['bad value', `worker_processes lots;\nlisten 127.0.0.1:0;\napp ${hello};\n`, /^tsmaster: \[emerg\] invalid value "lots" in "worker_processes" directive in .*:3$/],
  ['duplicate listen', `listen 127.0.0.1:9999;\nlisten 127.0.0.1:9999;\napp ${hello};\n`, /^tsmaster: \[emerg\] duplicate listen "127\.0\.0\.1:9999" in .*:4$/],
  ['missing include', `include nope.conf;\nlisten 127.0.0.1:0;\napp ${hello};\n`, /^tsmaster: \[emerg\] open\(\) ".*nope\.conf" failed \(2: No such file or directory\) in .*:3$/],
];
for (const [what, body, re] of badConfigs) {
  t.test(`start with a config error: ${what}`, async (t) => {
    const dir = tempDir(t);
    const conf = writeConf(dir, body);
    await failsCleanly(t, await runCli(['-c', conf, '-g', 'daemon off;']), dir, re);
    await failsCleanly(t, await runCli(['-c', conf]), dir, re);
  });
}

t.test('missing config file', async (t) => {
  const dir = tempDir(t);
  await failsCleanly(t, await runCli(['-c', path.join(dir, 'none.conf')]), dir, /^tsmaster: \[emerg\] open\(\) ".*none\.conf" failed \(2: No such file or directory\)$/);
});

t.test('an error_log in a missing directory', async (t) => {
  const dir = tempDir(t);
  const conf = path.join(dir, 'tsmaster.conf');
  fs.writeFileSync(conf, `pid ${dir}/tsmaster.pid;\nerror_log ${dir}/missing/error.log;\nlisten 127.0.0.1:0;\napp ${hello};\n`);
  const re = /^tsmaster: \[emerg\] open\(\) ".*\/missing\/error\.log" failed \(ENOENT: no such file or directory\)$/;
  await failsCleanly(t, await runCli(['-c', conf, '-g', 'daemon off;']), dir, re);
  await failsCleanly(t, await runCli(['-c', conf]), dir, re);
});

t.test('port already in use, foreground and daemon', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const holder = net.createServer();
  await new Promise<void>((r) => holder.listen(port, '127.0.0.1', r));
  t.teardown(() => holder.close());
  const conf = writeConf(dir, `listen 127.0.0.1:${port};\napp ${hello};\n`);
  const re = new RegExp(`^tsmaster: \\[emerg\\] bind EADDRINUSE: address already in use 127\\.0\\.0\\.1:${port} \\(listen "127\\.0\\.0\\.1:${port}" in .*:3\\)$`);
  await failsCleanly(t, await runCli(['-c', conf, '-g', 'daemon off;']), dir, re);
  await failsCleanly(t, await runCli(['-c', conf]), dir, re);
});

t.test('permission denied on a unix socket path', async (t) => {
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o777);
  const locked = path.join(dir, 'locked');
  fs.mkdirSync(locked, { mode: 0o755 });
  const conf = writeConf(dir, `listen unix:${locked}/app.sock;\napp ${hello};\n`);
  // As root nothing is denied: run tsmaster itself as nobody.
  const { spawn } = await import('node:child_process');
  const r = await new Promise<CliResult>((resolve) => {
    const child = spawn(process.execPath, [path.join(fixtures, '..', '..', 'dist', 'cli', 'main.js'), '-c', conf, '-g', 'daemon off;'], { uid: 65534, gid: 65534, cwd: '/' });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d));
    child.stderr!.on('data', (d: Buffer) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  await failsCleanly(t, r, dir, /^tsmaster: \[emerg\] bind EACCES: permission denied .*locked\/app\.sock/);
});

t.test('a second start with the same pidfile is refused; the first keeps serving', async (t) => {
  const port = await freePort();
  const m = await startMaster(t, { conf: `listen 127.0.0.1:${port};\napp ${hello};\n` });
  const r = await runCli(['-p', m.dir, '-c', m.conf]);
  t.equal(r.code, 1);
  t.match(r.stderr.trim(), new RegExp(`^tsmaster: \\[emerg\\] pid file ".*tsmaster\\.pid" is locked by a running tsmaster master \\(pid ${m.masterPid}\\)$`));
  t.equal(Number(fs.readFileSync(m.pidFile, 'utf8')), m.masterPid, 'pidfile untouched');
  t.ok(m.proc && m.proc.exitCode === null, 'first master still running');
});

t.test('a stale pidfile is replaced', async (t) => {
  const port = await freePort();
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'tsmaster.pid'), '999999\n');
  const m = await startMaster(t, { dir, conf: `listen 127.0.0.1:${port};\napp ${hello};\n` });
  t.equal(Number(fs.readFileSync(m.pidFile, 'utf8')), m.masterPid);
});

t.test('-s without a master, with a stale pidfile, with an unknown signal', async (t) => {
  const dir = tempDir(t);
  const conf = writeConf(dir, `listen 127.0.0.1:0;\napp ${hello};\n`);
  for (const sig of ['stop', 'quit', 'reload', 'reopen', 'upgrade']) {
    const r = await runCli(['-c', conf, '-s', sig]);
    t.equal(r.code, 1, `-s ${sig} exit 1`);
    t.match(r.stderr, /^tsmaster: \[error\] open\(\) ".*tsmaster\.pid" failed \(2: ENOENT\): is tsmaster running\?\n$/);
  }
  fs.writeFileSync(path.join(dir, 'tsmaster.pid'), '999999\n');
  const stale = await runCli(['-c', conf, '-s', 'reload']);
  t.equal(stale.code, 1);
  t.match(stale.stderr, /^tsmaster: \[error\] no tsmaster master process 999999: stale pid file ".*"\n$/);
  const bad = await runCli(['-c', conf, '-s', 'restart']);
  t.equal(bad.code, 1);
  t.equal(bad.stderr, 'tsmaster: invalid option: "-s restart"\n');
  const opt = await runCli(['-x']);
  t.equal(opt.code, 1);
  t.equal(opt.stderr, 'tsmaster: invalid option: "x"\n');
});
