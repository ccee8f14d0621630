// Message catalogues: every string a page or a mail shows lives in locales/<language>/<area>.json,
// looked up as "<area>.<key>". A key missing in one language falls back to English.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const LOCALES = ['en', 'de'] as const;
export type Locale = (typeof LOCALES)[number];
export const DEFAULT_LOCALE: Locale = 'en';

export type Catalogue = ReadonlyMap<string, string>;
export type Translate = (key: string, params?: Record<string, unknown>) => string;

const localesDirectory = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../locales');

export function loadCatalogue(locale: Locale): Catalogue {
  const directory = path.join(localesDirectory, locale);
  const entries = new Map<string, string>();
  for (const file of readdirSync(directory).filter((name) => name.endsWith('.json')).sort()) {
    const area = file.slice(0, -'.json'.length);
    const messages = JSON.parse(readFileSync(path.join(directory, file), 'utf8')) as Record<string, unknown>;
    for (const [key, value] of Object.entries(messages)) {
      if (typeof value !== 'string') throw new Error(`locales/${locale}/${file}: ${key} is not a string`);
      entries.set(`${area}.${key}`, value);
    }
  }
  return entries;
}

const catalogues = new Map<Locale, Catalogue>(LOCALES.map((locale) => [locale, loadCatalogue(locale)]));

export function catalogueOf(locale: Locale): Catalogue {
  return catalogues.get(locale)!;
}

// "{name}" placeholders are replaced by the parameter of that name; the caller's values are
// escaped by the template engine like any other output.
export function translator(locale: Locale): Translate {
  const primary = catalogueOf(locale);
  const fallback = catalogueOf(DEFAULT_LOCALE);
  return (key, params) => {
    const template = primary.get(key) ?? fallback.get(key);
    if (template === undefined) throw new Error(`no message ${key}`);
    if (!params) return template;
    return template.replace(/\{(\w+)\}/g, (whole, name: string) => (name in params ? String(params[name]) : whole));
  };
}

export function isLocale(value: unknown): value is Locale {
  return typeof value === 'string' && (LOCALES as readonly string[]).includes(value);
}

// Picks the best supported language: ui_locales (OIDC) first, then Accept-Language by quality,
// matching on the primary subtag ("de-AT" is served German).
export function negotiateLocale(acceptLanguage: string | undefined, uiLocales?: string): Locale {
  for (const tag of (uiLocales ?? '').split(/\s+/)) {
    const primary = tag.split('-')[0].toLowerCase();
    if (isLocale(primary)) return primary;
  }
  const ranked = (acceptLanguage ?? '')
    .split(',')
    .map((part, index) => {
      const [tag, ...attributes] = part.trim().split(';');
      const quality = attributes.map((a) => /^\s*q=([\d.]+)\s*$/.exec(a)).find(Boolean);
      return { primary: tag.split('-')[0].toLowerCase(), quality: quality ? Number(quality[1]) : 1, index };
    })
    .filter((entry) => entry.primary && entry.quality > 0)
    .sort((a, b) => b.quality - a.quality || a.index - b.index);
  return ranked.map((entry) => entry.primary).find(isLocale) ?? DEFAULT_LOCALE;
}
