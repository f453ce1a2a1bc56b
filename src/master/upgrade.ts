import type { ChildProcess } from 'node:child_process';
import type { InheritEnv } from '../protocol.js';

/** This master's upgrade, as the old master: the new one (our child) and how far it got. */
export interface Upgrade {
  pid: number;
  child: ChildProcess;
  ready: boolean;
  killing: boolean;
  /** A batched upgrade: this master's slots draining for the new master's last ready batch. */
  draining: number[] | null;
  /** The totals handed to the new master at USR2; what is counted after is handed over at exit. */
  totalsAtStart: InheritEnv['totals'];
}
