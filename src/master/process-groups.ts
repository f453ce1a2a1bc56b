// Exec workers lead their own process groups, so a shell's background children are stopped
// with them and cannot outlive them holding the listening sockets; where the kernel offers
// it, each is also in a cgroup of its own (cgroups.ts), which holds what left the group too.
import { spawn, type ChildProcess } from 'node:child_process';
import { procStat, processes, uptimeTicks } from '../proc.js';
import { cgroupHome, enterCgroup, killCgroup, removeCgroup, removeStaleCgroups } from './cgroups.js';

/**
 * The keeper outlives a master that is killed with SIGKILL: it reads "+ PGID START" and
 * "- PGID" lines on a pipe only the master holds, and at EOF (the master is gone, however it
 * ended) ends every group still listed: by its cgroup's cgroup.kill when it has one (in $1),
 * or else by kill(-PGID), only while the leader lives with the start time the master gave
 * (so the group id is not another process's now). It ignores the signals a terminal or a
 * stop may send its way, so that it is there for the EOF.
 */
const KEEPER = `trap '' HUP INT QUIT TERM USR1 USR2 WINCH TTIN TTOU PIPE
home=$1
groups=' '
while read -r op pg st; do
  case $pg in ''|*[!0-9]*|0*|1) continue ;; esac
  case $op in
    +) case $st in ''|*[!0-9]*) continue ;; esac
       groups="$groups$pg:$st " ;;
    -) case $groups in *" $pg:"*) rest=\${groups#* $pg:}; groups="\${groups%% $pg:*} \${rest#* }" ;; esac ;;
  esac
done
for e in $groups; do
  pg=\${e%%:*}
  cg=$home/tsmaster-worker-$pg
  if [ -n "$home" ] && [ -f "$cg/cgroup.kill" ]; then echo 1 > "$cg/cgroup.kill"; continue; fi
  stat=$(cat /proc/$pg/stat 2>/dev/null) || continue
  set -- \${stat##*) }
  shift 19
  [ "$1" = "\${e#*:}" ] && kill -KILL "-$pg" 2>/dev/null
done
[ -n "$home" ] || exit 0
for e in $groups; do
  cg=$home/tsmaster-worker-\${e%%:*}
  i=0
  while [ -d "$cg" ] && ! rmdir "$cg" 2>/dev/null && [ $i -lt 50 ]; do i=$((i+1)); sleep 0.1; done
done`;

export const KEEPER_TITLE = 'tsmaster: process group keeper';
const KEEPER_RESTART_MS = 1000;

/** A live exec worker's group: its leader's start time (its identity), its cgroup if any. */
interface Group {
  start: number;
  cgroup: string | null;
}

export class ProcessGroups {
  private keeper: ChildProcess | null = null;
  private readonly live = new Map<number, Group>();
  constructor(
    private readonly warn: (m: string) => void,
    /** Where worker cgroups are made, or why there are none; found at the first exec worker. */
    private home: { dir: string } | { why: string } | null = null,
  ) {}

  /** Exec workers get a cgroup each: spawnWorker holds each until add() has put it there. */
  get contained(): boolean {
    return 'dir' in this.where();
  }

  private where(): { dir: string } | { why: string } {
    if (this.home) return this.home;
    this.home = cgroupHome();
    if ('dir' in this.home) removeStaleCgroups(this.home.dir);
    else this.warn(`exec workers get no cgroup of their own (${this.home.why}): a process one starts that leaves its process group (setsid) can outlive it`);
    return this.home;
  }

  /** A new exec worker `pgid` (its own pid) leads a group now; in its cgroup from here on. */
  add(pgid: number): void {
    const home = this.where();
    let cgroup: string | null = null;
    if ('dir' in home) {
      try {
        cgroup = enterCgroup(home.dir, pgid);
      } catch (err) {
        this.warn(`worker process ${pgid} has no cgroup of its own: ${(err as Error).message}; a process it starts that leaves its process group can outlive it`);
      }
    }
    const group = { start: procStat(pgid)?.start ?? 0, cgroup };
    this.live.set(pgid, group);
    if (this.keeper) this.tell(`+ ${pgid} ${group.start}`);
    else this.keeper = this.startKeeper();
  }

  /**
   * Signal the worker's whole group. Only while the worker is not collected (signalWorker),
   * so its pid, the group's id, is still its own; the start time says so too.
   */
  signal(pgid: number, signal: NodeJS.Signals): void {
    const g = this.live.get(pgid);
    if (!g || procStat(pgid)?.start !== g.start) return;
    try {
      process.kill(-pgid, signal);
    } catch {
      // no process left in the group
    }
  }

  /**
   * The leader has exited (and been collected): what is left of its group goes with it, at
   * once or after `graceMs` (the rest of a graceful stop's time), at the latest when the
   * master exits.
   */
  end(pgid: number, graceMs = 0): void {
    const g = this.live.get(pgid);
    if (!g) return;
    const exitSeen = uptimeTicks();
    const kill = () => {
      if (this.live.get(pgid) !== g) return;
      this.live.delete(pgid);
      if (!g.cgroup) {
        if (this.stillTheWorkers(pgid, g, exitSeen)) this.kill(pgid);
        return this.tell(`- ${pgid}`);
      }
      killCgroup(g.cgroup);
      // Listed with the keeper until it is gone: a master that exits meanwhile leaves it to the keeper.
      removeCgroup(g.cgroup, (why) => this.warn(why), () => this.tell(`- ${pgid}`));
    };
    if (graceMs > 0) setTimeout(kill, graceMs).unref();
    else kill();
  }

  /**
   * Whether group `pgid` is still the one its worker led, the worker being gone and its pid
   * free: a process of the worker's session (setsid made its id `pgid`) started before the
   * worker's exit was seen has held that number since, so no other process can have it.
   */
  private stillTheWorkers(pgid: number, g: Group, exitSeen: number): boolean {
    if (procStat(pgid)) return false;
    for (const pid of processes()) {
      const st = procStat(pid);
      if (st && st.session === pgid && st.start >= g.start && st.start <= exitSeen) return true;
    }
    return false;
  }

  private kill(pgid: number): void {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // no process left in the group
    }
  }

  /** At the master's exit: the keeper reads EOF and ends whatever is still listed. */
  close(): void {
    const k = this.keeper;
    this.keeper = null;
    k?.stdin?.end();
  }

  private tell(line: string): void {
    this.keeper?.stdin?.write(`${line}\n`);
  }

  /** Started with the first exec worker, and again a second after it died; told every live group. */
  private startKeeper(): ChildProcess | null {
    // Its own session: a terminal's ^C to the master's group does not reach it.
    const home = this.home && 'dir' in this.home ? this.home.dir : '';
    const child = spawn('/bin/sh', ['-c', KEEPER, 'keeper', home], { argv0: KEEPER_TITLE, detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
    if (child.pid === undefined) {
      child.once('error', (err) => this.warn(`process group keeper not started: ${err.message}; an exec worker's children may outlive a killed master`));
      return null;
    }
    child.stdin?.on('error', () => undefined);
    child.once('exit', () => {
      if (this.keeper !== child) return;
      this.keeper = null;
      this.warn(`process group keeper exited; another one in ${KEEPER_RESTART_MS}ms`);
      // Not at once: a keeper that cannot run must not become a loop.
      setTimeout(() => {
        if (!this.keeper && this.live.size > 0) this.keeper = this.startKeeper();
      }, KEEPER_RESTART_MS).unref();
    });
    child.stdin?.write([...this.live].map(([pgid, g]) => `+ ${pgid} ${g.start}\n`).join(''));
    return child;
  }
}
