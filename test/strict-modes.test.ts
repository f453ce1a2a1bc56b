// -t's StrictModes decisions in-process: which directories of the pid, logs and sockets
// someone other than root may write (the start and `tsmaster -t` print these lines).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { loadConfig } from '../src/config/index.js';
import { unsafeDirectories } from '../src/config/strict-modes.js';

const root = process.getuid?.() === 0 ? false : 'needs root (directories owned by other users)';

t.test('directories others may write are named, each with who may write it', { skip: root }, async (t) => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'tsm-strict-'));
  t.teardown(() => fs.rmSync(base, { recursive: true, force: true }));
  fs.chmodSync(base, 0o755);
  const dir = (name: string, mode: number, uid = 0, gid = 0) => {
    const d = path.join(base, name);
    fs.mkdirSync(d);
    fs.chownSync(d, uid, gid);
    fs.chmodSync(d, mode);
    return d;
  };
  const safe = dir('safe', 0o755);
  const worker = dir('worker', 0o755, 65534, 65534);
  const workerGroup = dir('workergroup', 0o775, 0, 65534);
  const staff = dir('staff', 0o775, 0, 50);
  const world = dir('world', 0o1777);
  fs.writeFileSync(
    path.join(base, 'tsmaster.conf'),
    [
      'user nobody;',
      `pid ${worker}/tsmaster.pid;`,
      `error_log ${workerGroup}/error.log;`,
      `control_socket ${staff}/ctl.sock;`,
      `listen unix:${safe}/app.sock;`,
      `metrics_listen unix:${world}/metrics.sock;`,
      'app app.mjs;',
    ].join('\n'),
  );
  fs.writeFileSync(path.join(base, 'app.mjs'), 'export default (q, s) => s.end();\n');
  const lines = unsafeDirectories(loadConfig({ file: 'tsmaster.conf', prefix: base }));
  t.same(lines, [
    `directory "${worker}" of pid "${worker}/tsmaster.pid" is writable by the worker user nobody`,
    `directory "${workerGroup}" of error_log "${workerGroup}/error.log" is writable by the worker user nobody (group)`,
    `directory "${staff}" of control_socket "${staff}/ctl.sock" is writable by the members of group 50`,
    `directory "${world}" of metrics_listen unix:${world}/metrics.sock "${world}/metrics.sock" is writable by every user (sticky, but names can be taken first)`,
  ]);
});

t.test('directories where a symlink on the way leads count too, through chains, relative links and ..', { skip: root }, async (t) => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'tsm-strict-'));
  t.teardown(() => fs.rmSync(base, { recursive: true, force: true }));
  fs.chmodSync(base, 0o755);
  // base/w is the worker user's; root's directories inside it are reached only through links.
  const w = path.join(base, 'w');
  fs.mkdirSync(path.join(w, 'deep', 'run'), { recursive: true });
  fs.mkdirSync(path.join(w, 'logs'));
  fs.chownSync(w, 65534, 65534);
  fs.mkdirSync(path.join(base, 'safe'));
  fs.symlinkSync('b', path.join(base, 'a')); // relative, to a link
  fs.symlinkSync(path.join(w, 'deep', 'run'), path.join(base, 'b')); // absolute
  fs.symlinkSync('../w/deep/../logs', path.join(base, 'safe', 'logs')); // relative with ..
  fs.writeFileSync(
    path.join(base, 'tsmaster.conf'),
    ['user nobody;', `pid ${base}/a/tsmaster.pid;`, `error_log ${base}/safe/logs/error.log;`, `control_socket ${base}/safe/ctl.sock;`, 'listen 127.0.0.1:8080;', 'app app.mjs;'].join('\n'),
  );
  fs.writeFileSync(path.join(base, 'app.mjs'), 'export default (q, s) => s.end();\n');
  const lines = unsafeDirectories(loadConfig({ file: 'tsmaster.conf', prefix: base }));
  t.same(
    lines,
    [
      `directory "${w}" of pid "${base}/a/tsmaster.pid" is writable by the worker user nobody`,
      `directory "${w}" of error_log "${base}/safe/logs/error.log" is writable by the worker user nobody`,
    ],
    "only the worker user's directory on the way, once each; the control socket, reached through no link, is fine",
  );
});
