// Exec workers are contained: what one starts cannot outlive it, even a child that leaves
// its process group with setsid() and keeps serving on the inherited socket. Each worker is
// in a cgroup v2 of its own (cgroup.kill), where the kernel offers one.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { cgroupHome } from '../src/master/cgroups.js';
import { ProcessGroups } from '../src/master/process-groups.js';
import { childrenOf, fixtures, freePort, isGone, sleep, startMaster, tempDir, waitFor } from './helpers/master.js';

const python = '/usr/bin/python3';

/** Why worker cgroups cannot be made here, or false. */
function whyNot(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (cgroup v2 write access)';
  if (!fs.existsSync(python)) return `needs ${python}`;
  const home = cgroupHome();
  if ('why' in home) return `no cgroup v2 to contain workers: ${home.why}`;
  const probe = path.join(home.dir, `tsmaster-probe-${process.pid}`);
  try {
    fs.mkdirSync(probe);
    const kill = fs.existsSync(path.join(probe, 'cgroup.kill'));
    fs.rmdirSync(probe);
    return kill ? false : 'no cgroup.kill (Linux 5.14 and later)';
  } catch (err) {
    return `cannot make a cgroup in ${home.dir}: ${(err as Error).message}`;
  }
}

/** Nothing accepts on the port any more. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => (s.destroy(), resolve(false)));
    s.once('error', () => resolve(true));
  });
}

const why = whyNot();
t.test('an exec worker\'s setsid() grandchild goes with its worker, and with a master killed by SIGKILL', { skip: why }, async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const pidOf = path.join(dir, 'grandchild.pid');
  const grandchild = async () => {
    const pid = await waitFor('the grandchild', () => (fs.existsSync(pidOf) ? Number(fs.readFileSync(pidOf, 'utf8')) : undefined), 10_000);
    fs.rmSync(pidOf);
    return pid;
  };
  const seen: number[] = [];
  t.teardown(() => {
    for (const p of seen) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone, as it should be
      }
    }
  });
  const m = await startMaster(t, {
    dir,
    conf: `worker_processes 1;\nready_timeout 10s;\nlisten 127.0.0.1:${port};\nexec ${python} ${path.join(fixtures, 'exec', 'setsid_grandchild.py')} ${pidOf};\n`,
  });
  const [worker] = childrenOf(m.masterPid);
  const first = await grandchild();
  seen.push(first);
  const home = (cgroupHome() as { dir: string }).dir;
  const cgroup = path.join(home, `tsmaster-worker-${worker}`);
  t.match(fs.readFileSync(`/proc/${first}/cgroup`, 'utf8'), new RegExp(`^0::.*/tsmaster-worker-${worker}$`, 'm'), "the grandchild is in its worker's cgroup");

  // The worker dies: its grandchild, in a session of its own, goes with it.
  process.kill(worker!, 'SIGKILL');
  await waitFor('the grandchild gone with its worker', () => isGone(first), 5000);
  await waitFor('its cgroup removed', () => !fs.existsSync(cgroup), 5000);
  t.pass('the grandchild went with its worker, and so did the cgroup');

  const second = await grandchild();
  seen.push(second);
  const [respawned] = childrenOf(m.masterPid);
  m.signal('SIGKILL');
  await waitFor('the grandchild gone with the master', () => isGone(second), 5000);
  t.ok(await waitFor('the port free', () => refused(port), 5000), 'nothing listens on the port');
  await waitFor('the cgroup removed by the keeper', () => !fs.existsSync(path.join(home, `tsmaster-worker-${respawned}`)), 5000);
  t.pass('after kill -9 of the master: no grandchild, no listener, no cgroup left');
});

t.test("a master killed by SIGKILL leaves its exec workers' notify directory; the next master removes it, and only ours", { skip: process.getuid?.() !== 0 ? 'needs root' : false }, async (t) => {
  const tmp = tempDir(t);
  const port = await freePort();
  const conf = `worker_processes 1;\nlisten 127.0.0.1:${port};\nexec /bin/sh -c "exec sleep 1000";\n`;
  const env = { ...process.env, TMPDIR: tmp };
  const notifyDirs = () => fs.readdirSync(tmp).filter((n) => n.startsWith('tsmaster-notify-'));
  const first = await startMaster(t, { conf, env });
  const left = notifyDirs();
  t.same(left.map((n) => n.split('-')[2]), [String(first.masterPid)], 'named for its master');
  first.signal('SIGKILL');
  await waitFor('the first master gone', () => isGone(first.masterPid));
  t.same(notifyDirs(), left, 'left behind');
  // Same name pattern and a dead pid, but not a directory of ours: another user's, a symlink.
  const dead = left[0]!.split('-')[2]!;
  const theirs = path.join(tmp, `tsmaster-notify-${dead}-theirs`);
  fs.mkdirSync(theirs);
  fs.chownSync(theirs, 65534, 65534);
  const target = path.join(tmp, 'target');
  fs.mkdirSync(target);
  fs.writeFileSync(path.join(target, 'keep'), 'x');
  fs.symlinkSync(target, path.join(tmp, `tsmaster-notify-${dead}-link`));

  const second = await startMaster(t, { conf, env });
  const now = notifyDirs().sort();
  t.same(now, [`tsmaster-notify-${dead}-link`, `tsmaster-notify-${dead}-theirs`, ...now.filter((n) => n.split('-')[2] === String(second.masterPid))].sort(), "the dead master's directory is gone");
  t.equal(now.filter((n) => n.split('-')[2] === String(second.masterPid)).length, 1, 'the new master has its own');
  t.ok(fs.existsSync(path.join(target, 'keep')), 'the symlink was not followed');
});

t.test('without a cgroup, a group is killed only while its id is provably still the worker\'s', async (t) => {
  const groups = new ProcessGroups(() => undefined, { why: 'none in this test' });
  t.teardown(() => groups.close());
  // The leader exits, a process it started stays in its group: killed with it.
  const leader = spawn('/bin/sh', ['-c', 'sleep 100 & read -r _'], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
  groups.add(leader.pid!);
  const member = await waitFor('the member', () => childrenOf(leader.pid!)[0], 5000);
  t.teardown(() => killQuietly(member));
  const exited = new Promise((r) => leader.once('exit', r));
  leader.stdin!.end('\n');
  await exited;
  groups.end(leader.pid!);
  await waitFor('the member killed', () => isGone(member), 5000);
  t.pass("the leader's group went with it");

  // A process with the leader's pid after its exit is not the leader: its group is left alone.
  // (Here the same process stands for one that took the number.)
  const other = spawn('/bin/sh', ['-c', 'exec sleep 100'], { detached: true, stdio: 'ignore' });
  t.teardown(() => killQuietly(other.pid!));
  groups.add(other.pid!);
  groups.end(other.pid!);
  await sleep(300);
  t.notOk(isGone(other.pid!), 'not killed');
});

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}
