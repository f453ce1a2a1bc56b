import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as native from '../native/index.js';

/**
 * The NOTIFY_SOCKET exec workers get, one per worker group id. It lives in a directory of
 * its own with a random name, made by the master (mkdtemp, 0700) and opened up to the
 * workers' group only (0710, root:GID, changed through its fd): other users can neither
 * reach the socket nor squat its name, as they could with an abstract socket. The socket
 * itself is read on a thread of the addon's, so no sender can block the loop.
 */
export class WorkerNotifySockets {
  private readonly byGid = new Map<number, { dir: string; sock: native.NotifySocket }>();

  constructor(private readonly onMessage: (msg: string, pid: number) => void) {}

  /** The path for workers running with `gid` (null: as the master itself). */
  pathFor(user: { gid: number } | null): string {
    const gid = user?.gid ?? process.getegid?.() ?? 0;
    let entry = this.byGid.get(gid);
    if (!entry) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsmaster-notify-'));
      try {
        if (user) {
          const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW);
          try {
            fs.fchownSync(fd, process.geteuid?.() ?? 0, gid);
            fs.fchmodSync(fd, 0o710);
          } finally {
            fs.closeSync(fd);
          }
        }
        const sock = native.openNotifySocket(path.join(dir, 'notify'), this.onMessage, { mode: user ? 0o666 : 0o600 });
        entry = { dir, sock };
      } catch (err) {
        fs.rmSync(dir, { recursive: true, force: true });
        throw err;
      }
      this.byGid.set(gid, entry);
    }
    return entry.sock.path;
  }

  close(): void {
    for (const { dir, sock } of this.byGid.values()) {
      sock.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
    this.byGid.clear();
  }
}
