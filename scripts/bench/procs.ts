// Processes the benchmark starts, and the guarantee that every one of them is stopped:
// servers run in their own process group (detached), so a group kill also reaches the
// workers they fork and a new tsmaster master started by USR2; load generators are plain
// children. On a normal end, an error, Ctrl-C or SIGTERM everything is stopped, gently
// first, and the temporary directory is removed.
import { execFile, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** pgid -> label of every detached server group still (possibly) alive. */
const groups = new Map();
/** Non-detached children (load generators, one-shot commands). */
const children = new Set();
/** Async stop steps (pm2 kill, tsmaster -s stop), run before the group kills, newest first. */
const stoppers = [];
/** Synchronous fallbacks for the 'exit' handler (no event loop there). */
const syncStoppers = [];
let tmpRoot = null;
let cleaning = null;

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function tempRoot() {
  tmpRoot ??= fs.mkdtempSync(path.join(os.tmpdir(), 'tsmaster-bench-'));
  return tmpRoot;
}

export function tempDir(name) {
  const dir = path.join(tempRoot(), name);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** spawn(), remembered for cleanup. `detached` children get their own process group. */
export function track(cmd, args, opts = {}, label = cmd) {
  const child = spawn(cmd, args, opts);
  child.on('error', () => undefined);
  if (opts.detached) {
    if (child.pid) groups.set(child.pid, label);
  } else {
    children.add(child);
    child.once('exit', () => children.delete(child));
  }
  return child;
}

/** Run a command to completion (async, so the event loop keeps ticking). */
export function run(cmd, args, opts = {}) {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { maxBuffer: 16 << 20, timeout: 120_000, ...opts }, (err, stdout, stderr) => {
      children.delete(child);
      resolve({
        code: err ? (typeof err.code === 'number' ? err.code : 1) : 0,
        signal: err?.signal ?? null,
        stdout: String(stdout),
        stderr: String(stderr),
        ms: performance.now() - started,
        error: err && typeof err.code !== 'number' ? String(err.message) : null,
      });
    });
    children.add(child);
  });
}

export function onStop(fn) {
  stoppers.push(fn);
  return () => {
    const i = stoppers.indexOf(fn);
    if (i >= 0) stoppers.splice(i, 1);
  };
}

export function onExitSync(fn) {
  syncStoppers.push(fn);
  return () => {
    const i = syncStoppers.indexOf(fn);
    if (i >= 0) syncStoppers.splice(i, 1);
  };
}

// ---- /proc ---------------------------------------------------------------------------

let clkTck = 0;
export function clockTicks() {
  if (!clkTck) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    clkTck = Number.parseInt(r.stdout, 10) || 100;
  }
  return clkTck;
}

/** Fields of /proc/PID/stat we use; null when the process is gone. */
export function procStat(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // f[0] is field 3 (state); field N is f[N - 3].
    return { state: f[0], ppid: Number(f[1]), pgrp: Number(f[2]), utime: Number(f[11]), stime: Number(f[12]) };
  } catch {
    return null;
  }
}

/** Gone, or a zombie nobody reaped yet (a reparented master may stay one for a while). */
export function isGone(pid) {
  const s = procStat(pid);
  return s === null || s.state === 'Z' || s.state === 'X';
}

/** VmRSS in KiB, or null. */
export function rssKb(pid) {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

function livePids(filter) {
  const out = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const s = procStat(Number(e));
    if (s && s.state !== 'Z' && s.state !== 'X' && filter(s, Number(e))) out.push(Number(e));
  }
  return out;
}

export function groupPids(pgid) {
  return livePids((s) => s.pgrp === pgid);
}

export function childPids(ppid) {
  return livePids((s) => s.ppid === ppid);
}

function signalGroup(pgid, sig) {
  try {
    process.kill(-pgid, sig);
    return true;
  } catch {
    return false;
  }
}

/** TERM the group, KILL what is left after `graceMs`. */
export async function stopGroup(pgid, graceMs = 3000) {
  if (!groups.has(pgid)) return;
  signalGroup(pgid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (groupPids(pgid).length > 0 && Date.now() < deadline) await sleep(50);
  if (groupPids(pgid).length > 0) signalGroup(pgid, 'SIGKILL');
  const hard = Date.now() + 2000;
  while (groupPids(pgid).length > 0 && Date.now() < hard) await sleep(50);
  groups.delete(pgid);
}

/** A process group started by someone else (PM2's daemon) that cleanup must also stop. */
export function adoptGroup(pgid, label) {
  groups.set(pgid, label);
}

export function forgetGroup(pgid) {
  groups.delete(pgid);
}

/** Stop everything: async steps, then the groups, then the children; remove the temp dir. */
export function cleanup() {
  cleaning ??= (async () => {
    for (const fn of [...stoppers].reverse()) {
      try {
        await Promise.race([fn(), sleep(15_000)]);
      } catch {
        // The group kill below is the fallback.
      }
    }
    stoppers.length = 0;
    await Promise.all([...groups.keys()].map((g) => stopGroup(g)));
    for (const c of children) c.kill('SIGKILL');
    for (const fn of syncStoppers) {
      try {
        fn();
      } catch {
        // best effort
      }
    }
    syncStoppers.length = 0;
    if (tmpRoot) fs.rmSync(tmpRoot, { recursive: true, force: true });
    tmpRoot = null;
  })();
  return cleaning;
}

/** Last resort in process.on('exit'): no awaiting, KILL whatever is left. */
function exitSync() {
  for (const fn of syncStoppers) {
    try {
      fn();
    } catch {
      // best effort
    }
  }
  for (const g of groups.keys()) signalGroup(g, 'SIGKILL');
  for (const c of children) c.kill('SIGKILL');
  if (tmpRoot) fs.rmSync(tmpRoot, { recursive: true, force: true });
}

let interrupted = false;
export function installHandlers() {
  process.on('exit', exitSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      if (interrupted) {
        process.stderr.write(`\nbench: ${sig} again, killing everything now\n`);
        process.exit(130);
      }
      interrupted = true;
      process.stderr.write(`\nbench: ${sig} received, stopping every process it started...\n`);
      cleanup().finally(() => process.exit(130));
    });
  }
}

export function wasInterrupted() {
  return interrupted;
}
