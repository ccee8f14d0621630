import path from 'node:path';
import { fileURLToPath } from 'node:url';
import nunjucks from 'nunjucks';

const viewsDirectory = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../views');

export type Views = { render(name: string, context?: Record<string, unknown>): string };

export function createViews(): Views {
  const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(viewsDirectory, { noCache: false }), {
    autoescape: true,
    throwOnUndefined: false,
  });
  return { render: (name, context = {}) => env.render(name, context) };
}
