// An official Node binary of another major version (the npm registry's node-linux-<arch>
// package, which also carries the headers), installed once into the temp dir, keyed by version.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

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

/** The `node` of `node-linux-<arch>@<spec>` (e.g. "24"), or why there is none. */
export function nodeBinary(spec: string): NodeBinary {
  const known = cached.get(spec);
  if (known) return known;
  const pkg = `node-linux-${process.arch}`;
  const dir = path.join(os.tmpdir(), `tsmaster-${pkg}-${spec}`);
  const node = path.join(dir, 'node_modules', pkg, 'bin', 'node');
  if (!fs.existsSync(node)) {
    // Installed beside, then renamed into place: test files running at once never see half of it.
    const staging = fs.mkdtempSync(`${dir}.staging-`);
    const [env, ...args] = untraced('npm', 'install', '--prefix', staging, '--no-save', '--no-audit', '--no-fund', '--loglevel=error', `${pkg}@${spec}`);
    const r = spawnSync(env!, args, { encoding: 'utf8', timeout: 300_000 });
    if (r.status === 0) {
      try {
        fs.renameSync(staging, dir);
      } catch {
        // another test file was first
      }
    }
    fs.rmSync(staging, { recursive: true, force: true });
    if (!fs.existsSync(node)) {
      const result: NodeBinary = { skip: `no Node ${spec} (npm install ${pkg}@${spec}: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n')[0]})` };
      cached.set(spec, result);
      return result;
    }
  }
  const v = spawnSync(node, ['--version'], { encoding: 'utf8' });
  const result: NodeBinary = v.status === 0 ? { node, version: v.stdout.trim(), skip: false } : { skip: `${node} does not run: ${v.stderr.trim()}` };
  cached.set(spec, result);
  return result;
}
