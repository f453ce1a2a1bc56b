// The app's own Prometheus metrics in a worker: one prom-client registry per worker process,
// which the master asks for over the worker's channel on each scrape and sums over the workers.
import { Registry } from 'prom-client';
import { REGISTRY_KEY } from './app-metrics.js';

/**
 * The registry to register the app's metrics in (`registers: [metricsRegistry()]`). The
 * master serves them, summed over the workers (prom-client's aggregation: counters and
 * histograms summed, gauges summed unless their `aggregator` says otherwise), on the
 * `/metrics` of `metrics_listen`.
 */
export function metricsRegistry(): Registry {
  const g = globalThis as { [REGISTRY_KEY]?: Registry };
  return (g[REGISTRY_KEY] ??= new Registry());
}
