import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as native from '../native/index.js';
import { isAlive } from '../proc.js';

/** tsmaster-notify-<master pid>-<random>: the pid tells a next master whose it was. */
const PREFIX = 'tsmaster-notify-';

/**
 * The NOTIFY_SOCKET exec workers get, one per worker user. It lives in a directory of its
 * own with a random name, made by the master (mkdtemp: root's, 0700; 0711 when workers run
 * as `user`, so they may pass through it but not list or change it), and the socket file is
 * that user's, mode 0600: no other user, not even one in the worker's group, can reach it or
 * squat its name, as they could with an abstract socket. The directory being root's, the
 * socket is chowned by path without a race. It is read on a thread of the addon's, so no
 * sender can block the loop.
 */
export class WorkerNotifySockets {
  private readonly byUid = new Map<number, { dir: string; sock: native.NotifySocket }>();

  constructor(private readonly onMessage: (msg: string, pid: number) => void) {}

  /** The path for workers running as `user` (null: as the master itself). */
  pathFor(user: { uid: number; gid: number } | null): string {
    const uid = user?.uid ?? process.geteuid?.() ?? 0;
    let entry = this.byUid.get(uid);
    if (!entry) {
      if (this.byUid.size === 0) removeStale();
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${PREFIX}${process.pid}-`));
      try {
        const file = path.join(dir, 'notify');
        if (user) fs.chmodSync(dir, 0o711);
        const sock = native.openNotifySocket(file, this.onMessage, { mode: 0o600 });
        if (user) fs.lchownSync(file, user.uid, user.gid);
        entry = { dir, sock };
      } catch (err) {
        fs.rmSync(dir, { recursive: true, force: true });
        throw err;
      }
      this.byUid.set(uid, entry);
    }
    return entry.sock.path;
  }

  close(): void {
    for (const { dir, sock } of this.byUid.values()) {
      sock.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
    this.byUid.clear();
  }
}

/**
 * What masters killed with SIGKILL left: directories of ours, by name, owner and type, whose
 * master's pid runs no more. lstat, so a planted symlink is never followed; in a sticky temp
 * directory no other user can swap our directory for something else after the check.
 */
function removeStale(): void {
  const tmp = os.tmpdir();
  let names: string[];
  try {
    names = fs.readdirSync(tmp);
  } catch {
    return;
  }
  const uid = process.geteuid?.() ?? 0;
  for (const name of names) {
    const m = name.startsWith(PREFIX) ? /^(\d+)-./.exec(name.slice(PREFIX.length)) : null;
    const pid = Number(m?.[1]);
    if (!m || !(pid > 0) || pid === process.pid || isAlive(pid)) continue;
    const dir = path.join(tmp, name);
    try {
      const st = fs.lstatSync(dir);
      if (st.isDirectory() && st.uid === uid) fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // gone meanwhile, or not ours to remove
    }
  }
}
