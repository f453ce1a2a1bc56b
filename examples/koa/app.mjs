// Koa 3 under tsmaster: export the app (tsmaster serves app.callback()).
import Koa from 'koa';
import { onShutdown } from 'tsmaster';

const app = new Koa();
app.use((ctx) => {
  ctx.body = `koa ${process.pid}\n`;
});
onShutdown(() => console.log(`koa: shutdown hook ran in ${process.pid}`));

export default app;
