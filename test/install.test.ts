// The packed tarball installed as users install it: npm (with and without --ignore-scripts),
// pnpm 10 and yarn, each into a fresh project, on a PATH with no compiler (no g++, cc, make or
// python3), and the installed node_modules/.bin/tsmaster then serves, reloads and upgrades.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { bareBin, bareEnv, INSTALLERS, installInto, packTarball } from './helpers/install.js';
import { freePort, get, isAlive, startMaster, tempDir, waitFor } from './helpers/master.js';

const major = Number(process.versions.node.split('.')[0]);
const supported = major >= 22; // package.json engines

t.test('the tarball: prebuilds for linux-x64 and linux-arm64, an executable CLI, no install script', async (t) => {
  const tgz = await packTarball(t);
  const list = spawnSync('tar', ['tvzf', tgz], { encoding: 'utf8' }).stdout;
  t.match(list, /^-rwxr-xr-x .* package\/dist\/cli\/main\.js$/m, 'dist/cli/main.js is 0755 in the tarball');
  t.match(list, / package\/native\/prebuilds\/linux-x64\/node\.glibc\.node$/m);
  t.match(list, / package\/native\/prebuilds\/linux-arm64\/node\.glibc\.node$/m);
  t.notMatch(list, /native\/build\//, 'no dev build in it');
  const pkg = JSON.parse(spawnSync('tar', ['xzOf', tgz, 'package/package.json'], { encoding: 'utf8' }).stdout) as { scripts: Record<string, string> };
  for (const s of ['preinstall', 'install', 'postinstall']) t.notOk(pkg.scripts[s], `no ${s} script`);

  const bin = bareBin(t);
  for (const tool of ['g++', 'gcc', 'cc', 'make', 'python3']) {
    t.equal(spawnSync(tool, ['--version'], { env: bareEnv(bin) }).error?.message.includes('ENOENT'), true, `${tool} is not on the install PATH`);
  }

  for (const installer of INSTALLERS) {
    t.test(`${installer}: installs without a compiler, then serves, reloads and upgrades`, async (t) => {
      const project = path.join(tempDir(t, 'tsm-shop-'), 'shop');
      const r = await installInto(project, installer, tgz, bin);
      const said = `${r.stdout}\n${r.stderr}`;
      if (installer === 'yarn' && !supported) {
        // yarn 1 enforces engines: on Node 20 (this repo's dev toolchain, end of life) it refuses.
        t.not(r.code, 0, 'yarn refuses an unsupported Node');
        t.match(said, /engine "node" is incompatible/);
        return;
      }
      t.equal(r.code, 0, `${installer} install: ${said}`);
      t.notMatch(said, /gyp|g\+\+|Ignored build scripts/, 'nothing built, no build script left pending');
      const pkgDir = path.join(project, 'node_modules', 'tsmaster');
      t.notOk(fs.existsSync(path.join(pkgDir, 'native', 'build')), 'no addon was compiled');
      const tsmaster = path.join(project, 'node_modules', '.bin', 'tsmaster');

      fs.writeFileSync(path.join(project, 'server.mjs'), "export default (req, res) => res.end(`${process.env.APP_VERSION}: ${process.pid}\\n`);\n");
      const port = await freePort();
      const m = await startMaster(t, {
        dir: project,
        command: [tsmaster],
        env: { ...bareEnv(bin), APP_VERSION: 'v1' },
        conf: `listen 127.0.0.1:${port};\nworker_processes 2;\napp server.mjs;\nenv APP_VERSION;\n`,
      });
      const first = await get({ port });
      t.match(first.body, /^v1: \d+\n$/, 'the installed tsmaster serves');

      const reload = await m.cli(['-s', 'reload'], { env: bareEnv(bin) });
      t.equal(reload.code, 0, `-s reload: ${reload.stderr}`);
      const reloaded = await get({ port });
      t.not(reloaded.body, first.body, 'new workers answer after the reload');

      const upgrade = await m.cli(['-s', 'upgrade'], { env: bareEnv(bin), timeoutMs: 60_000 });
      t.equal(upgrade.code, 0, `-s upgrade: ${upgrade.stderr}`);
      const newMaster = Number(/upgrade finished: master process (\d+) serves/.exec(upgrade.stdout)?.[1]);
      t.ok(newMaster > 0 && newMaster !== m.masterPid, 'a new master serves');
      t.match((await get({ port })).body, /^v1: \d+\n$/);

      const quit = await m.cli(['-s', 'quit'], { env: bareEnv(bin) });
      t.equal(quit.code, 0, `-s quit: ${quit.stderr}`);
      await waitFor('the new master to exit', () => !isAlive(newMaster), 20_000);
    });
  }
});
