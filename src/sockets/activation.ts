import * as native from '../native/index.js';
import type { FdDescription } from '../protocol.js';
import { notAListener } from '../master/inherited.js';
import { keyOfFd } from './listen.js';

const SD_LISTEN_FDS_START = 3;

/**
 * systemd socket activation: the sockets in fds 3.. when LISTEN_PID names this process.
 * The variables are removed so neither workers nor a new master mistake them for theirs.
 */
export function activatedSockets(warn: (message: string) => void, env: NodeJS.ProcessEnv = process.env): FdDescription[] {
  const pid = Number(env.LISTEN_PID);
  const count = Number(env.LISTEN_FDS);
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (pid !== process.pid || !Number.isInteger(count) || count <= 0) return [];
  const fds: FdDescription[] = [];
  for (let i = 0; i < count; i++) {
    const fd = SD_LISTEN_FDS_START + i;
    // A datagram socket (ListenDatagram=) or anything else is no listener for workers.
    const why = notAListener(fd);
    if (why !== null) {
      warn(`LISTEN_FDS: ${why}: not used`);
      continue;
    }
    // Inherited without FD_CLOEXEC: keep them out of every child but the ones we hand them to.
    native.setCloexec(fd, true);
    fds.push({ fd, name: names[i] ?? '', key: keyOfFd(fd), activated: true });
  }
  return fds;
}
