/**
 * The Redis store (cache/redis.ts) and the cache in front of it, against a
 * real redis-server on a loopback port: what lands in Redis (prefixed hashed
 * keys, no credential, the TTL), the conflict rule across two caches (two
 * proxies) and across a restart, and what prefetch brings back.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReasoningCache, fullKey } from '../../src/cache/cache.js';
import { CALL_TIMEOUT_MS, MAX_IN_FLIGHT, REDIS_PREFIX, RedisStore, classifyRedisFailure, describeRedisUrl, redisKey } from '../../src/cache/redis.js';
import { createLogger } from '../../src/log.js';
import { makeTestCa } from '../support/pki.js';
import { hasRedisServer, startRedisServer, type RedisServer } from '../support/redis-server.js';

const LIMITS = { maxEntries: 1000, maxBytes: 10 * 1024 * 1024, ttlMs: 60_000 };

function cacheOn(redis: RedisServer, lines: string[] = []): { cache: ReasoningCache; store: RedisStore } {
  const log = createLogger('debug', (line) => void lines.push(line));
  const store = new RedisStore({ url: new URL(redis.url), log });
  return { cache: new ReasoningCache({ limits: LIMITS, shared: store, log }), store };
}

/** Bounded wait for a condition that an asynchronous write makes true. */
async function until(check: () => boolean | Promise<boolean>, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe.skipIf(!hasRedisServer)('the Redis store', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(() => redis?.dispose());

  it('keeps each entry under a prefixed hash of its full key, with the cache TTL, and never the credential or the key itself', async () => {
    const { cache, store } = cacheOn(redis);
    await store.ready();
    cache.remember('scope-of-sk-secret', ['t:turn-1'], '  先查天气。 ');
    await until(() => redis.cli(['EXISTS', redisKey(fullKey('scope-of-sk-secret', 't:turn-1'))]) === '1');
    const keys = redis.cli(['KEYS', '*']).split('\n');
    expect(keys).toEqual([redisKey(fullKey('scope-of-sk-secret', 't:turn-1'))]);
    expect(keys[0]).toMatch(new RegExp(`^${REDIS_PREFIX}[0-9a-f]{64}$`));
    const ttl = Number(redis.cli(['PTTL', keys[0]!]));
    expect(ttl).toBeGreaterThan(55_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    expect(redis.cli(['GET', keys[0]!])).not.toContain('scope-of-sk-secret');
    await cache.close();
  });

  it('gives a second cache (another proxy) the exact text through prefetch, with the remaining lifetime, counted as a store hit', async () => {
    const a = cacheOn(redis);
    const b = cacheOn(redis);
    await Promise.all([a.store.ready(), b.store.ready()]);
    a.cache.remember('s', ['t:x', 'c:x'], 'reasoning for x');
    await until(async () => (await b.store.find([fullKey('s', 't:x')])).size === 1);
    expect(b.cache.lookup('s', ['t:x'])).toBeUndefined();
    expect(await b.cache.prefetch('s', ['t:x', 'c:x', 't:unknown'])).toBe(2);
    expect(b.cache.lookup('s', ['t:x'])).toBe('reasoning for x');
    expect(b.cache.stats().storeHits).toBe(1);
    // Memory already holds it: nothing is asked again.
    expect(await b.cache.prefetch('s', ['t:x'])).toBe(0);
    await Promise.all([a.cache.close(), b.cache.close()]);
  });

  it('makes a key learned with two different texts by two proxies a miss everywhere, and after a restart; whitespace alone is no conflict', async () => {
    const a = cacheOn(redis);
    const b = cacheOn(redis);
    await Promise.all([a.store.ready(), b.store.ready()]);
    a.cache.remember('s', ['t:k'], 'text one');
    await until(async () => (await a.store.find([fullKey('s', 't:k')])).size === 1);
    b.cache.remember('s', ['t:k'], 'text two');
    // B hears back from Redis that the key is conflicted, and drops it from memory.
    await until(() => b.cache.lookup('s', ['t:k'], false) === undefined);
    expect(redis.cli(['GET', redisKey(fullKey('s', 't:k'))])).toBe('!');
    // A third proxy (or A after a restart) finds the conflict marker, not a text.
    const c = cacheOn(redis);
    await c.store.ready();
    expect(await c.cache.prefetch('s', ['t:k'])).toBe(1);
    expect(c.cache.lookup('s', ['t:k'])).toBeUndefined();
    // The conflict outlives a later learn of either text.
    c.cache.remember('s', ['t:k'], 'text one');
    await until(() => c.cache.lookup('s', ['t:k'], false) === undefined);
    expect(redis.cli(['GET', redisKey(fullKey('s', 't:k'))])).toBe('!');

    a.cache.remember('s', ['t:w'], 'same text');
    await until(async () => (await a.store.find([fullKey('s', 't:w')])).size === 1);
    b.cache.remember('s', ['t:w'], '\n same text  ');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const found = await c.store.find([fullKey('s', 't:w')]);
    expect(found.get(fullKey('s', 't:w'))).toMatchObject({ reasoning: 'same text' });
    await Promise.all([a.cache.close(), b.cache.close(), c.cache.close()]);
  });

  it('reads a value under its prefix that is not its own (another type, a text whose hash is not its own, too short) as a miss, without failing the other keys of the call', async () => {
    const { cache, store } = cacheOn(redis);
    await store.ready();
    const [hash, list, forged, short, good] = ['t:hash', 't:list', 't:forged', 't:short', 't:good'].map((k) => fullKey('s', k)) as [string, string, string, string, string];
    redis.cli(['HSET', redisKey(hash), 'field', 'value']);
    redis.cli(['RPUSH', redisKey(list), 'item']);
    redis.cli(['SET', redisKey(forged), `${'0'.repeat(64)}a text nobody learned`, 'PX', '60000']);
    redis.cli(['SET', redisKey(short), 'abc', 'PX', '60000']);
    await store.put([good], 'the learned text', 60_000);
    const found = await store.find([hash, list, forged, short, good]);
    expect([...found.keys()]).toEqual([good]);
    expect(found.get(good)).toMatchObject({ reasoning: 'the learned text' });
    expect(await cache.prefetch('s', ['t:hash', 't:list', 't:forged', 't:short', 't:good'])).toBe(1);
    expect(cache.lookup('s', ['t:forged'])).toBeUndefined();
    expect(cache.lookup('s', ['t:good'])).toBe('the learned text');
    expect(cache.stats().storeReadErrors).toBe(0);
    // A write over them: the other keys of the call are learned; what is not ours is left as it was.
    expect(await store.put([hash, list, fullKey('s', 't:after')], 'another text', 60_000)).toEqual([]);
    expect(redis.cli(['TYPE', redisKey(hash)])).toBe('hash');
    expect(redis.cli(['TYPE', redisKey(list)])).toBe('list');
    expect((await store.find([fullKey('s', 't:after')])).get(fullKey('s', 't:after'))).toMatchObject({ reasoning: 'another text' });
    await cache.close();
  });

  it('a full Redis (maxmemory, noeviction) refuses writes: counted, kept in memory, reads still answer; FLUSHALL mid-run is a miss', async () => {
    const { cache, store } = cacheOn(redis);
    await store.ready();
    cache.remember('s', ['t:before'], 'learned before');
    await until(async () => (await store.find([fullKey('s', 't:before')])).size === 1);
    redis.cli(['CONFIG', 'SET', 'maxmemory-policy', 'noeviction']);
    redis.cli(['CONFIG', 'SET', 'maxmemory', '1']);
    try {
      cache.remember('s', ['t:full'], 'learned while full');
      await until(() => cache.stats().storeWriteErrors === 1);
      expect(cache.lookup('s', ['t:full'])).toBe('learned while full');
      const other = cacheOn(redis);
      await other.store.ready();
      expect(await other.cache.prefetch('s', ['t:before', 't:full'])).toBe(1);
      expect(other.cache.lookup('s', ['t:before'])).toBe('learned before');
      expect(other.cache.stats().storeReadErrors).toBe(0);
      redis.cli(['CONFIG', 'SET', 'maxmemory', '0']);
      redis.cli(['FLUSHALL']);
      expect(await other.cache.prefetch('s', ['t:gone'])).toBe(0);
      expect(other.cache.stats().storeReadErrors).toBe(0);
      await other.cache.close();
    } finally {
      redis.cli(['CONFIG', 'SET', 'maxmemory', '0']);
    }
    await cache.close();
  });

  it('two proxies learning different texts under one key at the same moment: the conflict wins on both', async () => {
    const a = cacheOn(redis);
    const b = cacheOn(redis);
    await Promise.all([a.store.ready(), b.store.ready()]);
    a.cache.remember('s', ['c:race'], 'text of a');
    b.cache.remember('s', ['c:race'], 'text of b');
    await until(() => redis.cli(['GET', redisKey(fullKey('s', 'c:race'))]) === '!');
    // Whichever wrote first still holds its text in memory until it asks Redis (prefetch does).
    await Promise.all([a.cache.prefetch('s', ['c:race']), b.cache.prefetch('s', ['c:race'])]);
    expect(a.cache.lookup('s', ['c:race'])).toBeUndefined();
    expect(b.cache.lookup('s', ['c:race'])).toBeUndefined();
    await Promise.all([a.cache.close(), b.cache.close()]);
  });

  it('Redis lost its data (a restart, FLUSHALL) while a proxy still holds a text: another text learned since conflicts on both proxies', async () => {
    const a = cacheOn(redis);
    const b = cacheOn(redis);
    await Promise.all([a.store.ready(), b.store.ready()]);
    a.cache.remember('s', ['c:lost'], 'text of a');
    await until(() => redis.cli(['EXISTS', redisKey(fullKey('s', 'c:lost'))]) === '1');
    redis.cli(['FLUSHALL']);
    b.cache.remember('s', ['c:lost'], 'text of b');
    await until(() => redis.cli(['EXISTS', redisKey(fullKey('s', 'c:lost'))]) === '1');
    // A sees another text than its own: conflicted here, and Redis is told, so B learns it too.
    expect(await a.cache.prefetch('s', ['c:lost'])).toBe(1);
    expect(a.cache.lookup('s', ['c:lost'])).toBeUndefined();
    await until(() => redis.cli(['GET', redisKey(fullKey('s', 'c:lost'))]) === '!');
    expect(await b.cache.prefetch('s', ['c:lost'])).toBe(1);
    expect(b.cache.lookup('s', ['c:lost'])).toBeUndefined();
    await Promise.all([a.cache.close(), b.cache.close()]);
  });

  it('Redis lost its data while a proxy knows a key conflicted (or under another text): learning the key again there tells Redis, so another proxy does not put a text back', async () => {
    const a = cacheOn(redis);
    const b = cacheOn(redis);
    await Promise.all([a.store.ready(), b.store.ready()]);
    a.cache.remember('s', ['c:known', 'c:marked'], 'first text');
    a.cache.remember('s', ['c:marked'], 'second text');
    await until(() => redis.cli(['GET', redisKey(fullKey('s', 'c:marked'))]) === '!');
    redis.cli(['FLUSHALL']);
    // A learns other texts under both keys: memory had another text under one, the other was conflicted.
    a.cache.remember('s', ['c:known', 'c:marked'], 'third text');
    expect(a.cache.lookup('s', ['c:known'])).toBeUndefined();
    expect(a.cache.lookup('s', ['c:marked'])).toBeUndefined();
    await until(() => redis.cli(['GET', redisKey(fullKey('s', 'c:known'))]) === '!' && redis.cli(['GET', redisKey(fullKey('s', 'c:marked'))]) === '!');
    await b.cache.prefetch('s', ['c:known', 'c:marked']);
    expect(b.cache.lookup('s', ['c:known'])).toBeUndefined();
    expect(b.cache.lookup('s', ['c:marked'])).toBeUndefined();
    await Promise.all([a.cache.close(), b.cache.close()]);
  });

  it('never writes a text under a key memory knows conflicted, not even for the moment before the marker follows', async () => {
    const a = cacheOn(redis);
    await a.store.ready();
    const marked = redisKey(fullKey('s', 'c:twice'));
    a.cache.remember('s', ['c:twice'], 'first text');
    a.cache.remember('s', ['c:twice'], 'second text');
    await until(() => redis.cli(['GET', marked]) === '!');
    redis.cli(['FLUSHALL']);
    // Every command Redis runs, scripts' own included: a text there, even briefly, is a text another proxy may read.
    const monitor = spawn('redis-cli', ['-p', String(redis.port), 'monitor'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let seen = '';
    monitor.stdout.on('data', (chunk: Buffer) => (seen += chunk.toString('utf8')));
    try {
      await until(() => seen.startsWith('OK'));
      a.cache.remember('s', ['c:twice', 'c:fresh'], 'third text');
      await until(() => redis.cli(['GET', marked]) === '!' && redis.cli(['GET', redisKey(fullKey('s', 'c:fresh'))]).endsWith('third text'));
      await until(() => seen.includes(marked));
    } finally {
      monitor.kill();
    }
    expect(seen.split('\n').filter((line) => line.includes(marked) && line.includes('third text'))).toEqual([]);
    await a.cache.close();
  });

  it('describes a URL without its credentials and tells auth, TLS and reachability failures apart', () => {
    expect(describeRedisUrl(new URL('rediss://user:hunter2@cache.internal:6380/3'))).toBe('rediss://cache.internal:6380/3');
    expect(describeRedisUrl(new URL('redis://:pw@127.0.0.1'))).toBe('redis://127.0.0.1:6379');
    expect(classifyRedisFailure(new Error('WRONGPASS invalid username-password pair or user is disabled.'))).toBe('REDIS_AUTH');
    expect(classifyRedisFailure(new Error('NOAUTH Authentication required.'))).toBe('REDIS_AUTH');
    expect(classifyRedisFailure(Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }))).toBe('REDIS_TLS');
    expect(classifyRedisFailure(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }))).toBe('REDIS_UNREACHABLE');
  });

  it('fails a call at once while disconnected, and a read then is a miss, not an error', async () => {
    const lines: string[] = [];
    const { cache, store } = cacheOn(redis, lines);
    await store.ready();
    await store.close();
    const started = performance.now();
    expect(await cache.prefetch('s', ['t:none'])).toBe(0);
    expect(performance.now() - started).toBeLessThan(20);
    expect(cache.stats().storeReadErrors).toBe(1);
    expect(lines.some((l) => l.includes('reasoning store read failed'))).toBe(true);
  });
});

/**
 * A relay in front of a real redis-server that delays its replies, or cuts the connection
 * halfway through the next one.
 */
async function replyRelay(port: number): Promise<{ port: number; delayMs: number; cutNext: boolean; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const relay = { port: 0, delayMs: 0, cutNext: false, close: () => new Promise<void>((resolve) => {
    for (const socket of sockets) socket.destroy();
    server.close(() => resolve());
  }) };
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (data) => upstream.write(data));
    upstream.on('data', (data: Buffer) => {
      if (relay.cutNext && data.length > 1) {
        relay.cutNext = false;
        client.end(data.subarray(0, data.length >> 1), () => client.destroy());
        return;
      }
      setTimeout(() => client.writable && client.write(data), relay.delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  relay.port = (server.address() as net.AddressInfo).port;
  return relay;
}

describe.skipIf(!hasRedisServer)('the Redis store behind a slow or cut connection', () => {
  it(`answers a reply ${CALL_TIMEOUT_MS - 30} ms late, misses (counted) one ${CALL_TIMEOUT_MS + 30} ms late within the bound, and a reply cut halfway is a miss, then reconnects`, async () => {
    const redis = await startRedisServer();
    const relay = await replyRelay(redis.port);
    const store = new RedisStore({ url: new URL(`redis://127.0.0.1:${relay.port}`), log: createLogger('silent') });
    const reader = (): ReasoningCache => new ReasoningCache({ limits: LIMITS, shared: store });
    try {
      await store.ready();
      await store.put([fullKey('s', 'c:slow')], 'a slow text', 60_000);
      relay.delayMs = CALL_TIMEOUT_MS - 30;
      const under = reader();
      expect(await under.prefetch('s', ['c:slow'])).toBe(1);
      expect(under.lookup('s', ['c:slow'])).toBe('a slow text');

      relay.delayMs = CALL_TIMEOUT_MS + 30;
      const over = reader();
      const started = performance.now();
      expect(await over.prefetch('s', ['c:slow'])).toBe(0);
      expect(performance.now() - started).toBeLessThan(CALL_TIMEOUT_MS + 28);
      expect(over.stats().storeReadErrors).toBe(1);
      // The late reply arrives and is dropped; the connection carries on.
      await new Promise((resolve) => setTimeout(resolve, 60));

      relay.delayMs = 0;
      relay.cutNext = true;
      const cut = reader();
      expect(await cut.prefetch('s', ['c:slow'])).toBe(0);
      expect(cut.stats().storeReadErrors).toBe(1);
      await until(() => store.status().state === 'connected', 3000);
      expect(await cut.prefetch('s', ['c:slow'])).toBe(1);
      expect(cut.lookup('s', ['c:slow'])).toBe('a slow text');
    } finally {
      await store.close();
      await relay.close();
      await redis.dispose();
    }
  });
});

describe.skipIf(!hasRedisServer)('the Redis store over TLS', () => {
  it('refuses a trusted certificate issued for another name (REDIS_TLS, memory only); the same CA with the right name connects', async () => {
    const ca = makeTestCa('mimo-proxy test Redis CA');
    const secureContext = tls.createSecureContext({ ca: ca.certPem });
    const redis = await startRedisServer({ tlsCa: ca, tlsNames: ['redis.internal'] });
    const right = await startRedisServer({ tlsCa: ca });
    const lines: string[] = [];
    const log = createLogger('debug', (line) => void lines.push(line));
    const wrong = new RedisStore({ url: new URL(redis.url), log, secureContext });
    const ok = new RedisStore({ url: new URL(right.url), log: createLogger('silent'), secureContext });
    try {
      await Promise.all([wrong.ready(), ok.ready()]);
      expect(wrong.status()).toMatchObject({ state: 'down', problem: 'REDIS_TLS' });
      expect(lines.some((l) => l.includes('code=REDIS_TLS') && l.includes('ERR_TLS_CERT_ALTNAME_INVALID'))).toBe(true);
      await expect(wrong.find(['k'])).rejects.toThrow();
      expect(ok.status()).toMatchObject({ state: 'connected' });
      expect((await ok.find(['k'])).size).toBe(0);
    } finally {
      await Promise.all([wrong.close(), ok.close()]);
      await Promise.all([redis.dispose(), right.dispose()]);
    }
  });
});

describe.skipIf(!hasRedisServer)('the Redis store with a stopped server (SIGSTOP)', () => {
  it(`gives up on each call after ${CALL_TIMEOUT_MS} ms, holds at most ${MAX_IN_FLIGHT} calls waiting (the rest fail at once), and drains once resumed`, async () => {
    const redis = await startRedisServer();
    const store = new RedisStore({ url: new URL(redis.url), log: createLogger('silent') });
    try {
      await store.ready();
      redis.pause();
      const timings = await Promise.all(
        Array.from({ length: MAX_IN_FLIGHT + 44 }, async (_, i) => {
          const t0 = performance.now();
          const ok = await store.find([`k${i}`]).then(() => true, () => false);
          return { ok, ms: performance.now() - t0 };
        }),
      );
      expect(timings.every((t) => !t.ok)).toBe(true);
      const slow = timings.filter((t) => t.ms >= CALL_TIMEOUT_MS - 1);
      expect(slow).toHaveLength(MAX_IN_FLIGHT);
      // (Generous: 1,068 calls are made in one go on a machine that may be busy.)
      expect(Math.max(...timings.map((t) => t.ms))).toBeLessThan(CALL_TIMEOUT_MS + 500);
      // Timed out, but still unanswered: they keep their places until Redis replies.
      expect(store.waiting).toBe(MAX_IN_FLIGHT);
      redis.resume();
      await until(() => store.waiting === 0);
      expect((await store.find(['k1'])).size).toBe(0);
    } finally {
      redis.resume();
      await store.close();
      await redis.dispose();
    }
  });
});
