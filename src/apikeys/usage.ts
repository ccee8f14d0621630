// Usage of API keys without a database write, or even a hot-store write, per request. Each use is
// counted in process memory; once a second the instance publishes its running totals for the day
// to the hot store (one value per instance, day and key, so instances never overwrite each other)
// with the time and address of each key's last use. A flush, run periodically by one instance at a
// time, adds up the instances' totals per key and day and copies them, with the last use, to
// PostgreSQL in bounded batches. An instance that stops loses at most its last second of counts.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { HotStore } from '../store/hot-store.ts';
import type { Database } from '../store/database.ts';
import { withTenant } from '../store/tenant-scope.ts';
import { apiKeyQueries, isoDay } from './queries.ts';

// Totals outlive their day long enough for a late flush; two days are flushed each time.
const COUNTER_SECONDS = 3 * 86400;
// Keys flushed per run; the rest wait for the next run (a day's set is read again in full).
export const MAX_KEYS_PER_FLUSH = 5000;
const PUBLISH_INTERVAL_MS = 1000;
const FLUSH_LOCK = 'apikeys:usage:flush-lock';

export interface UsageTracker {
  // A use of the key, counted in memory: no I/O.
  record(tenantId: string, keyId: string, ip: string): void;
  // Publishes this instance's counts to the hot store now.
  publish(): Promise<void>;
  // Publishes, then copies what the hot store holds to PostgreSQL; how many keys were written.
  // While another instance flushes, the periodic job skips its turn; `waitForLock` waits instead.
  flush(options?: { waitForLock?: boolean }): Promise<number>;
  // Stops publishing, after publishing what is counted.
  stop(): Promise<void>;
  // Forgets the last uses (time and address) of erased keys, here and in the hot store. Their
  // daily totals, which name no one, expire with the counters.
  forget(keyIds: string[]): Promise<void>;
}

interface Count {
  tenantId: string;
  keyId: string;
  day: string;
  total: number;
  published: number;
}

export function createUsageTracker(options: { db: Database; hot: HotStore; now: () => Date; lockSeconds: number; log?: Logger }): UsageTracker {
  const { db, hot, now } = options;
  const instance = randomUUID();
  const dirtyKey = (day: string) => `apikeys:usage:{${day}}:keys`;
  const counterKey = (day: string, keyId: string, owner: string) => `apikeys:usage:{${day}}:${keyId}:${owner}`;
  const lastUseKey = (keyId: string) => `apikeys:last-use:${keyId}`;
  // This instance's running totals per day and key, and the last uses not yet published.
  const counts = new Map<string, Count>();
  const lastUses = new Map<string, { at: string; ip: string }>();
  // What was last written to PostgreSQL per day and key: unchanged totals are not written again.
  const flushed = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;
  let publishing: Promise<void> = Promise.resolve();

  async function publishNow(): Promise<void> {
    const work: Array<Promise<unknown>> = [];
    for (const count of counts.values()) {
      const total = count.total;
      if (total === count.published) continue;
      // Marked published only once written: a failed write is retried at the next publication.
      const listed = count.published === 0 ? hot.addToSet(dirtyKey(count.day), `${count.tenantId}:${count.keyId}:${instance}`, COUNTER_SECONDS) : undefined;
      work.push(Promise.all([listed, hot.set(counterKey(count.day, count.keyId, instance), String(total), COUNTER_SECONDS)]).then(() => (count.published = total)));
    }
    for (const [keyId, use] of lastUses) work.push(hot.set(lastUseKey(keyId), JSON.stringify(use), COUNTER_SECONDS));
    lastUses.clear();
    // Counts of days before yesterday are no longer flushed.
    const oldest = isoDay(new Date(now().getTime() - 86400_000));
    for (const [mark, count] of counts) if (count.day < oldest) counts.delete(mark);
    await Promise.all(work);
  }

  function publish(): Promise<void> {
    // One publication at a time, in order.
    publishing = publishing.then(publishNow, publishNow);
    return publishing;
  }

  return {
    record(tenantId, keyId, ip) {
      const at = now();
      const day = isoDay(at);
      const mark = `${day}:${keyId}`;
      const count = counts.get(mark);
      if (count) count.total++;
      else counts.set(mark, { tenantId, keyId, day, total: 1, published: 0 });
      lastUses.set(keyId, { at: at.toISOString(), ip });
      timer ??= setInterval(() => publish().catch((error) => options.log?.warn({ err: error }, 'publishing API key usage failed')), PUBLISH_INTERVAL_MS).unref();
    },

    publish,

    async flush(flushOptions = {}) {
      await publish();
      // One instance flushes at a time; the others skip this round.
      const deadline = Date.now() + options.lockSeconds * 1000;
      while (!(await hot.setIfAbsent(FLUSH_LOCK, '1', options.lockSeconds))) {
        if (!flushOptions.waitForLock || Date.now() > deadline) return 0;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      try {
        const today = now();
        const days = [isoDay(new Date(today.getTime() - 86400_000)), isoDay(today)];
        let written = 0;
        for (const day of days) {
          // The instances that counted each key that day.
          const perKey = new Map<string, { tenantId: string; keyId: string; owners: string[] }>();
          for (const member of await hot.setMembers(dirtyKey(day))) {
            const [tenantId, keyId, owner] = member.split(':');
            const entry = perKey.get(keyId) ?? { tenantId, keyId, owners: [] };
            entry.owners.push(owner);
            perKey.set(keyId, entry);
          }
          for (const { tenantId, keyId, owners } of [...perKey.values()].slice(0, MAX_KEYS_PER_FLUSH - written)) {
            const totals = await Promise.all(owners.map((owner) => hot.get(counterKey(day, keyId, owner))));
            const requests = totals.reduce((sum, value) => sum + Number(value ?? 0), 0);
            const mark = `${day}:${keyId}`;
            if (!requests || flushed.get(mark) === requests) continue;
            const lastUse = await hot.get(lastUseKey(keyId));
            const parsed = lastUse ? (JSON.parse(lastUse) as { at: string; ip: string }) : undefined;
            try {
              await withTenant(db, tenantId, async (trx) => {
                await apiKeyQueries.recordUsage(trx, tenantId, keyId, day, requests);
                if (parsed) await apiKeyQueries.recordLastUse(trx, tenantId, keyId, new Date(parsed.at), parsed.ip);
              });
              written++;
            } catch (error) {
              // The key (or its tenant) was deleted since: nothing to keep.
              options.log?.debug({ err: error, keyId }, 'API key usage not recorded');
            }
            flushed.set(mark, requests);
          }
        }
        for (const mark of flushed.keys()) if (!days.some((day) => mark.startsWith(day))) flushed.delete(mark);
        return written;
      } finally {
        await hot.delete(FLUSH_LOCK);
      }
    },

    async forget(keyIds) {
      if (!keyIds.length) return;
      for (const keyId of keyIds) lastUses.delete(keyId);
      await hot.delete(...keyIds.map(lastUseKey));
    },

    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await publish();
    },
  };
}
