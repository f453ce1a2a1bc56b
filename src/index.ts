// The public API of the package: types for worker apps, their drain hooks and their metrics registry.
export type { DrainInfo, Listener, WorkerApp, WorkerContext } from './worker/api.js';
export { metricsRegistry } from './worker/metrics.js';
export { draining, onClose, onDrain, onShutdown } from './worker/lifecycle.js';
export type { Config, ListenSpec, LogLevel } from './config/types.js';
export { TsmError, type TsmErrorCode, type ErrnoError } from './errors.js';
