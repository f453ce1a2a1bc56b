// env_file: variables for the workers from a dotenv file, in the format Node's own
// --env-file reads (util.parseEnv). Read when the configuration is read (start, -t, every
// reload, a new master), so editing the file and reloading changes what new workers get.

import fs from 'node:fs';
import { parseEnv } from 'node:util';
import { ConfigError, fail, syscallFailure } from './errors.js';
import type { Directive } from './parser.js';

/** Read by root at every reload: a real env file is a few KiB. */
const MAX_BYTES = 1024 * 1024;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The variables of an env file. A FIFO or a device planted at the path would block the
 * master's loop, so only a regular file is read (opened without blocking, checked by fstat).
 */
export function readEnvFile(d: Directive, file: string): Record<string, string> {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch (err) {
    fail(`env_file: ${syscallFailure(err, 'open', file)}`, d.file, d.line, err);
  }
  let text: string;
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) fail(`env_file "${file}" is not a regular file`, d.file, d.line);
    if (st.size > MAX_BYTES) fail(`env_file "${file}" is larger than ${MAX_BYTES} bytes`, d.file, d.line);
    const buf = Buffer.alloc(st.size);
    let got = 0;
    while (got < buf.length) {
      const n = fs.readSync(fd, buf, got, buf.length - got, got);
      if (n === 0) break;
      got += n;
    }
    text = buf.subarray(0, got).toString('utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    fail(`env_file: ${syscallFailure(err, 'read', file)}`, d.file, d.line, err);
  } finally {
    fs.closeSync(fd);
  }
  const vars: Record<string, string> = {};
  for (const [name, value] of Object.entries(parseEnv(text))) {
    // A NUL cannot be passed in an environment: spawn() would refuse every worker.
    if (!NAME.test(name) || value === undefined || value.includes('\0')) fail(`env_file "${file}": invalid variable "${name}"`, d.file, d.line);
    vars[name] = value;
  }
  return vars;
}
