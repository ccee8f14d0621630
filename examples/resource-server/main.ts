// node examples/resource-server/main.ts, configured from the environment (see README.md).
import { startResourceServer } from './server.ts';

const required = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`set ${name} (see examples/resource-server/README.md)`);
  return value;
};

const server = await startResourceServer({
  issuer: required('ISSUER'),
  audience: required('AUDIENCE'),
  clientId: required('CLIENT_ID'),
  clientSecret: required('CLIENT_SECRET'),
  port: Number(process.env.PORT ?? 4000),
  host: process.env.HOST ?? '127.0.0.1',
  log: (message) => console.error(message),
});
await server.streamConnected;
console.log(`resource server on ${server.url}: GET /hello, WebSocket /ws`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void server.close().then(() => process.exit(0)));
