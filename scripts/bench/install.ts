// Installing the packed tarball as users do (test/helpers/install.ts): `npm pack` once, then
// each installer into a fresh project on a PATH with no compiler, twice (the package managers'
// caches are warm the second time). Goal: under 5 s (c8f55d7 compiled the addon: 27 s). A
// stage of `npm run bench`; alone: `node build/bench/scripts/bench/install.js`.
import fs from 'node:fs';
import path from 'node:path';
import { bareBin, INSTALLERS, installInto, packTarball, type Installer } from '../../test/helpers/install.js';
import { nodeBinary } from '../../test/helpers/node-bin.js';
import { onExitSync, runAlone, tempDir, type Log } from './procs.js';
import { median } from './stats.js';

export interface InstallCost {
  node: string;
  packMs: number;
  tarballKb: number;
  installs: Array<{ installer: Installer; runs: number[]; medianMs: number | null }>;
}

export async function installCost(log: Log, runs = 2): Promise<InstallCost> {
  const owner = { teardown: (fn: () => void) => void onExitSync(fn) };
  const t0 = performance.now();
  const tgz = await packTarball(owner);
  const packMs = Math.round(performance.now() - t0);
  const tarballKb = Math.round(fs.statSync(tgz).size / 1024);
  log(`install: npm pack ${packMs} ms, ${tarballKb} kB`);
  // As users install: on a supported Node (yarn refuses the others), this one if it is.
  const node = Number(process.versions.node.split('.')[0]) >= 22 ? process.execPath : nodeBinary(24);
  if (typeof node !== 'string' && node.skip !== false) throw new Error(node.skip);
  const bin = bareBin(owner, typeof node === 'string' ? node : node.node);
  const installs: InstallCost['installs'] = [];
  for (const installer of INSTALLERS) {
    const ms: number[] = [];
    for (let i = 0; i < runs; i++) {
      const project = path.join(tempDir(`install-${installer.replace(/\W+/g, '-')}-${i}`), 'shop');
      const r = await installInto(project, installer, tgz, bin);
      if (r.code !== 0) throw new Error(`${installer} install failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}`);
      ms.push(Math.round(r.ms));
    }
    installs.push({ installer, runs: ms, medianMs: median(ms) });
    log(`install: ${installer} ${ms.join(', ')} ms`);
  }
  return { node: typeof node === 'string' ? process.version : node.version, packMs, tarballKb, installs };
}

await runAlone(import.meta.url, (log) => installCost(log));
