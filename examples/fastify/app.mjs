// Fastify 5 under tsmaster: export the instance; tsmaster waits for ready(), serves its
// server, and calls fastify.close() once the drain is over, so onClose hooks run.
import Fastify from 'fastify';

const app = Fastify();
app.get('/', async () => `fastify ${process.pid}\n`);
app.addHook('onClose', async () => console.log(`fastify: onClose ran in ${process.pid}`));

export default app;
