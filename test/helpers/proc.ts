// What /proc says beyond src/proc.ts: command lines, memory, sockets, pid namespaces; and CPU burners.
import fs from 'node:fs';
import { spawn } from 'node:child_process';

export function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}

/** VmRSS in KiB, or null when the process is gone. */
export function rssKb(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** A process's pid in its own pid namespace (the last NSpid of /proc/PID/status). */
export function nsPid(pid: number): number {
  const line = /^NSpid:\s*(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? String(pid);
  return Number(line.trim().split(/\s+/).pop());
}

/** Inodes of the sockets a process holds (/proc/PID/fd). */
export function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(m[1]!);
    } catch {
      // fd closed meanwhile
    }
  }
  return out;
}

export interface TcpSocket {
  /** Local address as the kernel writes it: 0100007F:1F90 is 127.0.0.1:8080. */
  local: string;
  /** 01 established, 0A listening. */
  state: string;
  inode: string;
}

/** Every TCP socket of the network namespace (/proc/net/tcp and tcp6). */
export function tcpTable(): TcpSocket[] {
  const out: TcpSocket[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of fs.readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9) out.push({ local: f[1]!, state: f[3]!, inode: f[9]! });
    }
  }
  return out;
}

/** Inodes of the TCP sockets in `state` (01 established, 0A listening) held by `pid`. */
export function tcpSockets(pid: number, state: '01' | '0A'): string[] {
  const mine = socketInodes(pid);
  return tcpTable()
    .filter((s) => s.state === state && mine.has(s.inode))
    .map((s) => s.inode)
    .sort();
}

/** `n` processes that spin on a CPU each until teardown: races hide on a quiet machine. */
export function cpuBurners(t: { teardown(fn: () => void): void }, n = 2): void {
  for (let i = 0; i < n; i++) {
    const p = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
    t.teardown(() => {
      p.kill('SIGKILL');
    });
  }
}
