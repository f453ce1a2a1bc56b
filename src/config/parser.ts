// Tokens → directives, with `include` expanded in place.
//
// A directive is a name and its arguments ended by `;`. Blocks do not exist in tsmaster.conf:
// `{` and `}` are errors. `include PATH;` reads another file as if its text stood in place of
// the directive. A relative PATH is taken from the directory of the file that holds the
// `include` (for -g: the directory of the main file). The last path component may contain `*`
// wildcards; the matching files are read in sorted order, names starting with `.` only match a
// pattern that starts with `.`, and a pattern that matches nothing is not an error (as nginx).
// A file that is being included already (an include cycle) is an error.

import { closeSync, constants as fsConstants, fstatSync, openSync, readSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { COMMAND_LINE, ConfigError, fail, syscallFailure } from './errors.js';
import { tokenize, type Token } from './lexer.js';

export interface Directive {
  name: string;
  args: string[];
  file: string;
  line: number;
}

export interface ParseContext {
  /** Directory against which relative `include` paths of `source` are resolved. */
  includeBase: string;
  /** Real paths of the files being read, outermost first (for cycle detection). */
  stack?: string[];
}

function realOr(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/** No configuration is this big; `include /dev/zero` or a runaway file must not fill the memory. */
export const MAX_CONFIG_BYTES = 1 << 20;

/**
 * Reads a configuration file: a regular file of at most MAX_CONFIG_BYTES. Throws
 * `open() "PATH" failed (2: No such file or directory)[ in FILE:LINE]`.
 */
export function readConfigFile(path: string, from?: { file: string; line: number }): string {
  const failed = (msg: string, cause?: unknown): never => {
    if (from) fail(msg, from.file, from.line, cause);
    throw new ConfigError(msg, path, 0, { cause });
  };
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer before the check below refuses it.
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (err) {
    return failed(syscallFailure(err, 'open', path), err);
  }
  try {
    if (!fstatSync(fd).isFile()) return failed(`"${path}" is not a regular file`);
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let len = 0;
    for (let n = -1; n !== 0 && len < buf.length; len += n) n = readSync(fd, buf, len, buf.length - len, null);
    if (len > MAX_CONFIG_BYTES) return failed(`"${path}" is larger than ${MAX_CONFIG_BYTES} bytes`);
    return buf.toString('utf8', 0, len);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    return failed(syscallFailure(err, 'read', path), err);
  } finally {
    closeSync(fd);
  }
}

/** Parses the text of one source; `file` is its absolute path or "command line". */
export function parseText(text: string, file: string, ctx: ParseContext): Directive[] {
  const tokens = tokenize(text, file);
  const out: Directive[] = [];
  const stack = ctx.stack ?? [];
  let words: Extract<Token, { type: 'word' }>[] = [];
  for (const tok of tokens) {
    if (tok.type === 'word') {
      words.push(tok);
      continue;
    }
    if (tok.type === '{' || tok.type === '}') fail(`unexpected "${tok.type}"`, tok.file, tok.line);
    // ';'
    if (words.length === 0) fail('unexpected ";"', tok.file, tok.line);
    const d: Directive = { name: words[0]!.value, args: words.slice(1).map((w) => w.value), file, line: words[0]!.line };
    words = [];
    if (d.name === 'include') {
      for (const inc of expandInclude(d, ctx.includeBase, stack)) out.push(inc);
    } else {
      out.push(d);
    }
  }
  if (words.length > 0) {
    const last = words[words.length - 1]!;
    fail(file === COMMAND_LINE ? 'unexpected end of parameter, expecting ";"' : 'unexpected end of file, expecting ";"', file, last.line);
  }
  return out;
}

/** Parses a file and everything it includes. */
export function parseFile(path: string, stack: string[] = [], from?: { file: string; line: number }): Directive[] {
  const text = readConfigFile(path, from);
  const real = realOr(path);
  return parseText(text, path, { includeBase: dirname(path), stack: [...stack, real] });
}

function globToRegExp(pattern: string): RegExp {
  const body = pattern
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('[^/]*');
  return new RegExp(`^${body}$`);
}

function expandInclude(d: Directive, base: string, stack: string[]): Directive[] {
  if (d.args.length !== 1) fail('invalid number of arguments in "include" directive', d.file, d.line);
  const arg = d.args[0]!;
  if (arg === '') fail('invalid value "" in "include" directive', d.file, d.line);
  const path = resolve(base, arg);
  const from = { file: d.file, line: d.line };

  const includeOne = (file: string): Directive[] => {
    const real = realOr(file);
    if (stack.includes(real)) fail(`recursive include of "${file}"`, d.file, d.line);
    return parseFile(file, stack, from);
  };

  const name = basename(path);
  const dir = dirname(path);
  if (dir.includes('*')) {
    fail(`invalid value "${arg}" in "include" directive, "*" is only allowed in the last path component`, d.file, d.line);
  }
  if (!name.includes('*')) return includeOne(path);

  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return []; // like glob(3): a pattern under a missing directory matches nothing
  }
  const re = globToRegExp(name);
  const matches = entries
    .filter((e) => re.test(e) && (name.startsWith('.') || !e.startsWith('.')))
    .map((e) => resolve(dir, e))
    .filter((p) => {
      try {
        return !statSync(p).isDirectory();
      } catch {
        return true; // dangling symlink: let the open() report it
      }
    })
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const out: Directive[] = [];
  for (const m of matches) out.push(...includeOne(m));
  return out;
}
