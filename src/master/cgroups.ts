// A cgroup v2 of its own for each exec worker, below the master's cgroup: a child that leaves
// the worker's process group (setsid) stays in it, and cgroup.kill ends them all, which a
// process group cannot do. Under systemd the unit needs Delegate=yes for the master to make
// cgroups below its own (the shipped one has it).
import fs from 'node:fs';

/** The worker cgroups' name, one per worker pid. */
const PREFIX = 'tsmaster-worker-';

/** Where the master can make worker cgroups: its own cgroup's directory; or why it cannot. */
export function cgroupHome(): { dir: string } | { why: string } {
  let own: string | undefined;
  let mounts: string;
  try {
    own = fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::'))?.slice(3);
    mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch (err) {
    return { why: (err as Error).message };
  }
  if (own === undefined) return { why: 'the master is in no cgroup v2 hierarchy' };
  for (const line of mounts.split('\n')) {
    // id parent dev root mountpoint options... - fstype source superoptions
    const [left, right] = line.split(' - ');
    if (right?.split(' ')[0] !== 'cgroup2') continue;
    const f = left!.split(' ');
    const root = unescape(f[3]!);
    const at = unescape(f[4]!);
    if (own !== root && !own.startsWith(root === '/' ? '/' : `${root}/`)) continue;
    const dir = `${at}${own.slice(root === '/' ? 0 : root.length)}`.replace(/\/+$/, '') || '/';
    // cgroup.kill: Linux 5.14 and later. The root cgroup has none but can hold children with one.
    if (!fs.existsSync(`${dir}/cgroup.procs`)) continue;
    try {
      fs.accessSync(dir, fs.constants.W_OK);
    } catch {
      return { why: `${dir} is not writable (a read-only cgroup mount, or no delegation)` };
    }
    return { dir };
  }
  return { why: 'no cgroup v2 file system is mounted for the master’s cgroup' };
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * Remove the empty worker cgroups in `home` that a master killed together with its keeper
 * left. rmdir fails on a cgroup that holds a process, so a live one of another master stays.
 */
export function removeStaleCgroups(home: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(home);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(PREFIX)) continue;
    try {
      fs.rmdirSync(`${home}/${name}`);
    } catch {
      // in use
    }
  }
}

/**
 * Make worker `pid`'s cgroup and move it there (it waits, held by spawnWorker, until it is).
 * A directory of that name left by a master killed with its keeper is reused when empty.
 * Throws the syscall error, or EBUSY when the directory holds processes.
 */
export function enterCgroup(home: string, pid: number): string {
  const dir = `${home}/${PREFIX}${pid}`;
  try {
    fs.mkdirSync(dir, 0o755);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || fs.readFileSync(`${dir}/cgroup.procs`, 'utf8').trim() !== '') throw err;
  }
  if (!fs.existsSync(`${dir}/cgroup.kill`)) {
    fs.rmdirSync(dir);
    throw Object.assign(new Error(`${dir}: no cgroup.kill (Linux 5.14 and later)`), { code: 'ENOTSUP' });
  }
  fs.writeFileSync(`${dir}/cgroup.procs`, String(pid));
  return dir;
}

/** SIGKILL to every process in the cgroup, its children's cgroups too. */
export function killCgroup(dir: string): void {
  try {
    fs.writeFileSync(`${dir}/cgroup.kill`, '1');
  } catch {
    // gone already
  }
}

/** Remove the cgroup once its processes are gone (tried every 100 ms, for 5 s at most), then `done`. */
export function removeCgroup(dir: string, onGiveUp: (why: string) => void, done: () => void, tries = 50): void {
  try {
    fs.rmdirSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EBUSY' && tries > 1) return void setTimeout(() => removeCgroup(dir, onGiveUp, done, tries - 1), 100).unref();
    if (code !== 'ENOENT') onGiveUp(`rmdir ${dir}: ${(err as Error).message}`);
  }
  done();
}
