import { Redis, Cluster, type RedisOptions } from 'ioredis';
import type { HotStore, StreamAppend, StreamEntry } from './hot-store.ts';

// Lua keeps each multi-step operation atomic and single-key, so it is valid on Redis Cluster too.
const INCREMENT_WITH_TTL = `
local value = redis.call('INCR', KEYS[1])
if value == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return value`;

const ADD_TO_SET_GROWING_TTL = `
redis.call('SADD', KEYS[1], ARGV[1])
local ttl = redis.call('TTL', KEYS[1])
if ttl < tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1`;

// The dedupe marker and the entry are written together or not at all.
const APPEND_ONCE = `
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then return false end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))`;

// A stream and its dedupe markers share one hash tag, so the script stays in one slot of a cluster.
function streamKey(stream: string): string {
  return `{${stream}}`;
}

type Client = (Redis | Cluster) & {
  appendOnce(stream: string, marker: string, ttl: number, maxLength: number, ...fields: string[]): Promise<string | null>;
  incrementWithTtl(key: string, ttl: number): Promise<number>;
  addToSetGrowingTtl(key: string, member: string, ttl: number): Promise<number>;
};

export interface RedisHotStoreOptions {
  urls: string[];
  keyPrefix: string;
}

export class RedisHotStore implements HotStore {
  readonly kind = 'redis' as const;
  readonly client: Client;
  #subscriber?: Redis | Cluster;
  #handlers = new Map<string, Array<(message: string) => void>>();
  #channelPrefix: string;
  #knownGroups = new Set<string>();

  constructor(options: RedisHotStoreOptions) {
    const common: RedisOptions = {
      keyPrefix: options.keyPrefix,
      maxRetriesPerRequest: 2,
      connectTimeout: 5000,
      // A Redis that accepts connections but does not answer must not hold requests: the command
      // fails and the outage fallback takes over (docs/operations.md, "Outages").
      commandTimeout: 2000,
      lazyConnect: false,
      // Commands issued in the same tick (parallel requests, Promise.all) leave in one write: on a
      // busy instance most of a command's cost is the socket write, not Redis.
      enableAutoPipelining: true,
      // CLIENT SETINFO is unknown before Redis 7.2; each connection would log an error there.
      disableClientInfo: true,
    };
    this.#channelPrefix = options.keyPrefix;
    const client =
      options.urls.length > 1
        ? new Cluster(options.urls.map(parseNode), { redisOptions: { ...common, ...clusterCredentials(options.urls[0]) }, keyPrefix: options.keyPrefix, enableAutoPipelining: true })
        : new Redis(options.urls[0], common);
    client.defineCommand('incrementWithTtl', { numberOfKeys: 1, lua: INCREMENT_WITH_TTL });
    client.defineCommand('addToSetGrowingTtl', { numberOfKeys: 1, lua: ADD_TO_SET_GROWING_TTL });
    client.defineCommand('appendOnce', { numberOfKeys: 2, lua: APPEND_ONCE });
    // Errors surface on the commands that fail; the 'error' event alone must not crash the process.
    client.on('error', () => {});
    this.client = client as Client;
  }

  async get(key: string): Promise<string | null> {
    return this.client.get(key);
  }

  async set(key: string, value: string, ttlSeconds?: number): Promise<void> {
    if (ttlSeconds) await this.client.set(key, value, 'EX', Math.max(1, Math.ceil(ttlSeconds)));
    else await this.client.set(key, value);
  }

  async setIfAbsent(key: string, value: string, ttlSeconds: number): Promise<boolean> {
    const result = await this.client.set(key, value, 'EX', Math.max(1, Math.ceil(ttlSeconds)), 'NX');
    return result === 'OK';
  }

  async delete(...keys: string[]): Promise<void> {
    // One DEL per key: keys of different hash slots cannot share a command on a cluster.
    await Promise.all(keys.map((key) => this.client.del(key)));
  }

  async increment(key: string, ttlSeconds: number): Promise<number> {
    return Number(await this.client.incrementWithTtl(key, Math.max(1, Math.ceil(ttlSeconds))));
  }

  async addToSet(key: string, member: string, ttlSeconds: number): Promise<void> {
    await this.client.addToSetGrowingTtl(key, member, Math.max(1, Math.ceil(ttlSeconds)));
  }

  async setMembers(key: string): Promise<string[]> {
    return this.client.smembers(key);
  }

  async publish(channel: string, message: string): Promise<number> {
    return this.client.publish(this.#channelPrefix + channel, message);
  }

  async subscribe(channel: string, handler: (message: string) => void): Promise<void> {
    const subscriber = this.#subscriberConnection();
    const full = this.#channelPrefix + channel;
    const handlers = this.#handlers.get(full) ?? [];
    handlers.push(handler);
    this.#handlers.set(full, handlers);
    try {
      await subscriber.subscribe(full);
    } catch (error) {
      // A subscription that failed (Redis down) can be made again without delivering twice.
      handlers.splice(handlers.indexOf(handler), 1);
      throw error;
    }
  }

  async appendToStream(stream: string, entry: StreamAppend): Promise<string | null> {
    const key = streamKey(stream);
    const fields = Object.entries(entry.fields).flat();
    const id = await this.client.appendOnce(key, `${key}:dedupe:${entry.dedupeId}`, Math.max(1, Math.ceil(entry.dedupeSeconds)), entry.maxLength, ...fields);
    return id ?? null;
  }

  async readStreamGroup(stream: string, group: string, consumer: string, count: number): Promise<StreamEntry[]> {
    const key = streamKey(stream);
    const read = () => this.client.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'STREAMS', key, '>') as Promise<Array<[string, Array<[string, string[]]>]> | null>;
    if (!this.#knownGroups.has(`${key} ${group}`)) await this.#createGroup(key, group);
    let reply;
    try {
      reply = await read();
    } catch (error) {
      // The stream (and its groups) was deleted since: create the group again.
      if (!String((error as Error).message).startsWith('NOGROUP')) throw error;
      await this.#createGroup(key, group);
      reply = await read();
    }
    return (reply?.[0]?.[1] ?? []).map(([id, flat]) => ({ id, fields: pairs(flat) }));
  }

  async acknowledgeStream(stream: string, group: string, ids: string[]): Promise<number> {
    return ids.length ? this.client.xack(streamKey(stream), group, ...ids) : 0;
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.client.ping()) === 'PONG';
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.#subscriber?.disconnect();
    this.client.disconnect();
  }

  async #createGroup(key: string, group: string): Promise<void> {
    try {
      await this.client.xgroup('CREATE', key, group, '0', 'MKSTREAM');
    } catch (error) {
      if (!String((error as Error).message).startsWith('BUSYGROUP')) throw error;
    }
    this.#knownGroups.add(`${key} ${group}`);
  }

  #subscriberConnection(): Redis | Cluster {
    if (!this.#subscriber) {
      const subscriber: Redis | Cluster = (this.client as Redis).duplicate();
      subscriber.on('error', () => {});
      subscriber.on('message', (channel: string, message: string) => {
        for (const handler of this.#handlers.get(channel) ?? []) handler(message);
      });
      this.#subscriber = subscriber;
    }
    return this.#subscriber;
  }
}

// A managed cluster's user, password and TLS (rediss://) come from the URLs, which name only the
// nodes to start from; the cluster connects to the others it learns of with the same settings.
function clusterCredentials(url: string): Pick<RedisOptions, 'username' | 'password' | 'tls'> {
  const parsed = new URL(url);
  return {
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(parsed.protocol === 'rediss:' ? { tls: { servername: parsed.hostname } } : {}),
  };
}

function parseNode(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: Number(parsed.port || 6379) };
}

function pairs(flat: string[]): Record<string, string> {
  const fields: Record<string, string> = {};
  for (let index = 0; index + 1 < flat.length; index += 2) fields[flat[index]] = flat[index + 1];
  return fields;
}
