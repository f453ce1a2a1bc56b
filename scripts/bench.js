#!/usr/bin/env node
// `npm run bench`: tsmaster side by side with one Node process, Node's cluster module
// (SCHED_RR, SCHED_NONE) and PM2 cluster mode. Plain ESM, no build step; the parts are in
// scripts/bench/. Needs `npm run build` first (it runs dist/cli/main.js), and wrk for the
// Connection: close and reload numbers (apt-get install wrk). Results: results/.
import { main } from './bench/main.js';

await main();
