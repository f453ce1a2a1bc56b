// Exec workers lead their own process groups, so a shell's background children are stopped
// with them and cannot outlive them holding the listening sockets.
import { spawn, type ChildProcess } from 'node:child_process';

/**
 * The keeper outlives a master that is killed with SIGKILL: it reads "+ PGID" and "- PGID"
 * lines on a pipe only the master holds, and at EOF (the master is gone, however it ended)
 * kills every group still listed. It ignores the signals a terminal or a stop may send its
 * way, so that it is there for the EOF.
 */
const KEEPER = `trap '' HUP INT QUIT TERM USR1 USR2 WINCH TTIN TTOU PIPE
groups=' '
while read -r op pg; do
  case $pg in ''|*[!0-9]*|0*|1) continue ;; esac
  case $op in
    +) groups="$groups$pg " ;;
    -) case $groups in *" $pg "*) groups="\${groups%% $pg *} \${groups#* $pg }" ;; esac ;;
  esac
done
for pg in $groups; do kill -KILL "-$pg" 2>/dev/null; done`;

export const KEEPER_TITLE = 'tsmaster: process group keeper';
const KEEPER_RESTART_MS = 1000;

export class ProcessGroups {
  private keeper: ChildProcess | null = null;
  private readonly live = new Set<number>();

  constructor(private readonly warn: (m: string) => void) {}

  /** A new exec worker `pgid` (its own pid) leads a group now. */
  add(pgid: number): void {
    this.live.add(pgid);
    if (this.keeper) this.tell(`+ ${pgid}`);
    else this.keeper = this.startKeeper();
  }

  /** Signal the worker's whole group; ESRCH only means it is gone already. */
  signal(pgid: number, signal: NodeJS.Signals): void {
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
    if (!this.live.has(pgid)) return;
    const kill = () => {
      if (!this.live.delete(pgid)) return;
      this.signal(pgid, 'SIGKILL');
      this.tell(`- ${pgid}`);
    };
    if (graceMs > 0) setTimeout(kill, graceMs).unref();
    else kill();
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
    const child = spawn('/bin/sh', ['-c', KEEPER], { argv0: KEEPER_TITLE, detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
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
    child.stdin?.write([...this.live].map((g) => `+ ${g}\n`).join(''));
    return child;
  }
}
