// Where a worker's app keeps its metrics registry, and how the worker runtime reads it,
// without loading prom-client in workers whose app has no metrics (it costs ~100 ms of start).

/** On globalThis, so that an app that resolves another copy of this package shares it. */
export const REGISTRY_KEY = Symbol.for('tsmaster.metricsRegistry');

interface MetricsSource {
  getMetricsAsJSON(): Promise<unknown[]>;
}

/** What the worker answers the master's metrics request with; nothing if the app made no registry. */
export async function appMetrics(): Promise<unknown[]> {
  const r = (globalThis as { [REGISTRY_KEY]?: MetricsSource })[REGISTRY_KEY];
  return r ? r.getMetricsAsJSON() : [];
}
