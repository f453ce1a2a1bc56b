// The packed tarball installed as users install it: npm (with and without --ignore-scripts),
// pnpm 10 and yarn, each into a fresh project, on a PATH with no compiler (no g++, cc, make or
// python3), and the installed node_modules/.bin/tsmaster then serves, reloads and upgrades.
// The installed addon, one N-API build, then runs on Node 20, 22, 24 and 26, and its arm64
// twin on the arm64 Node under qemu-user.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { bareBin, bareEnv, INSTALLERS, installInto, packTarball } from './helpers/install.js';
import { fixtures, freePort, get, isAlive, root, startMaster, tempDir, waitFor } from './helpers/master.js';
import { nodeBinary, untraced } from './helpers/node-bin.js';
import { run } from './helpers/run.js';

// npm pack with its prepare (tsc), four installs, the Quick start and qemu: longer than the
// suite's 180 s per file when the machine is busy.
t.setTimeout(420_000);

const major = Number(process.versions.node.split('.')[0]);
/** Where qemu-user finds the arm64 loader and libraries: Debian's libc6-arm64-cross. */
const ARM64_SYSROOT = '/usr/aarch64-linux-gnu';

/** bin/node of an official build, fetched once (scripts/fetch-node.sh). */
function official(major: number, arch = 'x64'): string {
  const b = nodeBinary(major, arch);
  if (b.skip !== false) throw new Error(b.skip);
  return b.node;
}
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

  // Kept to the end of the file: the addon tests below run the npm-installed package.
  const projects = new Map<string, string>();
  const parent = t;
  for (const installer of INSTALLERS) {
    t.test(`${installer}: installs without a compiler, then serves, reloads and upgrades`, async (t) => {
      const project = path.join(tempDir(parent, 'tsm-shop-'), 'shop');
      projects.set(installer, project);
      const r = await installInto(project, installer, tgz, bin);
      const said = `${r.stdout}\n${r.stderr}`;
      if (installer === 'yarn' && !supported) {
        // yarn 1 enforces engines: on Node 20 (this repo's dev toolchain, end of life) it refuses.
        t.not(r.code, 0, 'yarn refuses an unsupported Node');
        t.match(said, /engine "node" is incompatible/);
        return;
      }
      t.equal(r.code, 0, `${installer} install: ${said}`);
      // Build output, not a package name (yarn lists node-gyp-build among the dependencies).
      t.notMatch(said, /\bgyp (info|ERR!|WARN)|node-gyp (re)?build|g\+\+|Ignored build scripts/, 'nothing built, no build script left pending');
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

  t.test("the README's Quick start, as written, from the tarball", async (t) => {
    // Its code blocks in order; the one that starts with a directive is /srv/shop/tsmaster.conf.
    // Changed for the test only: /srv/shop is a temp dir, 8080 a free port, and `npm install -g`
    // installs the tarball into a temp prefix.
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('\n## Quick start\n'), readme.indexOf('\n## ', readme.indexOf('\n## Quick start\n') + 5));
    const blocks = section.split(/\n(?: *\n)+/).filter((b) => b.startsWith('    ')).map((b) => b.replace(/^ {4}/gm, ''));
    const dir = tempDir(t, 'tsm-quick-');
    const prefix = tempDir(t, 'tsm-global-');
    const port = await freePort();
    const tools = tempDir(t, 'tsm-tools-');
    for (const tool of ['mkdir', 'curl']) fs.symlinkSync(spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim(), path.join(tools, tool));
    const env = { ...bareEnv(bin), PATH: `${prefix}/bin:${bin}:${tools}`, npm_config_prefix: prefix, npm_config_prefer_offline: 'true' };
    const subst = (text: string) => text.replaceAll('/srv/shop', dir).replaceAll('8080', String(port)).replace('npm install -g tsmaster', `npm install -g ${tgz}`);
    t.teardown(() => {
      const pid = Number(fs.existsSync(path.join(dir, 'run/tsmaster.pid')) ? fs.readFileSync(path.join(dir, 'run/tsmaster.pid'), 'utf8') : 0);
      if (pid > 0 && isAlive(pid)) process.kill(pid, 'SIGKILL');
    });
    let served = '';
    t.ok(blocks.length >= 3, 'the Quick start has its command, config and command blocks');
    for (const block of blocks) {
      if (/^[a-z_]+ +\S/.test(block) && !/^(npm|mkdir|echo|tsmaster|curl) /.test(block)) {
        fs.writeFileSync(path.join(dir, 'tsmaster.conf'), subst(block));
        continue;
      }
      for (const line of block.split('\n').filter((l) => l.trim() !== '')) {
        const r = await run('/bin/sh', ['-c', subst(line)], { cwd: dir, env, timeoutMs: 120_000 });
        t.equal(r.code, 0, `${line.replace(/\s+#.*/, '')}: ${r.stdout}${r.stderr}`);
        if (line.startsWith('curl')) served = r.stdout;
      }
    }
    t.match(served, /^hello from \d+/, 'curl got the app');
    await waitFor('quit: the pidfile removed', () => !fs.existsSync(path.join(dir, 'run/tsmaster.pid')), 20_000);
  });

  const smoke = path.join(fixtures, 'native-smoke.mjs');
  t.test('one N-API build: the installed linux-x64 addon works on Node 20, 22, 24 and 26', async (t) => {
    const pkgDir = path.join(projects.get('npm')!, 'node_modules', 'tsmaster');
    const want = path.join(pkgDir, 'native', 'prebuilds', 'linux-x64', 'node.glibc.node');
    for (const major of [20, 22, 24, 26]) {
      const [cmd, ...args] = untraced(official(major), smoke, pkgDir);
      const r = await run(cmd!, args, { timeoutMs: 60_000 });
      t.equal(r.code, 0, `Node ${major}: ${r.stdout}${r.stderr}`);
      t.match(JSON.parse(r.stdout || '{}'), { ok: true, node: new RegExp(`^v${major}\\.`), arch: 'x64', addon: want }, `Node ${major} loads ${want}`);
    }
  });

  t.test('linux-arm64: the installed arm64 addon and CLI on the arm64 Node 24 under qemu-user', async (t) => {
    const pkgDir = path.join(projects.get('npm')!, 'node_modules', 'tsmaster');
    const arm64 = official(24, 'arm64');
    const qemu = (args: string[]) => {
      const [env, ...rest] = untraced('qemu-aarch64-static', arm64, ...args);
      return run(env!, [rest[0]!, `QEMU_LD_PREFIX=${ARM64_SYSROOT}`, ...rest.slice(1)], { timeoutMs: 180_000 });
    };
    const r = await qemu([smoke, pkgDir]);
    t.equal(r.code, 0, `${r.stdout}${r.stderr}${r.error ?? ''}`);
    t.match(JSON.parse(r.stdout || '{}'), { ok: true, arch: 'arm64', addon: path.join(pkgDir, 'native', 'prebuilds', 'linux-arm64', 'node.glibc.node') });
    const v = await qemu([path.join(pkgDir, 'dist', 'cli', 'main.js'), '-V']);
    t.match(v.stderr, /built with node 24\.\d+\.\d+ \(linux-arm64\)/);
    // Nothing here spawns the arm64 Node again (workers, -t's app check): without binfmt_misc
    // (not registered on this machine) the kernel cannot exec it; qemu runs only this process.
  });
});
