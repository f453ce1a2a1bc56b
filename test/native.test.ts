// The native addon against the real kernel: real sockets, real processes, no mocks.
import t, { type Test } from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Readable } from 'node:stream';
import * as native from '../src/native/index.js';
import { TsmError, isErrno } from '../src/errors.js';

// Child processes load the compiled addon directly (its raw, positional binding).
const ADDON = fileURLToPath(new URL('../native/build/Release/tsmaster_native.node', import.meta.url));
const NODE = process.execPath;

// ---- helpers ---------------------------------------------------------------------------

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms}ms: ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function spawnSyncOk(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
}

const sleep = (ms: number) => new Promise<void>(resolve => setTimeout(resolve, ms));

/** Resolves with the first match of `re` in everything `stream` has written so far. */
function waitOutput(stream: Readable, re: RegExp, ms: number, what: string): Promise<RegExpMatchArray> {
  return within(
    new Promise<RegExpMatchArray>((resolve, reject) => {
      let text = '';
      const onData = (chunk: Buffer) => {
        text += chunk.toString();
        const m = text.match(re);
        if (m) {
          stream.off('data', onData);
          resolve(m);
        }
      };
      stream.on('data', onData);
      stream.once('end', () => reject(new Error(`stream ended before ${re}: ${JSON.stringify(text)}`)));
    }),
    ms,
    what,
  );
}

/** Everything a socket sends until it ends. */
function readAll(sock: net.Socket, ms: number): Promise<string> {
  return within(
    new Promise<string>((resolve, reject) => {
      let text = '';
      sock.on('data', (d: Buffer) => (text += d.toString()));
      sock.once('end', () => resolve(text));
      sock.once('error', reject);
    }),
    ms,
    'socket data',
  );
}

function connect(opts: net.NetConnectOpts, ms = 3000): Promise<net.Socket> {
  const sock = net.connect(opts);
  return within(
    new Promise<net.Socket>((resolve, reject) => {
      sock.once('connect', () => resolve(sock));
      sock.once('error', reject);
    }),
    ms,
    `connect ${JSON.stringify(opts)}`,
  ).catch(err => {
    sock.destroy();
    throw err;
  });
}

/** A process is gone when /proc has no entry for it or it is a zombie. */
function procState(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? null;
  } catch {
    return null;
  }
}
const gone = (pid: number) => {
  const s = procState(pid);
  return s === null || s === 'Z';
};

async function waitUntil(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await sleep(20);
  }
  return cond();
}

/** Spawns a child that is SIGKILLed at the end of the test `tt` if still running. */
function track(tt: Tap, child: ChildProcess): ChildProcess {
  tt.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return child;
}
type Tap = Test;

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function closeQuietly(fd: number): void {
  try {
    native.closeFd(fd);
  } catch {
    // already closed
  }
}

function tmpDir(tt: Tap): string {
  // Short paths: sun_path holds 107 bytes, and tap's own fixture dirs are long.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsm-n-'));
  tt.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Asserts that `fn` throws a Node-style system error with these fields. */
function throwsErrno(
  tt: Tap,
  fn: () => unknown,
  want: { code: string; errno?: number; syscall: string; address?: string; port?: number; path?: string },
  msg: string,
): void {
  try {
    fn();
    tt.fail(`${msg}: did not throw`);
  } catch (err) {
    tt.ok(isErrno(err), `${msg}: errno error`);
    tt.match(err, want, msg);
    const e = err as Error & { errno?: number };
    const errnos = os.constants.errno as Record<string, number | undefined>;
    tt.equal(e.errno, -(errnos[want.code] ?? NaN), `${msg}: errno is -${want.code}`);
    tt.ok(e.message.startsWith(`${want.syscall} ${want.code}: `), `${msg}: message ${JSON.stringify(e.message)}`);
  }
}

async function hasIpv6Loopback(): Promise<boolean> {
  const srv = net.createServer();
  try {
    await within(
      new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, '::1', () => resolve());
      }),
      2000,
      'listen ::1',
    );
    return true;
  } catch {
    return false;
  } finally {
    srv.close();
  }
}

// ---- TCP -------------------------------------------------------------------------------

t.test('listenTcp on 127.0.0.1:0: connectable, and a child serves it with listen({fd})', async t => {
  const fd = native.listenTcp({ host: '127.0.0.1', port: 0, backlog: 16 });
  t.teardown(() => closeQuietly(fd));
  t.type(fd, 'number');
  t.ok(fd > 2, 'a real fd');
  t.equal(native.getCloexec(fd), true, 'FD_CLOEXEC set');

  const name = native.getsockname(fd);
  t.equal(name.family, 'IPv4');
  if (name.family === 'unix') throw new Error('unreachable');
  t.equal(name.address, '127.0.0.1');
  t.ok(name.port > 0 && name.port < 65536, `ephemeral port ${name.port}`);

  // Nobody accepts yet: the kernel completes the handshake and the connection waits in the backlog.
  const early = await connect({ host: '127.0.0.1', port: name.port });
  t.teardown(() => early.destroy());
  const earlyReply = readAll(early, 8000);

  const child = track(
    t,
    spawn(
      NODE,
      [
        '-e',
        `require('net').createServer(s => s.end('hello from ' + process.pid))
           .listen({ fd: 3 }, () => console.log('listening'));`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit', fd] },
    ),
  );
  await waitOutput(child.stdout!, /listening/, 8000, 'child listening on fd 3');

  t.equal(await earlyReply, `hello from ${child.pid}`, 'the backlogged connection is accepted by the child');
  const late = await connect({ host: '127.0.0.1', port: name.port });
  t.teardown(() => late.destroy());
  t.equal(await readAll(late, 5000), `hello from ${child.pid}`, 'a new connection too');
});

t.test('same port twice: EADDRINUSE, unless both ask for reuseport', async t => {
  const a = native.listenTcp({ host: '127.0.0.1', port: 0, backlog: 8 });
  t.teardown(() => closeQuietly(a));
  const name = native.getsockname(a);
  if (name.family === 'unix') throw new Error('unreachable');

  throwsErrno(
    t,
    () => native.listenTcp({ host: '127.0.0.1', port: name.port, backlog: 8 }),
    { code: 'EADDRINUSE', errno: -98, syscall: 'bind', address: '127.0.0.1', port: name.port },
    'second bind',
  );
  try {
    native.listenTcp({ host: '127.0.0.1', port: name.port, backlog: 8 });
  } catch (err) {
    t.equal((err as Error).message, `bind EADDRINUSE: address already in use 127.0.0.1:${name.port}`, 'Node-style message');
  }
  throwsErrno(
    t,
    () => native.listenTcp({ host: '127.0.0.1', port: name.port, backlog: 8, reuseport: true }),
    { code: 'EADDRINUSE', syscall: 'bind', errno: -98 },
    'reuseport on the second socket only',
  );

  const r1 = native.listenTcp({ host: '127.0.0.1', port: 0, backlog: 8, reuseport: true });
  t.teardown(() => closeQuietly(r1));
  const n1 = native.getsockname(r1);
  if (n1.family === 'unix') throw new Error('unreachable');
  const r2 = native.listenTcp({ host: '127.0.0.1', port: n1.port, backlog: 8, reuseport: true });
  t.teardown(() => closeQuietly(r2));
  t.not(r2, r1);
  t.same(native.getsockname(r2), n1, 'both bound to the same address');
});

const ipv6 = await hasIpv6Loopback();
t.test('IPv6', { skip: ipv6 ? false : 'no IPv6 loopback on this machine' }, async t => {
  const fd = native.listenTcp({ host: '::1', port: 0, backlog: 8, ipv6Only: true });
  t.teardown(() => closeQuietly(fd));
  const name = native.getsockname(fd);
  t.match(name, { family: 'IPv6', address: '::1' });
  if (name.family === 'unix') throw new Error('unreachable');
  const c = await connect({ host: '::1', port: name.port });
  c.destroy();
  t.pass('connected over ::1');

  const br = native.listenTcp({ host: '[::1]', port: 0, backlog: 8 });
  t.teardown(() => closeQuietly(br));
  t.match(native.getsockname(br), { family: 'IPv6', address: '::1' }, 'bracketed host accepted');

  // IPV6_V6ONLY decides whether [::]:P also takes 0.0.0.0:P.
  const only = native.listenTcp({ host: '::', port: 0, backlog: 8, ipv6Only: true });
  t.teardown(() => closeQuietly(only));
  const onlyName = native.getsockname(only);
  if (onlyName.family === 'unix') throw new Error('unreachable');
  const v4 = native.listenTcp({ host: '0.0.0.0', port: onlyName.port, backlog: 8 });
  t.teardown(() => closeQuietly(v4));
  t.pass('ipv6Only: true leaves the IPv4 port free');

  const dual = native.listenTcp({ host: '::', port: 0, backlog: 8, ipv6Only: false });
  t.teardown(() => closeQuietly(dual));
  const dualName = native.getsockname(dual);
  if (dualName.family === 'unix') throw new Error('unreachable');
  throwsErrno(
    t,
    () => native.listenTcp({ host: '0.0.0.0', port: dualName.port, backlog: 8 }),
    { code: 'EADDRINUSE', syscall: 'bind', address: '0.0.0.0', port: dualName.port },
    'ipv6Only: false takes the IPv4 port too',
  );
});

// ---- unix sockets ----------------------------------------------------------------------

t.test('listenUnix', async t => {
  const dir = tmpDir(t);

  t.test('mode, getsockname, connectable', async t => {
    const p = path.join(dir, 'mode.sock');
    const fd = native.listenUnix({ path: p, backlog: 8, mode: 0o660 });
    t.teardown(() => closeQuietly(fd));
    const st = fs.statSync(p);
    t.ok(st.isSocket(), 'a socket file');
    t.equal(st.mode & 0o7777, 0o660, 'mode 0660');
    t.same(native.getsockname(fd), { family: 'unix', path: p });
    t.equal(native.getCloexec(fd), true);
    const c = await connect({ path: p });
    c.destroy();
  });

  t.test('a stale socket file is replaced, a live one is EADDRINUSE', async t => {
    const p = path.join(dir, 'stale.sock');
    const first = native.listenUnix({ path: p, backlog: 8 });
    native.closeFd(first); // the file stays behind with nobody listening
    t.ok(fs.statSync(p).isSocket(), 'stale file left behind');

    const second = native.listenUnix({ path: p, backlog: 8 });
    t.teardown(() => closeQuietly(second));
    const c = await connect({ path: p });
    c.destroy();
    t.pass('the new socket answers');

    throwsErrno(
      t,
      () => native.listenUnix({ path: p, backlog: 8 }),
      { code: 'EADDRINUSE', errno: -98, syscall: 'bind', path: p },
      'live socket',
    );
    const again = await connect({ path: p });
    again.destroy();
    t.pass('the live socket was not unlinked');
  });

  t.test('a file that is not a socket is never removed', async t => {
    const p = path.join(dir, 'regular');
    fs.writeFileSync(p, 'keep me');
    throwsErrno(t, () => native.listenUnix({ path: p, backlog: 8 }), { code: 'EADDRINUSE', syscall: 'bind', path: p }, 'regular file');
    t.equal(fs.readFileSync(p, 'utf8'), 'keep me');
  });

  t.test('missing directory: ENOENT', async t => {
    const p = path.join(dir, 'no-such-dir', 'x.sock');
    throwsErrno(t, () => native.listenUnix({ path: p, backlog: 8 }), { code: 'ENOENT', errno: -2, syscall: 'bind', path: p }, 'missing dir');
  });

  t.test('path longer than sun_path: ENAMETOOLONG', async t => {
    const p = path.join(dir, 'x'.repeat(120) + '.sock');
    throwsErrno(t, () => native.listenUnix({ path: p, backlog: 8 }), { code: 'ENAMETOOLONG', errno: -36, syscall: 'bind', path: p }, 'long path');
    t.notOk(fs.existsSync(p));
  });

  t.test('abstract socket', async t => {
    const name = `@tsm-test-${process.pid}-${Date.now()}`;
    const fd = native.listenUnix({ path: name, backlog: 8 });
    t.teardown(() => closeQuietly(fd));
    t.same(native.getsockname(fd), { family: 'unix', path: name });
    throwsErrno(t, () => native.listenUnix({ path: name, backlog: 8 }), { code: 'EADDRINUSE', syscall: 'bind', path: name }, 'abstract in use');
  });
});

// ---- file descriptors ------------------------------------------------------------------

t.test('cloexec round trip decides what a child inherits', async t => {
  const fd = native.listenTcp({ host: '127.0.0.1', port: 0, backlog: 1 });
  t.teardown(() => closeQuietly(fd));

  const inherited = async (): Promise<boolean> => {
    const child = track(t, spawn('sleep', ['30'], { stdio: 'ignore' }));
    await within(once(child, 'spawn'), 5000, 'spawn sleep');
    const has = fs.existsSync(`/proc/${child.pid}/fd/${fd}`);
    child.kill('SIGKILL');
    await within(once(child, 'exit'), 5000, 'sleep exit');
    return has;
  };

  t.equal(native.getCloexec(fd), true);
  t.equal(await inherited(), false, 'not inherited with FD_CLOEXEC');
  native.setCloexec(fd, false);
  t.equal(native.getCloexec(fd), false);
  t.equal(await inherited(), true, 'inherited without FD_CLOEXEC');
  native.setCloexec(fd, true);
  t.equal(native.getCloexec(fd), true);
  t.equal(await inherited(), false, 'not inherited again');
});

t.test('dup2 and closeFd', async t => {
  const dir = tmpDir(t);
  const a = path.join(dir, 'a.log');
  const b = path.join(dir, 'b.log');
  const fdA = fs.openSync(a, 'a');
  const fdB = fs.openSync(b, 'a');
  t.teardown(() => {
    closeQuietly(fdA);
    closeQuietly(fdB);
  });
  native.dup2(fdA, fdB);
  fs.writeSync(fdB, 'via b\n');
  t.equal(fs.readFileSync(a, 'utf8'), 'via b\n', 'fd B now writes to file A');
  t.equal(fs.readFileSync(b, 'utf8'), '');

  native.closeFd(fdA);
  throwsErrno(t, () => native.getCloexec(fdA), { code: 'EBADF', errno: -9, syscall: 'fcntl' }, 'closed fd');
  throwsErrno(t, () => native.closeFd(fdA), { code: 'EBADF', syscall: 'close' }, 'double close');
  throwsErrno(t, () => native.dup2(fdA, fdB), { code: 'EBADF', syscall: 'dup2' }, 'dup2 from a closed fd');
  throwsErrno(t, () => native.getsockname(fdB), { code: 'ENOTSOCK', syscall: 'getsockname' }, 'getsockname of a file');
  throwsErrno(t, () => native.getPeerCred(fdB), { code: 'ENOTSOCK', syscall: 'getsockopt' }, 'getPeerCred of a file');
});

// ---- processes -------------------------------------------------------------------------

t.test('setPdeathsig: the grandchild dies with its parent', async t => {
  // intermediate -> grandchild; the grandchild sets PDEATHSIG (or not, as the control).
  const run = async (signal: number) => {
    const grandchild = `const b = require(process.argv[1]); b.setPdeathsig(Number(process.argv[2]));
      console.log('ready ' + process.pid); setInterval(() => {}, 1000);`;
    const intermediate = `require('child_process').spawn(process.execPath, ['-e', process.argv[1], process.argv[2], process.argv[3]],
      { stdio: ['ignore', 'inherit', 'inherit'] }); setInterval(() => {}, 1000);`;
    const mid = track(
      t,
      spawn(NODE, ['-e', intermediate, grandchild, ADDON, String(signal)], { stdio: ['ignore', 'pipe', 'inherit'] }),
    );
    const m = await waitOutput(mid.stdout!, /ready (\d+)/, 8000, 'grandchild ready');
    const gc = Number(m[1]);
    t.teardown(() => killPid(gc));
    t.notOk(gone(gc), 'grandchild running');
    mid.kill('SIGKILL');
    await within(once(mid, 'exit'), 5000, 'intermediate exit');
    return gc;
  };

  const gc = await run(15);
  t.ok(await waitUntil(() => gone(gc), 1000), 'grandchild with PDEATHSIG=SIGTERM gone within 1s');

  const control = await run(0);
  await sleep(500);
  t.notOk(gone(control), 'control grandchild without PDEATHSIG still running');
});

t.test('setRlimitNofile, setPriority, setAffinity on a child', async t => {
  const child = track(t, spawn('sleep', ['30'], { stdio: 'ignore' }));
  await within(once(child, 'spawn'), 5000, 'spawn sleep');
  const pid = child.pid!;

  native.setRlimitNofile(pid, 512, 1024);
  const limits = fs.readFileSync(`/proc/${pid}/limits`, 'utf8');
  t.match(limits, /^Max open files\s+512\s+1024\s+files/m, 'Max open files 512/1024');

  native.setPriority(pid, 7);
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields[0] is field 3 (state)
  t.equal(Number(fields[19 - 3]), 7, 'nice 7 (stat field 19)');

  const parseList = (s: string): number[] =>
    s.split(',').flatMap(part => {
      const [lo, hi] = part.split('-').map(Number);
      return Array.from({ length: (hi ?? lo!) - lo! + 1 }, (_, i) => lo! + i);
    });
  const statusOf = (p: number | 'self') => fs.readFileSync(`/proc/${p}/status`, 'utf8');
  const allowed = parseList(/Cpus_allowed_list:\s*(\S+)/.exec(statusOf('self'))![1]!);
  const want = allowed.length > 1 ? [allowed[0]!, allowed[allowed.length - 1]!] : [allowed[0]!];
  native.setAffinity(pid, want);
  const got = parseList(/Cpus_allowed_list:\s*(\S+)/.exec(statusOf(pid))![1]!);
  t.same(got, want, `affinity ${want.join(',')}`);

  // Failures come back as errno errors.
  throwsErrno(t, () => native.setRlimitNofile(pid, 10, 2 ** 40), { code: 'EPERM', syscall: 'prlimit' }, 'hard limit above nr_open');
  throwsErrno(t, () => native.setAffinity(pid, [4095]), { code: 'EINVAL', syscall: 'sched_setaffinity' }, 'no such cpu');

  child.kill('SIGKILL');
  await within(once(child, 'exit'), 5000, 'sleep exit');
  throwsErrno(t, () => native.setPriority(pid, 1), { code: 'ESRCH', errno: -3, syscall: 'setpriority' }, 'dead pid');
});

// ---- peer credentials ------------------------------------------------------------------

t.test('getPeerCred on accepted unix connections', async t => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'peer.sock');
  const fd = native.listenUnix({ path: p, backlog: 8 });
  const server = net.createServer();
  const accepted: net.Socket[] = [];
  t.teardown(() => {
    for (const s of accepted) s.destroy();
    server.close(); // owns fd now
  });
  await within(
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ fd }, () => resolve());
    }),
    3000,
    'listen({fd})',
  );
  const nextCred = () =>
    within(
      new Promise<native.PeerCred>(resolve =>
        server.once('connection', (sock: net.Socket) => {
          accepted.push(sock);
          // The accepted socket's fd is a private field of Node's handle: acceptable in a test.
          const sfd = (sock as unknown as { _handle: { fd: number } })._handle.fd;
          resolve(native.getPeerCred(sfd));
        }),
      ),
      5000,
      'connection',
    );

  const selfCred = nextCred();
  const c = await connect({ path: p });
  t.teardown(() => c.destroy());
  t.same(await selfCred, { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() }, 'this process');

  const childCred = nextCred();
  const child = track(
    t,
    spawn(NODE, ['-e', `require('net').connect(process.argv[1]).resume(); setTimeout(() => {}, 30000);`, p], {
      stdio: 'ignore',
    }),
  );
  const cred = await childCred;
  t.equal(cred.pid, child.pid, 'the child connecting');
  t.equal(cred.uid, process.getuid!());
});

// ---- sd_notify -------------------------------------------------------------------------

t.test('sdNotify and openNotifySocket', async t => {
  const dir = tmpDir(t);

  /** Opens a notify socket and returns it with a function awaiting the next message. */
  const open = (p: string, opts?: { mode?: number }) => {
    const queue: Array<{ msg: string; pid: number }> = [];
    let waiter: (() => void) | undefined;
    const sock = native.openNotifySocket(
      p,
      (msg, pid) => {
        queue.push({ msg, pid });
        waiter?.();
      },
      opts,
    );
    t.teardown(() => sock.close());
    const next = () =>
      within(
        new Promise<{ msg: string; pid: number }>(resolve => {
          const take = () => {
            const m = queue.shift();
            if (m) {
              waiter = undefined;
              resolve(m);
            } else waiter = take;
          };
          take();
        }),
        5000,
        `notify message on ${p}`,
      );
    return { sock, next };
  };

  t.test('filesystem path', async t => {
    const p = path.join(dir, 'notify.sock');
    const { sock, next } = open(p, { mode: 0o666 });
    t.equal(sock.path, p);
    t.ok(fs.statSync(p).isSocket());
    t.equal(fs.statSync(p).mode & 0o777, 0o666, 'mode applied');

    native.sdNotify(p, 'READY=1');
    t.same(await next(), { msg: 'READY=1', pid: process.pid });
    native.sdNotify(p, 'STATUS=two lines\nMAINPID=1');
    t.same(await next(), { msg: 'STATUS=two lines\nMAINPID=1', pid: process.pid });

    const child = track(
      t,
      spawn(NODE, ['-e', `require(process.argv[1]).sdNotify(process.argv[2], 'READY=1\\nSTATUS=child')`, ADDON, p], {
        stdio: 'inherit',
      }),
    );
    t.same(await next(), { msg: 'READY=1\nSTATUS=child', pid: child.pid }, "child's pid");

    sock.close();
    sock.close();
    t.notOk(fs.existsSync(p), 'close() unlinks the path');
    throwsErrno(t, () => native.sdNotify(p, 'READY=1'), { code: 'ENOENT', syscall: 'sendto', path: p }, 'after close');
  });

  t.test('abstract name', async t => {
    const name = `@tsm-notify-${process.pid}-${Date.now()}`;
    const { sock, next } = open(name);
    t.equal(sock.path, name);
    native.sdNotify(name, 'READY=1');
    t.same(await next(), { msg: 'READY=1', pid: process.pid });

    const child = track(
      t,
      spawn(NODE, ['-e', `require(process.argv[1]).sdNotify(process.argv[2], 'WATCHDOG=1')`, ADDON, name], {
        stdio: 'inherit',
      }),
    );
    t.same(await next(), { msg: 'WATCHDOG=1', pid: child.pid }, "child's pid");
    sock.close();
    // The name is free once the reader thread has woken from poll(), which held the socket.
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        native.sdNotify(name, 'READY=1');
      } catch {
        break;
      }
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    throwsErrno(t, () => native.sdNotify(name, 'READY=1'), { code: 'ECONNREFUSED', syscall: 'sendto', path: name }, 'after close');
  });

  t.test("a dead master's notify socket file is reclaimed", async t => {
    const p = path.join(dir, 'stale-notify.sock');
    const child = track(
      t,
      spawn(
        NODE,
        ['-e', `require(process.argv[1]).openNotifySocket(process.argv[2], () => {}, -1); console.log('open'); setInterval(() => {}, 1000);`, ADDON, p],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      ),
    );
    await waitOutput(child.stdout!, /open/, 8000, 'child notify socket open');
    throwsErrno(t, () => native.openNotifySocket(p, () => {}), { code: 'EADDRINUSE', syscall: 'bind', path: p }, 'while its owner lives');
    child.kill('SIGKILL');
    await within(once(child, 'exit'), 5000, 'child exit');
    t.ok(fs.statSync(p).isSocket(), 'socket file left behind');

    const { next } = open(p);
    native.sdNotify(p, 'READY=1');
    t.same(await next(), { msg: 'READY=1', pid: process.pid });
  });

  t.test('does not keep the process alive; callback exceptions are uncaught exceptions', async t => {
    const p = path.join(dir, 'idle.sock');
    const idle = track(
      t,
      spawn(NODE, ['-e', `require(process.argv[1]).openNotifySocket(process.argv[2], () => {}, -1);`, ADDON, p], {
        stdio: 'inherit',
      }),
    );
    const [code] = await within(once(idle, 'exit'), 5000, 'process with only a notify socket exits');
    t.equal(code, 0);
    t.notOk(fs.existsSync(p), 'the socket file is removed when the environment ends');

    // A worker thread's environment ends (and may unload the addon) with the socket still open.
    const inWorker = track(
      t,
      spawn(
        NODE,
        [
          '-e',
          `const { Worker } = require('worker_threads');
           const w = new Worker(\`const b = require(\${JSON.stringify(process.argv[1])});
             b.openNotifySocket('@tsm-worker-' + process.pid + '-' + require('worker_threads').threadId, () => {}, -1);\`,
             { eval: true });
           w.on('exit', c => console.log('worker exit ' + c));`,
          ADDON,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      ),
    );
    await waitOutput(inWorker.stdout!, /worker exit 0/, 8000, 'worker exit');
    const [code3, signal3] = await within(once(inWorker, 'exit'), 5000, 'worker host exit');
    t.same([code3, signal3], [0, null], 'no crash when a worker thread ends with the socket open');

    const thrower = track(
      t,
      spawn(
        NODE,
        [
          '-e',
          `const b = require(process.argv[1]);
           process.on('uncaughtException', e => { console.log('caught ' + e.message); process.exit(0); });
           const name = '@tsm-throw-' + process.pid;
           b.openNotifySocket(name, () => { throw new Error('boom'); }, -1);
           b.sdNotify(name, 'x');
           setTimeout(() => process.exit(3), 5000);`,
          ADDON,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      ),
    );
    await waitOutput(thrower.stdout!, /caught boom/, 8000, 'uncaughtException');
    const [code2] = await within(once(thrower, 'exit'), 5000, 'thrower exit');
    t.equal(code2, 0);
  });
});

// ---- argument checks -------------------------------------------------------------------

t.test('openFile: only regular files with one link, never through a symlink, as another user when asked', async t => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsm-open-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const { O_WRONLY, O_APPEND, O_CREAT, O_RDONLY } = fs.constants;
  const code = (fn: () => unknown) => {
    try {
      fs.closeSync(fn() as number);
      return 'opened';
    } catch (err) {
      return isErrno(err) ? `${err.code} ${err.syscall}` : String(err);
    }
  };
  const file = path.join(dir, 'log');
  const fd = native.openFile(file, O_WRONLY | O_APPEND | O_CREAT, 0o640);
  t.equal(fs.fstatSync(fd).mode & 0o777, 0o640, 'created with the mode asked for');
  t.ok(native.getCloexec(fd), 'close-on-exec');
  fs.closeSync(fd);
  t.equal(code(() => native.openFile(file, O_WRONLY | O_APPEND, 0)), 'opened', 'an existing regular file');
  fs.symlinkSync(file, path.join(dir, 'link'));
  t.equal(code(() => native.openFile(path.join(dir, 'link'), O_WRONLY | O_APPEND | O_CREAT, 0o644)), 'ELOOP open', 'a symlink is never followed');
  fs.linkSync(file, path.join(dir, 'hard'));
  t.equal(code(() => native.openFile(path.join(dir, 'hard'), O_WRONLY | O_APPEND, 0)), 'EMLINK open', 'a file with a second hard link is refused');
  fs.rmSync(path.join(dir, 'hard'));
  spawnSyncOk('mkfifo', [path.join(dir, 'fifo')]);
  // A FIFO with no reader would block open(O_WRONLY) for ever: refused before it is opened.
  t.equal(code(() => native.openFile(path.join(dir, 'fifo'), O_WRONLY | O_APPEND, 0)), 'EINVAL open', 'a FIFO is refused without blocking');
  if (process.getuid?.() === 0) {
    fs.writeFileSync(path.join(dir, 'secret'), 'x', { mode: 0o600 });
    fs.chmodSync(dir, 0o755);
    t.equal(code(() => native.openFile(path.join(dir, 'secret'), O_RDONLY, 0, { uid: 65534, gid: 65534 })), 'EACCES open', "root's 0600 file, opened as nobody");
    t.equal(code(() => native.openFile(path.join(dir, 'new'), O_WRONLY | O_CREAT, 0o600, { uid: 65534, gid: 65534 })), 'EACCES open', 'nobody may not create in a directory of root\'s');
  }
});

t.test('bad arguments throw TsmError TSM_ERR_NATIVE_ARG', async t => {
  // Deliberately ill-typed calls, as from untyped JavaScript.
  const loose = native as unknown as Record<string, (...args: unknown[]) => unknown>;
  const cases: Array<[string, unknown[]]> = [
    ['listenTcp', [{ host: '127.0.0.1', port: -1, backlog: 1 }]],
    ['listenTcp', [{ host: '127.0.0.1', port: 65536, backlog: 1 }]],
    ['listenTcp', [{ host: '127.0.0.1', port: 1.5, backlog: 1 }]],
    ['listenTcp', [{ host: 'localhost', port: 0, backlog: 1 }]],
    ['listenTcp', [{ host: '127.0.0.1', port: 0, backlog: -1 }]],
    ['listenTcp', [{ host: '127.0.0.1', port: 0, backlog: 1, reuseport: 'yes' }]],
    ['listenTcp', [null]],
    ['listenUnix', [{ path: '', backlog: 1 }]],
    ['listenUnix', [{ path: '/tmp/a\0b', backlog: 1 }]],
    ['listenUnix', [{ path: '/tmp/x.sock', backlog: 1, mode: 0o10000 }]],
    ['getsockname', [-1]],
    ['getsockname', ['3']],
    ['getCloexec', [undefined]],
    ['setCloexec', [0, 1]],
    ['closeFd', [2 ** 31]],
    ['dup2', [1, -2]],
    ['getPeerCred', [NaN]],
    ['setPdeathsig', [65]],
    ['setRlimitNofile', [0, 2048, 1024]],
    ['setRlimitNofile', [0, -1, 1024]],
    ['setPriority', [0, 20]],
    ['setPriority', [-5, 0]],
    ['setAffinity', [0, []]],
    ['setAffinity', [0, [-1]]],
    ['sdNotify', ['', 'READY=1']],
    ['sdNotify', ['@x', 5]],
    ['openNotifySocket', ['@x', 'not a function']],
    ['openNotifySocket', ['@x', () => {}, { mode: -1 }]],
  ];
  for (const [fn, args] of cases) {
    const label = `${fn}(${args.map(a => (typeof a === 'function' ? 'fn' : JSON.stringify(a))).join(', ')})`;
    t.throws(() => loose[fn]!(...args), { name: 'TsmError', code: 'TSM_ERR_NATIVE_ARG' }, label);
  }
  try {
    native.listenTcp({ host: '127.0.0.1', port: -1, backlog: 1 });
  } catch (err) {
    t.ok(err instanceof TsmError, 'an instance of TsmError');
    t.match((err as Error).message, /listenTcp: port must be an integer 0\.\.65535, got -1/);
  }
});
