// Express, Fastify and Koa as their users export them (examples/), served, reloaded and
// upgraded under load that never retries, with the framework's own close hooks run when
// each old worker drains. The others are in frameworks-more.test.ts (tap runs both at once).
import t from 'tap';
import { testFramework } from './helpers/frameworks.js';

testFramework(t, 'express', (pid) => `express: shutdown hook ran in ${pid}`);
testFramework(t, 'fastify', (pid) => `fastify: onClose ran in ${pid}`);
testFramework(t, 'koa', (pid) => `koa: shutdown hook ran in ${pid}`);
