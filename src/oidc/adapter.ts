// oidc-provider's storage adapter: short-lived models in the hot store, long-lived ones in
// PostgreSQL with the hot store as a read-through cache. A hot-store failure never loses a
// durable record: cache errors fall back to the database.
import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { Logger } from 'pino';
import type { HotStore } from '../store/hot-store.ts';
import type { Database } from '../store/database.ts';
import { DURABLE_CACHE_SECONDS, REFRESH_TOKEN_LENGTH, consumableModels, durableModels, grantableModels, hotKeys, uncachedModels } from './model-storage.ts';
import { durablePayloads } from './durable-payloads.ts';

export interface AdapterDependencies {
  db: Database;
  hot: HotStore;
  log: Logger;
}

export function createAdapterFactory(deps: AdapterDependencies) {
  return (model: string): Adapter =>
    durableModels.has(model) ? new DurableAdapter(model, deps) : new HotAdapter(model, deps.hot);
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function withConsumed(payload: AdapterPayload, consumed: string | null): AdapterPayload {
  return consumed && !payload.consumed ? { ...payload, consumed: Number(consumed) } : payload;
}

class HotAdapter implements Adapter {
  #model: string;
  #hot: HotStore;
  #consumable: boolean;

  constructor(model: string, hot: HotStore) {
    this.#model = model;
    this.#hot = hot;
    this.#consumable = consumableModels.has(model);
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    const model = this.#model;
    const writes: Promise<unknown>[] = [this.#hot.set(hotKeys.record(model, id), JSON.stringify(payload), expiresIn)];
    if (payload.grantId) writes.push(this.#hot.addToSet(hotKeys.grant(payload.grantId), `${model}:${id}`, expiresIn));
    if (payload.userCode) writes.push(this.#hot.set(hotKeys.userCode(model, payload.userCode), id, expiresIn));
    if (payload.uid) writes.push(this.#hot.set(hotKeys.uid(model, payload.uid), id, expiresIn));
    await Promise.all(writes);
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    const model = this.#model;
    const [record, consumed] = await Promise.all([
      this.#hot.get(hotKeys.record(model, id)),
      this.#consumable ? this.#hot.get(hotKeys.consumed(model, id)) : null,
    ]);
    return record ? withConsumed(JSON.parse(record), consumed) : undefined;
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    const id = await this.#hot.get(hotKeys.uid(this.#model, uid));
    return id ? this.find(id) : undefined;
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    const id = await this.#hot.get(hotKeys.userCode(this.#model, userCode));
    return id ? this.find(id) : undefined;
  }

  async consume(id: string): Promise<void> {
    const record = await this.#hot.get(hotKeys.record(this.#model, id));
    if (!record) return;
    const { exp } = JSON.parse(record) as AdapterPayload;
    const ttl = exp ? Math.max(1, exp - nowSeconds()) : 3600;
    await this.#hot.setIfAbsent(hotKeys.consumed(this.#model, id), String(nowSeconds()), ttl);
  }

  async destroy(id: string): Promise<void> {
    await this.#hot.delete(hotKeys.record(this.#model, id), hotKeys.consumed(this.#model, id));
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    const prefix = `${this.#model}:`;
    const members = await this.#hot.setMembers(hotKeys.grant(grantId));
    const ids = members.filter((member) => member.startsWith(prefix)).map((member) => member.slice(prefix.length));
    await Promise.all(ids.map((id) => this.destroy(id)));
  }
}

class DurableAdapter implements Adapter {
  #model: string;
  #deps: AdapterDependencies;
  #rows: ReturnType<typeof durablePayloads>;
  #consumable: boolean;
  #cached: boolean;

  constructor(model: string, deps: AdapterDependencies) {
    this.#model = model;
    this.#deps = deps;
    this.#rows = durablePayloads(deps.db, model);
    this.#consumable = consumableModels.has(model);
    this.#cached = !uncachedModels.has(model);
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    await this.#rows.upsert(id, payload, expiresIn);
    if (!this.#cached) return;
    const ttl = Math.min(expiresIn, DURABLE_CACHE_SECONDS);
    const hot = this.#deps.hot;
    // The uid's index too: the lookup by uid that follows (a code redeemed in the session) is then
    // answered from the cache; findByUid checks that the record it leads to still has that uid.
    await this.#cache(() =>
      Promise.all([
        hot.set(hotKeys.record(this.#model, id), JSON.stringify(payload), ttl),
        typeof payload.uid === 'string' ? hot.set(hotKeys.uid(this.#model, payload.uid), id, ttl) : undefined,
      ]),
    );
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    if (this.#model === 'RefreshToken' && id.length !== REFRESH_TOKEN_LENGTH) return undefined;
    if (!this.#cached) return (await this.#rows.find(id))?.payload;
    const readTogether = this.#rows.takeReadTogether(id);
    if (readTogether) return readTogether.payload;
    const hot = this.#deps.hot;
    const cached = await this.#cache(() =>
      Promise.all([
        hot.get(hotKeys.record(this.#model, id)),
        this.#consumable ? hot.get(hotKeys.consumed(this.#model, id)) : null,
      ]),
    );
    if (cached?.[0]) {
      const payload = withConsumed(JSON.parse(cached[0]), cached[1]);
      if (!payload.exp || payload.exp > nowSeconds()) return payload;
    }
    const row = await this.#rows.find(id);
    if (!row) return undefined;
    const ttl = Math.min(row.expiresIn, DURABLE_CACHE_SECONDS);
    // The caller need not wait for the cache to be filled.
    if (ttl > 0) void this.#cache(() => hot.set(hotKeys.record(this.#model, id), JSON.stringify(row.payload), ttl));
    return row.payload;
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    const cachedId = await this.#cache(() => this.#deps.hot.get(hotKeys.uid(this.#model, uid)));
    if (cachedId) {
      const payload = await this.find(cachedId);
      if (payload?.uid === uid) return payload;
    }
    const id = await this.#rows.idByUid(uid);
    if (!id) return undefined;
    await this.#cache(() => this.#deps.hot.set(hotKeys.uid(this.#model, uid), id, DURABLE_CACHE_SECONDS));
    return this.find(id);
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    const id = await this.#rows.idByUserCode(userCode);
    return id ? this.find(id) : undefined;
  }

  // The database is the truth; the marker makes the consumption visible even to a cached copy
  // written by a concurrent find() that read the row just before this update.
  async consume(id: string): Promise<void> {
    if (!this.#cached) {
      // A rotation: oidc-provider stores the new refresh token right after this, in the same turn,
      // so the consumption and the store leave in one statement and commit together; stores are
      // acknowledged only after every earlier write settled, so the answer carrying the new token
      // waits for this consumption too.
      this.#rows.consume(id).catch((error) => this.#deps.log.error({ err: error, model: this.#model }, 'could not mark a token consumed'));
      return;
    }
    const consumedAt = await this.#rows.consume(id);
    if (consumedAt) {
      await this.#cache(() =>
        this.#deps.hot.setIfAbsent(hotKeys.consumed(this.#model, id), String(consumedAt), DURABLE_CACHE_SECONDS * 2),
      );
    }
  }

  async destroy(id: string): Promise<void> {
    await this.#rows.destroy(id);
    if (this.#cached) await this.#cache(() => this.#deps.hot.delete(hotKeys.record(this.#model, id)));
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    const ids = await this.#rows.destroyByGrantId(grantId);
    if (this.#cached) await this.#cache(() => this.#deps.hot.delete(...ids.map((id) => hotKeys.record(this.#model, id))));
  }

  async #cache<T>(operation: () => Promise<T>): Promise<T | undefined> {
    try {
      return await operation();
    } catch (error) {
      this.#deps.log.warn({ err: error, model: this.#model }, 'hot store unavailable; serving from PostgreSQL');
      return undefined;
    }
  }
}

// Revokes everything issued under a grant, in both stores: for our own code (session end,
// suspension), where oidc-provider's per-model calls are not in play.
export async function revokeGrantEverywhere(adapterFor: (model: string) => Adapter, grantId: string): Promise<void> {
  await Promise.all(grantableModels.map((model) => adapterFor(model).revokeByGrantId(grantId)));
  await adapterFor('Grant').destroy(grantId);
}
