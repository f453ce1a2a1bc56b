// Module loader hook of app-probe.ts (it runs on the loader's thread). For the app's URL,
// the loaders before it (Node's own, tsx's...) load the source; then the app is replaced by a
// module that exports the format they found.
import module from 'node:module';

type Load = (url: string, context: object) => Promise<{ format?: string | null; source?: unknown }>;

let target = '';

export function initialize(data: { url: string }): void {
  target = data.url;
}

export async function load(url: string, context: object, next: Load): Promise<{ format: string; source: string; shortCircuit: true } | Awaited<ReturnType<Load>>> {
  if (url !== target) return next(url, context);
  const { format, source } = await next(url, context);
  // Node strips types when it evaluates: check here what it would refuse then (enum, namespace...).
  const strip = (module as { stripTypeScriptTypes?: (code: string) => string }).stripTypeScriptTypes;
  if (format?.endsWith('-typescript') && strip && source != null) {
    strip(typeof source === 'string' ? source : new TextDecoder().decode(source as ArrayBuffer));
  }
  return { format: 'module', source: `export default ${JSON.stringify(String(format))};`, shortCircuit: true };
}
