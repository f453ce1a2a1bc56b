export function greeting(worker: string | undefined): string {
  return `hello from esm, worker ${worker}\n`;
}
