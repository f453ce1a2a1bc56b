// The control socket speaks line-delimited JSON: one request line, one response line.

export type ControlRequest = { cmd: 'status' } | { cmd: 'reload' } | { cmd: 'ping' };

export interface WorkerStatus {
  pid: number;
  generation: number;
  slot: number;
  state: 'starting' | 'ready' | 'draining';
  uptimeMs: number;
  /** Restarts of this worker's slot in its generation. */
  restarts: number;
  /** CPU % since the last sample (pidusage); null when the process is gone. */
  cpu: number | null;
  rss: number | null;
  connections: number;
  requests: number;
}

export interface MasterStatus {
  pid: number;
  generation: number;
  state: string;
  uptimeMs: number;
  /** `old`: this master started a new one (USR2); `new`: an old master started this one. */
  upgrade: { role: 'none' } | { role: 'old'; newPid: number; newReady: boolean } | { role: 'new'; oldPid: number; oldAlive: boolean };
  totals: { requests: number; restarts: number };
  workers: WorkerStatus[];
}

export type ControlResponse =
  | { ok: true; status: MasterStatus }
  | { ok: true; reload: 'finished' }
  | { ok: true; pong: number }
  | { ok: false; error: string };

/** Longest request line accepted; a longer one is answered with an error and the connection closed. */
export const MAX_LINE = 64 * 1024;

/** Where the old master's control socket is during an upgrade. */
export function oldbinControlPath(path: string): string {
  return `${path}.oldbin`;
}
