// What the master does to the world beyond its own records goes through this one small
// object (as tableflip's env): starting workers and a new master, the pidfile, the clock and
// timers. The real one is below; the in-process tests of step + settle swap in a fake.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import type { ParentMessage } from '../protocol.js';
import * as pidfile from './pidfile.js';
import { spawnWorker } from './spawn-worker.js';

export interface Seam {
  now(): number;
  /** Run `fire` once after `ms`; the handle cancels it. */
  after(ms: number, fire: () => void): { cancel(): void };
  spawnWorker: typeof spawnWorker;
  spawnMaster(command: string, args: string[], opts: SpawnOptions): ChildProcess;
  pidfile: Pick<typeof pidfile, 'writePid' | 'moveToOldbin' | 'restoreFromOldbin' | 'removeIfOurs' | 'isLiveMaster'>;
  /** The IPC channel to whoever started this master (the launcher, or the old master of an upgrade). */
  parent: { connected(): boolean; send(msg: ParentMessage): void; disconnect(): void };
}

export const realSeam: Seam = {
  now: () => Date.now(),
  after(ms, fire) {
    const t = setTimeout(fire, ms);
    return { cancel: () => clearTimeout(t) };
  },
  spawnWorker,
  spawnMaster: (command, args, opts) => spawn(command, args, opts),
  pidfile,
  parent: {
    connected: () => process.connected === true && process.send !== undefined,
    send: (msg) => process.send!(msg),
    disconnect: () => process.disconnect(),
  },
};
