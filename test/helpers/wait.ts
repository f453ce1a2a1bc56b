// Waiting by polling, for the tests and the bench alike.

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll `check` (which may be async, or throw to give up) every `everyMs` until it gives a value; fail after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | undefined | false | null | Promise<T | undefined | false | null>, timeoutMs = 15_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false && v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** waitFor for a condition that may not come: whether it held in time, never an error. */
export function waitUntil(check: () => boolean, timeoutMs: number, everyMs = 25): Promise<boolean> {
  return waitFor('', check, timeoutMs, everyMs).then(
    () => true,
    () => false,
  );
}
