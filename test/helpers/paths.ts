// Where things are. The root is found by walking up to package.json rather than by a fixed
// number of `..`, because these helpers also run compiled, from build/bench/test/helpers/.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(dir: string): string {
  if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
  const up = path.dirname(dir);
  if (up === dir) throw new Error('no package.json above the test helpers');
  return findRoot(up);
}

export const root = findRoot(path.dirname(fileURLToPath(import.meta.url)));
export const cli = path.join(root, 'dist', 'cli', 'main.js');
