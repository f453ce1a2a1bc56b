// The shape of every load client here: `concurrency` loops, each sending its next request
// when the previous one has ended, never retrying, until stopped.

export interface Loops {
  /** Let each loop end after its current request. */
  stop(): void;
  /** Resolves once every loop has ended. */
  done: Promise<void>;
}

/** `once` sends one request and records its outcome itself; it should not throw. */
export function runLoops(concurrency: number, once: () => Promise<void>): Loops {
  let running = true;
  const loop = async () => {
    while (running) await once();
  };
  return {
    stop: () => {
      running = false;
    },
    done: Promise.all(Array.from({ length: concurrency }, loop)).then(() => undefined),
  };
}
