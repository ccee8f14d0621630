// The message catalogues are complete: every language has what English has, every key the code
// and the templates ask for exists, and no page carries text that bypasses the catalogues.
import { expect } from 'chai';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import nunjucks from 'nunjucks';
import { DEFAULT_LOCALE, LOCALES, translator } from '../../src/i18n/catalogues.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const localesDirectory = path.join(root, 'locales');
const viewsDirectory = path.join(root, 'views');

function filesUnder(directory: string, extension: string): string[] {
  return readdirSync(directory).flatMap((name) => {
    const full = path.join(directory, name);
    if (statSync(full).isDirectory()) return filesUnder(full, extension);
    return name.endsWith(extension) ? [full] : [];
  });
}

function relative(file: string): string {
  return path.relative(root, file);
}

// locales/<locale>/<area>.json as { "<area>.json": { key: value } }, read straight from the files
// so that a non-string or a duplicate file shows up here and not only at startup.
function readLocale(locale: string): Map<string, Record<string, unknown>> {
  const directory = path.join(localesDirectory, locale);
  return new Map(
    readdirSync(directory)
      .filter((name) => name.endsWith('.json'))
      .sort()
      .map((file) => [file, JSON.parse(readFileSync(path.join(directory, file), 'utf8')) as Record<string, unknown>]),
  );
}

function placeholders(message: string): string[] {
  return [...message.matchAll(/\{(\w+)\}/g)].map((match) => match[1]).sort();
}

// t('area.key') / t("area.key") with a literal key, in templates and in code (also ctx.t(...)
// and views.translator(ctx)('area.key')).
const TRANSLATION_CALL = /(?:(?<![\w$])t|translator\([^()]*\))\(\s*(['"])([A-Za-z][\w-]*\.[\w.-]+)\1/g;

function usedKeys(): Array<{ key: string; file: string }> {
  const sources = [...filesUnder(viewsDirectory, '.njk'), ...filesUnder(path.join(root, 'src'), '.ts')];
  return sources.flatMap((file) =>
    [...readFileSync(file, 'utf8').matchAll(TRANSLATION_CALL)]
      // 'area.prefix.' + variable builds the key at run time: only whole literal keys are checked.
      .filter((match) => !match[2].endsWith('.'))
      .map((match) => ({ key: match[2], file: relative(file) })),
  );
}

// What a visitor would read on a page once every template expression is removed. Visible
// attributes (placeholder, title, alt, aria-label) count as text too. Heuristic by design: it
// keeps text outside {{ }}, {% %} and tags, so an English word written straight into the markup
// is caught, while CSS, comments and entities are not mistaken for text.
function literalText(template: string): string[] {
  const withoutTemplating = template
    .replace(/\{#[\s\S]*?#\}/g, ' ')
    .replace(/\{%-?\s*raw\s*-?%\}[\s\S]*?\{%-?\s*endraw\s*-?%\}/g, ' ')
    // The layout's mainClass block holds a CSS class name, not text.
    .replace(/\{%-?\s*block\s+mainClass\s*-?%\}[\s\S]*?\{%-?\s*endblock\b[^%]*%\}/g, ' ')
    .replace(/\{\{[\s\S]*?\}\}/g, ' ')
    .replace(/\{%[\s\S]*?%\}/g, ' ');
  const withoutCode = withoutTemplating
    .replace(/<!--[\s\S]*?-->/g, ' ')
    .replace(/<(style|script)\b[\s\S]*?<\/\1>/gi, ' ');
  const attributes = [...withoutCode.matchAll(/\s(?:placeholder|title|alt|aria-label)\s*=\s*(["'])(.*?)\1/gi)].map((match) => match[2]);
  const text = withoutCode.replace(/<[^>]*>/g, ' ');
  return [text, ...attributes]
    .map((part) => part.replace(/&(?:#\d+|#x[\da-f]+|\w+);/gi, ' ').replace(/\s+/g, ' ').trim())
    .filter((part) => /\p{L}/u.test(part));
}

// Page templates. Mail templates (views/mail/, *.txt.njk) are plain text whose layout lines and
// URLs would make the heuristic noisy; their strings are checked by the key tests above.
function pageTemplates(): string[] {
  return filesUnder(viewsDirectory, '.njk').filter((file) => {
    const name = relative(file);
    return !name.split(path.sep).includes('mail') && !name.endsWith('.txt.njk');
  });
}

describe('message catalogues', () => {
  const english = readLocale(DEFAULT_LOCALE);

  it('has English as the reference with at least one area', () => {
    expect([...english.keys()]).to.include('common.json');
  });

  for (const locale of LOCALES.filter((candidate) => candidate !== DEFAULT_LOCALE)) {
    it(`has the same files and keys in "${locale}" as in English`, () => {
      const other = readLocale(locale);
      expect([...other.keys()], `files in locales/${locale}`).to.deep.equal([...english.keys()]);
      for (const [file, messages] of english) {
        expect(Object.keys(other.get(file) ?? {}).sort(), `keys of locales/${locale}/${file}`).to.deep.equal(Object.keys(messages).sort());
      }
    });

    it(`uses the same {placeholders} in "${locale}" as in English`, () => {
      const other = readLocale(locale);
      const mismatches: string[] = [];
      for (const [file, messages] of english) {
        for (const [key, message] of Object.entries(messages)) {
          const translated = other.get(file)?.[key];
          if (typeof message !== 'string' || typeof translated !== 'string') continue;
          if (placeholders(message).join() !== placeholders(translated).join()) mismatches.push(`${file} ${key}: "${message}" / "${translated}"`);
        }
      }
      expect(mismatches).to.deep.equal([]);
    });
  }

  it('has only non-empty strings in every language', () => {
    const bad: string[] = [];
    for (const locale of LOCALES) {
      for (const [file, messages] of readLocale(locale)) {
        for (const [key, message] of Object.entries(messages)) {
          if (typeof message !== 'string' || !message.trim()) bad.push(`locales/${locale}/${file}: ${key}`);
        }
      }
    }
    expect(bad).to.deep.equal([]);
  });

  it('has every key that templates and code ask for with t(), in English', () => {
    const t = translator(DEFAULT_LOCALE);
    const used = usedKeys();
    expect(used.length, 'no t() calls found: the scan is broken').to.be.greaterThan(0);
    const missing = used.filter(({ key }) => {
      try {
        t(key);
        return false;
      } catch {
        return true;
      }
    });
    expect([...new Set(missing.map(({ key, file }) => `${key} (${file})`))]).to.deep.equal([]);
  });

  it('makes rendering fail on an unknown key instead of showing it', () => {
    const t = translator(DEFAULT_LOCALE);
    expect(() => t('common.noSuchMessage')).to.throw(/no message common\.noSuchMessage/);
    const env = new nunjucks.Environment(null, { autoescape: true });
    expect(() => env.renderString("<p>{{ t('common.noSuchMessage') }}</p>", { t })).to.throw(/no message common\.noSuchMessage/);
  });

  it('fills {placeholders} with the parameters given', () => {
    const t = translator(DEFAULT_LOCALE);
    const common = english.get('common.json') ?? {};
    const key = Object.keys(common).find((candidate) => typeof common[candidate] === 'string' && placeholders(common[candidate]).length > 0);
    expect(key, 'common.json has a message with a placeholder').to.be.a('string');
    const names = placeholders(common[key!] as string);
    const filled = t(`common.${key}`, Object.fromEntries(names.map((name) => [name, `<${name}>`])));
    for (const name of names) expect(filled).to.include(`<${name}>`).and.not.include(`{${name}}`);
  });
});

describe('page templates', () => {
  it('finds the page templates', () => {
    expect(pageTemplates().map(relative)).to.include(path.join('views', 'layout.njk'));
  });

  it('show no text that bypasses the message catalogues', () => {
    const offenders = pageTemplates()
      .map((file) => ({ file: relative(file), text: literalText(readFileSync(file, 'utf8')) }))
      .filter(({ text }) => text.length > 0)
      .map(({ file, text }) => `${file}: ${text.join(' | ').slice(0, 200)}`);
    expect(offenders).to.deep.equal([]);
  });

  it('catch literal text, a visible attribute, and nothing in templating, CSS or comments', () => {
    expect(literalText('<h1>Sign in</h1>')).to.deep.equal(['Sign in']);
    expect(literalText('{% block mainClass %}wide{% endblock %}<p>{{ t(\'a.b\') }}</p>')).to.deep.equal([]);
    expect(literalText('<input placeholder="you@example.com" id="x">')).to.deep.equal(['you@example.com']);
    expect(
      literalText(
        "<style>body { font: 16px system-ui }</style><!-- note --><h1>{{ t('common.signIn') }}</h1>" +
          "{% if error %}<p class=\"error\">{{ error }}</p>{% endif %}{# why #}&nbsp;&middot;<input placeholder=\"{{ t('x.y') }}\">",
      ),
    ).to.deep.equal([]);
  });
});
