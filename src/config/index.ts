// Configuration of tsmaster: reads tsmaster.conf(5) (plus -g directives) into a typed Config.

import { realpathSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { COMMAND_LINE } from './errors.js';
import { parseFile, parseText } from './parser.js';
import { buildConfig } from './build.js';
import type { Config } from './types.js';

export type { Config, ListenSpec, LogLevel, Source, WorkerSpec } from './types.js';
export { ConfigError, COMMAND_LINE } from './errors.js';
export type { DirectiveDef } from './definition.js';
export { directives } from './directives.js';
export { parseDuration, parseSize } from './values.js';

export interface LoadConfigOptions {
  /** Configuration file; a relative path is taken from `prefix`. */
  file: string;
  /** Prefix directory against which relative paths are resolved (made absolute if it is not). */
  prefix: string;
  /** Directives given with -g, parsed as if they followed the file; errors say `in command line`. */
  globals?: string;
}

/** Reads and validates the configuration. Throws ConfigError with an nginx-style message. */
export function loadConfig(opts: LoadConfigOptions): Config {
  const prefix = resolve(opts.prefix);
  const file = resolve(prefix, opts.file);
  const list = parseFile(file);
  if (opts.globals !== undefined) {
    list.push(...parseText(opts.globals, COMMAND_LINE, { includeBase: dirname(file) }));
  }
  return buildConfig(list, { file, prefix });
}

/**
 * Parses configuration text that does not come from a file (tests, tools). `source` names it
 * in errors; when it is an absolute path, relative includes are taken from its directory,
 * otherwise from `prefix`.
 */
export function parseConfigText(text: string, source: string, prefix: string): Config {
  const absPrefix = resolve(prefix);
  let stack: string[] = [];
  if (isAbsolute(source)) {
    try {
      stack = [realpathSync(source)];
    } catch {
      stack = [source];
    }
  }
  const list = parseText(text, source, { includeBase: isAbsolute(source) ? dirname(source) : absPrefix, stack });
  return buildConfig(list, { file: source, prefix: absPrefix });
}
