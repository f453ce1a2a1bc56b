// Other Nodes for the tests: the official builds that scripts/fetch-node.sh fetches once from
// the npm registry (node-linux-<arch>@<major>) into the cache CI shares.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { root } from './paths.js';

/**
 * A command line for `node` (and its options) in an environment without tap's NODE_OPTIONS
 * loader, which tap adds to every spawn: it would enable source maps in every worker and
 * instrument npm and tsc for coverage.
 */
export function untraced(node: string, ...options: string[]): string[] {
  const keep = ['PATH', 'HOME', 'LANG'].filter((k) => process.env[k] !== undefined).map((k) => `${k}=${process.env[k]}`);
  return ['/usr/bin/env', '-i', ...keep, node, ...options];
}

export type NodeBinary = { node: string; version: string; skip: false } | { skip: string };

const cached = new Map<string, NodeBinary>();

/** The `node` of `major` for `arch` (this machine's by default), or why there is none. */
export function nodeBinary(major: number, arch: string = process.arch): NodeBinary {
  const key = `${arch}-${major}`;
  const known = cached.get(key);
  if (known) return known;
  const [env, ...args] = untraced('sh', path.join(root, 'scripts', 'fetch-node.sh'), arch, String(major));
  const r = spawnSync(env!, args, { encoding: 'utf8', timeout: 300_000 });
  let result: NodeBinary;
  if (r.status !== 0) {
    result = { skip: `no Node ${major} (scripts/fetch-node.sh: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').pop()})` };
  } else {
    const node = path.join(r.stdout.trim(), 'bin', 'node');
    // Another arch's Node (run under qemu-user) is not run here.
    const v = arch === process.arch ? spawnSync(node, ['--version'], { encoding: 'utf8' }) : { status: 0, stdout: `v${major}`, stderr: '' };
    result = v.status === 0 ? { node, version: v.stdout.trim(), skip: false } : { skip: `${node} does not run: ${v.stderr.trim()}` };
  }
  cached.set(key, result);
  return result;
}

/** This test's Node when it strips TypeScript types (22.18+, 24), else Node 24's build. */
export function strippingNode(): NodeBinary {
  if (typeof (process.features as { typescript?: unknown }).typescript === 'string') return { node: process.execPath, version: process.version, skip: false };
  return nodeBinary(24);
}

/** This test's Node when it does not strip types, else Node 20's build (the last without). */
export function nonStrippingNode(): NodeBinary {
  if (typeof (process.features as { typescript?: unknown }).typescript !== 'string') return { node: process.execPath, version: process.version, skip: false };
  return nodeBinary(20);
}
