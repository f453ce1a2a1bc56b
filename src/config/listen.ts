// The arguments of listen and metrics_listen: an address and its parameters, to a ListenSpec.

import { isIPv4, isIPv6 } from 'node:net';
import { resolve } from 'node:path';
import { fail, invalid } from './errors.js';
import type { Directive } from './parser.js';
import type { ListenSpec } from './types.js';

/** Largest path a unix socket can have (sun_path is 108 bytes with the trailing NUL). */
export const UNIX_PATH_MAX = 107;

type AddrParse = { kind: 'tcp'; host: string; port: number; v6: boolean } | { kind: 'unix'; path: string };

function addrError(d: Directive, err: string, addr: string): never {
  fail(`${err} in "${addr}" of the "listen" directive`, d.file, d.line);
}

function parsePort(d: Directive, text: string, addr: string): number {
  if (text === '') addrError(d, 'no port', addr);
  if (!/^\d+$/.test(text) || Number(text) > 65535) addrError(d, 'invalid port', addr);
  return Number(text);
}

function parseAddress(d: Directive, addr: string, prefix: string): AddrParse {
  if (addr.startsWith('unix:')) {
    const p = addr.slice(5);
    if (p === '') addrError(d, 'no path', addr);
    const path = resolve(prefix, p);
    if (Buffer.byteLength(path) > UNIX_PATH_MAX) addrError(d, `path longer than ${UNIX_PATH_MAX} bytes`, addr);
    return { kind: 'unix', path };
  }
  if (addr === '') addrError(d, 'no host', addr);
  if (/^\d+$/.test(addr)) return { kind: 'tcp', host: '0.0.0.0', port: parsePort(d, addr, addr), v6: false };
  if (addr.startsWith('[')) {
    const close = addr.indexOf(']');
    if (close < 0) addrError(d, 'invalid IPv6 address', addr);
    const inner = addr.slice(1, close);
    if (!isIPv6(inner) || inner.includes('%')) addrError(d, 'invalid IPv6 address', addr);
    const rest = addr.slice(close + 1);
    if (rest === '') addrError(d, 'no port', addr);
    if (!rest.startsWith(':')) addrError(d, 'invalid port', addr);
    const port = parsePort(d, rest.slice(1), addr);
    // canonical text (lower case, zeros compressed) via the WHATWG URL parser
    const host = new URL(`http://[${inner}]/`).hostname.slice(1, -1);
    return { kind: 'tcp', host, port, v6: true };
  }
  const colon = addr.lastIndexOf(':');
  if (colon < 0) {
    if (isIPv6(addr)) addrError(d, 'invalid IPv6 address, use [address]:port', addr);
    addrError(d, 'no port', addr);
  }
  const hostText = addr.slice(0, colon);
  const port = parsePort(d, addr.slice(colon + 1), addr);
  if (hostText === '') addrError(d, 'no host', addr);
  if (hostText.includes(':')) addrError(d, 'invalid IPv6 address, use [address]:port', addr);
  let host: string;
  if (hostText === '*') host = '0.0.0.0';
  else if (isIPv4(hostText)) host = hostText;
  else if (hostText.toLowerCase() === 'localhost') host = '127.0.0.1';
  else addrError(d, 'host not found', addr);
  return { kind: 'tcp', host, port, v6: false };
}

/** A name systemd accepts in LISTEN_FDNAMES: 1 to 255 printable ASCII characters, no ":". */
function validFdName(name: string): boolean {
  return name.length >= 1 && name.length <= 255 && /^[\x20-\x7e]+$/.test(name) && !name.includes(':');
}

/** A parsed listen; `explicitName` tells a `name=` from the default name (for the duplicate checks). */
export interface Listen {
  spec: ListenSpec;
  explicitName: boolean;
}

export function parseListen(d: Directive, prefix: string): Listen {
  const addrText = d.args[0]!;
  const addr = parseAddress(d, addrText, prefix);
  const canonical = addr.kind === 'unix' ? `unix:${addr.path}` : addr.v6 ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
  let reuseport = false;
  let backlog = 511;
  let mode: number | null = null;
  let name: string | null = null;
  let ipv6Only = addr.kind === 'tcp' && addr.v6;
  const seen = new Set<string>();
  for (const param of d.args.slice(1)) {
    const eq = param.indexOf('=');
    const key = eq < 0 ? param : param.slice(0, eq);
    const value = eq < 0 ? null : param.slice(eq + 1);
    const known = key === 'reuseport' ? value === null : ['backlog', 'mode', 'name', 'ipv6only'].includes(key) && value !== null;
    if (!known) fail(`invalid parameter "${param}" in "listen" directive`, d.file, d.line);
    if (seen.has(key)) fail(`duplicate parameter "${key}" in "listen" directive`, d.file, d.line);
    seen.add(key);
    const unsupported = (): never => fail(`"${key}" parameter is not supported on addr "${canonical}"`, d.file, d.line);
    switch (key) {
      case 'reuseport':
        if (addr.kind === 'unix') unsupported();
        reuseport = true;
        break;
      case 'backlog':
        if (!/^\d+$/.test(value!) || Number(value) < 1 || Number(value) > 2 ** 31 - 1) invalid(d, param);
        backlog = Number(value);
        break;
      case 'mode':
        if (addr.kind !== 'unix') unsupported();
        if (!/^[0-7]{3,4}$/.test(value!)) invalid(d, param, 'it must be 3 or 4 octal digits');
        mode = parseInt(value!, 8);
        break;
      case 'name':
        if (!validFdName(value!)) invalid(d, param, 'it must be 1 to 255 printable ASCII characters without ":"');
        name = value;
        break;
      case 'ipv6only':
        if (addr.kind !== 'tcp' || !addr.v6) unsupported();
        if (value !== 'on' && value !== 'off') invalid(d, param, 'it must be "on" or "off"');
        ipv6Only = value === 'on';
        break;
    }
  }
  const source = { file: d.file, line: d.line };
  const spec: ListenSpec =
    addr.kind === 'unix'
      ? { kind: 'unix', path: addr.path, mode, backlog, reuseport: false, name: name ?? canonical, key: canonical, source }
      : { kind: 'tcp', host: addr.host, port: addr.port, ipv6Only, backlog, reuseport, name: name ?? canonical, key: `tcp:${canonical}`, source };
  return { spec, explicitName: name !== null };
}

/**
 * Refuses a listen that repeats an earlier one: the same address (port 0 is a new one each
 * time), or a name that an earlier one took, unless neither was given with name=.
 */
export function checkListen({ spec, explicitName }: Listen, earlier: readonly Listen[], d: Directive): void {
  const isEphemeral = spec.kind === 'tcp' && spec.port === 0;
  if (!isEphemeral && earlier.some((l) => l.spec.key === spec.key)) {
    fail(`duplicate listen "${spec.key.replace(/^tcp:/, '')}"`, d.file, d.line);
  }
  if (earlier.some((l) => l.spec.name === spec.name && (l.explicitName || explicitName))) fail(`duplicate listen name "${spec.name}"`, d.file, d.line);
}
