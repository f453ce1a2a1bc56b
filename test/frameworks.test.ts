// Express, Fastify and Koa as their users export them (examples/), served, reloaded and
// upgraded under load that never retries, with the framework's own close hooks run when
// each old worker drains. The others are in frameworks-more.test.ts (tap runs both at once).
import t from 'tap';
import { testFramework } from './helpers/frameworks.js';

testFramework(t, 'express', (pid) => new RegExp(`^express: shutdown hook ran in ${pid}$`, 'm'));
testFramework(t, 'fastify', (pid) => new RegExp(`^fastify: onClose ran in ${pid}$`, 'm'));
testFramework(t, 'koa', (pid) => new RegExp(`^koa: shutdown hook ran in ${pid}$`, 'm'));
