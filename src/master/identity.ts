// Who a process is, from the kernel: any process can set its title (/proc/PID/cmdline), so
// the title only tells a master from the other Node processes of a trusted user, never on
// its own that a process is a master.
import fs from 'node:fs';
import path from 'node:path';
import { exeOf, isAlive, uidsOf } from '../proc.js';

/** The title every master sets (src/cli/main.ts), followed by its command line. */
export const MASTER_TITLE = 'tsmaster: master process';

/**
 * The file name of the Node binary we run. Only the name counts, not the directory or the
 * file itself: after a deploy the master may run a newer Node from another directory, and
 * a Node upgraded in place leaves the running master with "node (deleted)".
 */
const ourNode = path.basename(fs.realpathSync(process.execPath));

/** The users a master may run as: root, or the user we run as (a master started without root). */
function trustedUid(uid: number): boolean {
  return uid === 0 || uid === process.geteuid?.();
}

/**
 * A live tsmaster master: alive (not a zombie), every uid of it root or ours (so neither the
 * worker user nor another local user can pass for one, whatever they call themselves), it
 * runs a Node binary of our name (a pid reused by another program of root's is no master),
 * and it has the master's title (one of root's other Node processes is none). A process of
 * root's whose executable we may not look at (we are not root) is judged by its uid.
 */
export function isLiveMaster(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return false;
  const uids = uidsOf(pid);
  if (uids === null || !uids.every(trustedUid)) return false;
  const exe = exeOf(pid);
  if (exe === null || (exe !== 'hidden' && path.basename(exe.replace(/ \(deleted\)$/, '')) !== ourNode)) return false;
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith(MASTER_TITLE);
  } catch {
    return false;
  }
}
