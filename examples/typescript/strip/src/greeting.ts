export function greeting(worker: string | undefined): string {
  return `hello from typescript, worker ${worker}\n`;
}
