// Node's module compile cache (Node >= 22.1) for the modules a command imports: V8 keeps the
// compiled code of each on disk, so `-s status`, `-s reload` or a new master compiles only
// what changed since the last run.
import module from 'node:module';
import path from 'node:path';
import { packageRoot } from '../version.js';

const nodeModule = module as { enableCompileCache?: (dir: string) => unknown };

/**
 * The cache lives in the package's own directory (`.compile-cache` beside dist/): whoever may
 * write there may change the code it caches anyway, so a root master never loads compiled
 * code that another user could have planted, as in Node's default of /tmp/node-compile-cache.
 * Where that directory is read-only Node leaves the cache off, silently. A NODE_COMPILE_CACHE
 * of the user's wins (Node enabled it at start). Node sets no variable for children, so the
 * workers, which run another user's app, do not use this cache.
 */
export function enableCompileCache(): void {
  if (process.env.NODE_COMPILE_CACHE !== undefined || typeof nodeModule.enableCompileCache !== 'function') return;
  nodeModule.enableCompileCache(path.join(packageRoot, '.compile-cache'));
}
