// Server-rendered pages and mails: nunjucks templates in views/, every string from the message
// catalogues (t), the tenant's branding in the layout.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import nunjucks from 'nunjucks';
import type { Context } from 'koa';
import { DEFAULT_LOCALE, negotiateLocale, translator, type Locale, type Translate } from '../i18n/catalogues.ts';
import { DEFAULT_BRANDING, type Branding } from '../tenants/branding.ts';
import { allowInlineStyles } from './security-headers.ts';

const viewsDirectory = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../views');

export interface RenderOptions {
  locale?: Locale;
  branding?: Branding;
}

export interface Views {
  render(name: string, context?: Record<string, unknown>, options?: RenderOptions): string;
  // Renders a page for this request: its language (ctx.state.locale, else Accept-Language) and
  // the branding of the tenant it is for (ctx.state.branding), as HTML into ctx.body.
  page(ctx: Context, name: string, context?: Record<string, unknown>, status?: number): void;
  // The messages of this request's language, for text a handler puts into a page.
  translator(ctx: Context): Translate;
}

export function requestLocale(ctx: Context): Locale {
  if (!ctx.state.locale) ctx.state.locale = negotiateLocale(ctx.get('accept-language'));
  return ctx.state.locale as Locale;
}

export function createViews(): Views {
  const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(viewsDirectory, { noCache: false }), {
    autoescape: true,
    throwOnUndefined: false,
  });
  const render: Views['render'] = (name, context = {}, options = {}) => {
    const locale = options.locale ?? DEFAULT_LOCALE;
    return env.render(name, { ...context, t: translator(locale), locale, branding: options.branding ?? DEFAULT_BRANDING });
  };
  return {
    render,
    translator: (ctx) => translator(requestLocale(ctx)),
    page(ctx, name, context = {}, status) {
      if (status) ctx.status = status;
      ctx.type = 'html';
      const html = render(name, { csrf: ctx.state.csrfToken, cspNonce: ctx.state.cspNonce, ...context }, { locale: requestLocale(ctx), branding: ctx.state.branding as Branding | undefined });
      allowInlineStyles(ctx, html);
      ctx.body = html;
    },
  };
}
