// The outbox pages: the mail the local outbox holds, for a newcomer running the embedded default.
// The mails hold live reset and verification links, so the pages exist only where nobody else can
// plausibly reach them: outbox transport and the embedded database (a laptop), or an explicit
// MAIL_OUTBOX_PAGE=true. Even then only a direct connection from this machine sees them: the
// socket's address, never ctx.ip (X-Forwarded-For is the client's to choose), and no request that
// went through a proxy (a same-host reverse proxy connects from loopback for everyone).
import Router from '@koa/router';
import type { Context } from 'koa';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import { requestLocale, type Views } from '../http/views.ts';
import { translator } from '../i18n/catalogues.ts';
import type { Outbox } from './outbox.ts';

const LINK = /https?:\/\/[^\s"'<>]+/g;
// Headers a proxy adds: their presence means the socket's address is the proxy's, not the reader's.
const PROXY_HEADERS = ['forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-real-ip', 'x-client-ip', 'true-client-ip', 'cf-connecting-ip', 'via'];
const LOCAL_HOSTNAMES = new Set(['localhost', '127.0.0.1', '[::1]']);

const t = (ctx: Context) => translator(requestLocale(ctx));

type MailConfig = Pick<Config, 'mail' | 'embedded'>;

export function outboxPageEnabled(config: MailConfig): boolean {
  return !config.mail.smtpUrl && (config.embedded.database || config.mail.outboxPage);
}

// Says at start-up where mail goes; a shared database without SMTP is almost certainly a
// deployment whose mail silently never arrives.
export function announceMailTransport(config: MailConfig, log: Logger): void {
  if (config.mail.smtpUrl) return;
  const page = outboxPageEnabled(config) ? ' (listed at /outbox from this machine)' : '';
  log.info({ outbox: config.mail.outboxDir }, `mail is not sent but kept in the outbox${page}; set MAIL_SMTP_URL to send it`);
  if (!config.embedded.database) log.warn('MAIL_SMTP_URL is not set: password-reset and verification mail is only written to files in the outbox directory and never reaches anyone');
}

function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
  return address === '::1' || v4.startsWith('127.');
}

function directFromThisMachine(ctx: Context, issuerHost: string): boolean {
  if (!isLoopback(ctx.req.socket.remoteAddress)) return false;
  if (PROXY_HEADERS.some((name) => ctx.req.headers[name] !== undefined)) return false;
  // A page of another site whose name was re-pointed at 127.0.0.1 (DNS rebinding) sends its own Host.
  const host = (ctx.req.headers.host ?? '').toLowerCase();
  const hostname = host.replace(/:\d+$/, '');
  return host === issuerHost || LOCAL_HOSTNAMES.has(hostname);
}

// The links a reader would follow, from the text version (the HTML is shown as source only).
export function linksOf(text: string): string[] {
  return [...new Set(text.match(LINK) ?? [])];
}

export function outboxRoutes(deps: { outbox: Outbox; views: Views; issuer: string }): Router {
  const { outbox, views } = deps;
  const issuerHost = new URL(deps.issuer).host.toLowerCase();
  const router = new Router({ prefix: '/outbox' });
  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    if (!directFromThisMachine(ctx, issuerHost)) return views.page(ctx, 'error.njk', { error: 'forbidden', description: t(ctx)('mail.outbox.localOnly') }, 403);
    await next();
  });

  router.get('/', async (ctx) => {
    views.page(ctx, 'outbox.njk', { mails: await outbox.list() });
  });

  router.get('/:id', async (ctx) => {
    const mail = await outbox.read(ctx.params.id);
    if (!mail) return views.page(ctx, 'error.njk', { error: 'not_found', description: t(ctx)('mail.outbox.notFound') }, 404);
    views.page(ctx, 'outbox-mail.njk', { mail, links: linksOf(mail.text) });
  });
  return router;
}
