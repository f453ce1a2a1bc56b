// Temporary directories removed by their owner's teardown: a tap test's, or the bench's.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** What tap's Test offers for cleanup, and what the bench provides in its place. */
export interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export function tempDir(t: Teardown, prefix = 'tsm-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
