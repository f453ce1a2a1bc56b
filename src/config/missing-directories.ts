// What -t finds before a start would: a file the master must create in a directory that is
// not there (tsmaster, as nginx, creates no directories).
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from './types.js';

/** The files the master creates, by directive; log targets that are not files are left out. */
function createdFiles(config: Config): Array<[string, string]> {
  const files: Array<[string, string]> = [['pid', config.pid]];
  if (config.errorLog.path !== 'stderr') files.push(['error_log', config.errorLog.path]);
  if (typeof config.workerLog === 'string' && config.workerLog !== 'stderr') files.push(['worker_log', config.workerLog]);
  if (config.controlSocket) files.push(['control_socket', config.controlSocket]);
  return files;
}

/** One line per file whose directory does not exist (or is not a directory). */
export function missingDirectories(config: Config): string[] {
  const out: string[] = [];
  for (const [what, file] of createdFiles(config)) {
    const dir = path.dirname(file);
    const st = fs.statSync(dir, { throwIfNoEntry: false });
    if (!st) out.push(`directory "${dir}" of ${what} "${file}" does not exist`);
    else if (!st.isDirectory()) out.push(`"${dir}" of ${what} "${file}" is not a directory`);
  }
  return out;
}
