// Official Node builds from the npm registry (node-linux-ARCH@MAJOR), fetched once by
// scripts/fetch-node.sh into the cache that .ci/run fills too.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { root } from './paths.js';

/** bin/node of the latest official MAJOR for `arch`, fetched on first use. */
export function officialNode(arch: 'x64' | 'arm64', major: number): string {
  const dir = execFileSync('sh', [path.join(root, 'scripts', 'fetch-node.sh'), arch, String(major)], { encoding: 'utf8', timeout: 300_000 }).trim();
  return path.join(dir, 'bin', 'node');
}

/** Where qemu-user finds the arm64 loader and libraries: Debian's libc6-arm64-cross. */
export const ARM64_SYSROOT = '/usr/aarch64-linux-gnu';
