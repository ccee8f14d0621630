// The local outbox: without an SMTP server, each mail is a JSON file in one directory, newest
// last by name, so the embedded default shows its mail (the /outbox page) without a mail server.
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';

export interface OutboxMail {
  id: string;
  from: string;
  to: string;
  subject: string;
  text: string;
  html: string;
  createdAt: string;
}

export type OutboxEntry = Pick<OutboxMail, 'id' | 'to' | 'subject' | 'createdAt'>;

export interface Outbox {
  readonly directory: string;
  write(mail: Omit<OutboxMail, 'id' | 'createdAt'>): Promise<OutboxMail>;
  // Newest first.
  list(limit?: number): Promise<OutboxEntry[]>;
  read(id: string): Promise<OutboxMail | undefined>;
}

// Milliseconds since the epoch, then randomness: names sort by time and cannot be guessed or
// point outside the directory.
const ID = /^\d{13}-[0-9a-f]{12}$/;

export function createOutbox(directory: string): Outbox {
  let ready: Promise<unknown> | undefined;
  const ensureDirectory = () => (ready ??= mkdir(directory, { recursive: true, mode: 0o700 }));

  async function read(id: string): Promise<OutboxMail | undefined> {
    if (!ID.test(id)) return undefined;
    try {
      return JSON.parse(await readFile(path.join(directory, `${id}.json`), 'utf8')) as OutboxMail;
    } catch {
      return undefined;
    }
  }

  return {
    directory,
    async write(mail) {
      await ensureDirectory();
      const now = new Date();
      const stored: OutboxMail = { id: `${String(now.getTime()).padStart(13, '0')}-${randomBytes(6).toString('hex')}`, ...mail, createdAt: now.toISOString() };
      const file = path.join(directory, `${stored.id}.json`);
      // Written aside and renamed, so a reader never sees half a mail. The mails hold live links:
      // readable by this user only.
      await writeFile(`${file}.tmp`, JSON.stringify(stored, null, 2), { mode: 0o600 });
      await rename(`${file}.tmp`, file);
      return stored;
    },
    async list(limit = 100) {
      let names: string[];
      try {
        names = await readdir(directory);
      } catch {
        return [];
      }
      const ids = names
        .filter((name) => name.endsWith('.json'))
        .map((name) => name.slice(0, -'.json'.length))
        .filter((id) => ID.test(id))
        .sort()
        .reverse()
        .slice(0, limit);
      const mails = await Promise.all(ids.map(read));
      return mails.filter((mail): mail is OutboxMail => mail !== undefined).map(({ id, to, subject, createdAt }) => ({ id, to, subject, createdAt }));
    },
    read,
  };
}
