import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CACHE_LIMITS, ReasoningCache, validateCacheLimits, type CacheLimits } from '../../src/cache/cache.js';
import { MimoProxyError } from '../../src/errors.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { openStore, type ReasoningStore } from '../../src/cache/store.js';

const A = 'k:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const B = 'k:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
const THOUGHT = '让我想想：用户要读取 config.json，先调用 read_file。';

function clock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

function cache(limits: Partial<CacheLimits> = {}, extra: { now?: () => number; store?: ReasoningStore } = {}): ReasoningCache {
  return new ReasoningCache({ limits: { ...DEFAULT_CACHE_LIMITS, ...limits }, ...extra });
}

describe('ReasoningCache', () => {
  it('has default limits that are all positive and finite', () => {
    expect(() => cache()).not.toThrow();
    expect(DEFAULT_CACHE_LIMITS.maxEntries).toBeGreaterThan(0);
  });

  it('finds reasoning under every key it was remembered with', () => {
    const c = cache();
    c.remember(A, ['id:call_1', 'id:call_2', 'fp:abc'], THOUGHT);
    expect(c.lookup(A, ['id:call_2'])).toBe(THOUGHT);
    expect(c.lookup(A, ['fp:abc'])).toBe(THOUGHT);
    expect(c.lookup(A, ['id:call_3'])).toBeUndefined();
  });

  it('answers with the first key in order that has an entry', () => {
    const c = cache();
    c.remember(A, ['id:first'], '第一');
    c.remember(A, ['id:second'], '第二');
    expect(c.lookup(A, ['id:none', 'id:second', 'id:first'])).toBe('第二');
    expect(c.lookup(A, ['id:first', 'id:second'])).toBe('第一');
  });

  it('keeps two scopes apart even under the same key', () => {
    const c = cache();
    c.remember(A, ['id:call_1'], '甲的思考');
    c.remember(B, ['id:call_1'], '乙的思考');
    expect(c.lookup(A, ['id:call_1'])).toBe('甲的思考');
    expect(c.lookup(B, ['id:call_1'])).toBe('乙的思考');
    expect(c.lookup('anonymous', ['id:call_1'])).toBeUndefined();
  });

  it('never lets a later remember move a key to a different reasoning: the key becomes a miss', () => {
    const c = cache();
    c.remember(A, ['fp:x', 'id:1'], '旧');
    c.remember(A, ['fp:x'], '新');
    expect(c.lookup(A, ['fp:x'])).toBeUndefined();
    expect(c.lookup(A, ['id:1'])).toBe('旧');
  });

  it('evicts the least recently used entry past the entry limit', () => {
    const c = cache({ maxEntries: 2 });
    c.remember(A, ['id:1'], '一');
    c.remember(A, ['id:2'], '二');
    expect(c.lookup(A, ['id:1'])).toBe('一'); // 1 is now the most recent
    c.remember(A, ['id:3'], '三');
    expect(c.lookup(A, ['id:2'])).toBeUndefined();
    expect(c.lookup(A, ['id:1'])).toBe('一');
    expect(c.lookup(A, ['id:3'])).toBe('三');
    expect(c.stats().entries).toBe(2);
  });

  it('evicts old entries past the byte limit', () => {
    const c = cache({ maxBytes: 4_000 });
    const text = (n: number): string => `${n}`.padEnd(600, '想');
    for (let i = 0; i < 10; i++) c.remember(A, [`id:${i}`], text(i));
    expect(c.stats().bytes).toBeLessThanOrEqual(4_000);
    expect(c.lookup(A, ['id:0'])).toBeUndefined();
    expect(c.lookup(A, ['id:9'])).toBe(text(9));
  });

  it('counts shared reasoning once, not once per key', () => {
    const c = cache();
    const long = '长'.repeat(10_000);
    c.remember(A, ['id:1', 'id:2', 'id:3', 'id:4', 'fp:x'], long);
    expect(c.stats().entries).toBe(1);
    expect(c.stats().bytes).toBeGreaterThanOrEqual(20_000);
    expect(c.stats().bytes).toBeLessThan(21_000);
  });

  it('does not keep a text bigger than the whole byte budget', () => {
    const c = cache({ maxBytes: 1_000 });
    c.remember(A, ['id:big'], '大'.repeat(1_000));
    expect(c.lookup(A, ['id:big'])).toBeUndefined();
    expect(c.stats().entries).toBe(0);
  });

  it('forgets entries after the TTL', () => {
    const t = clock();
    const c = cache({ ttlMs: 60_000 }, { now: t.now });
    c.remember(A, ['id:1'], THOUGHT);
    t.advance(59_999);
    expect(c.lookup(A, ['id:1'])).toBe(THOUGHT);
    t.advance(2);
    expect(c.lookup(A, ['id:1'])).toBeUndefined();
  });

  it('counts hits, misses, entries and bytes', () => {
    const c = cache();
    c.remember(A, ['id:1'], 'ab');
    c.lookup(A, ['id:1']);
    c.lookup(A, ['id:1']);
    c.lookup(A, ['id:2']);
    const s = c.stats();
    expect(s).toMatchObject({ entries: 1, hits: 2, misses: 1, storeHits: 0, persisted: false });
    // 2 UTF-16 bytes per code unit over text, entry key (scope NUL sha256) and full key.
    expect(s.bytes).toBe(2 * (2 + (A.length + 1 + 64) + (A.length + 1 + 4)));
  });

  it('refuses non-positive or non-finite limits at startup, naming the option', () => {
    const bad: [Partial<CacheLimits>, string][] = [
      [{ maxEntries: 0 }, '--cache-max'],
      [{ maxEntries: 1.5 }, '--cache-max'],
      [{ maxBytes: -1 }, '--cache-max-bytes'],
      [{ maxBytes: Number.POSITIVE_INFINITY }, '--cache-max-bytes'],
      [{ ttlMs: Number.NaN }, '--cache-ttl'],
      [{ ttlMs: 0 }, '--cache-ttl'],
    ];
    for (const [limits, option] of bad) {
      let thrown: unknown;
      try {
        validateCacheLimits({ ...DEFAULT_CACHE_LIMITS, ...limits });
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(MimoProxyError);
      expect((thrown as MimoProxyError).code).toBe('BAD_OPTION');
      expect((thrown as MimoProxyError).message).toContain(option);
      // The constructor trusts checked limits: unchecked ones are a programming error, not a user's.
      expect(() => cache(limits)).toThrow(TypeError);
    }
    expect(() => validateCacheLimits(DEFAULT_CACHE_LIMITS)).not.toThrow();
  });

  it('keeps serving from memory when the store throws, warning without content', () => {
    const lines: string[] = [];
    const failing: ReasoningStore = {
      path: '/nowhere/reasoning.sqlite',
      get: () => {
        throw Object.assign(new Error('disk I/O error'), { code: 'ERR_SQLITE_ERROR' });
      },
      put: () => {
        throw Object.assign(new Error('database or disk is full'), { code: 'ERR_SQLITE_ERROR' });
      },
      stats: () => ({ entries: 0, bytes: 0 }),
      close: () => undefined,
    };
    const c = new ReasoningCache({ limits: DEFAULT_CACHE_LIMITS, store: failing, log: createLogger('warn', (l) => lines.push(l)) });
    c.remember(A, ['id:secret-call'], THOUGHT);
    c.remember(A, ['id:other'], THOUGHT);
    expect(c.lookup(A, ['id:secret-call'])).toBe(THOUGHT);
    expect(c.lookup(A, ['id:missing'])).toBeUndefined();
    expect(lines).toHaveLength(1); // rate-limited
    expect(lines.join('')).not.toContain('secret-call');
    expect(lines.join('')).not.toContain('想');
  });

  it('puts a store hit back in memory and counts it', () => {
    const stored = new Map<string, string>([[`${A}\u0000id:old`, THOUGHT]]);
    let gets = 0;
    const store: ReasoningStore = {
      path: 'memory',
      get: (key) => {
        gets++;
        return stored.get(key);
      },
      put: () => [],
      stats: () => ({ entries: stored.size, bytes: 0 }),
      close: () => undefined,
    };
    const c = cache({}, { store });
    expect(c.lookup(B, ['id:old'])).toBeUndefined();
    expect(c.lookup(A, ['id:old'])).toBe(THOUGHT);
    const before = gets;
    expect(c.lookup(A, ['id:old'])).toBe(THOUGHT);
    expect(gets).toBe(before);
    expect(c.stats()).toMatchObject({ hits: 2, storeHits: 1, misses: 1, persisted: true, storeEntries: 1 });
  });
});

/** A store stand-in over a Map, with `put` answering the keys it already held with another text, as the store will. */
function mapStore(): { store: ReasoningStore; stored: Map<string, { reasoning: string; expiresAt: number }>; gets: string[] } {
  const stored = new Map<string, { reasoning: string; expiresAt: number }>();
  const gets: string[] = [];
  const store: ReasoningStore = {
    path: 'memory',
    get: (key, now) => {
      gets.push(key);
      const found = stored.get(key);
      return found !== undefined && found.expiresAt > now ? found.reasoning : undefined;
    },
    put: (keys, reasoning, expiresAt) => {
      const conflicted: string[] = [];
      for (const key of keys) {
        const known = stored.get(key);
        if (known !== undefined && known.reasoning.trim() !== reasoning.trim()) conflicted.push(key);
        stored.set(key, { reasoning, expiresAt });
      }
      return conflicted;
    },
    stats: () => ({ entries: stored.size, bytes: 0 }),
    close: () => undefined,
  };
  return { store, stored, gets };
}

describe('conflicting reasoning under one key', () => {
  it('makes a lookup on that key miss, while the other keys of both texts still find theirs', () => {
    const c = cache();
    c.remember(A, ['t:read', 'c:same'], '甲的思考');
    c.remember(A, ['t:grep', 'c:same'], '乙的思考');
    expect(c.lookup(A, ['c:same'])).toBeUndefined();
    expect(c.lookup(A, ['t:read'])).toBe('甲的思考');
    expect(c.lookup(A, ['t:grep'])).toBe('乙的思考');
    // A conflicted key is skipped, not the end of the lookup.
    expect(c.lookup(A, ['c:same', 't:grep'])).toBe('乙的思考');
    expect(c.stats()).toMatchObject({ hits: 3, misses: 1 });
  });

  it('keeps the key a miss when either text, or a third, is learned under it again', () => {
    const c = cache();
    c.remember(A, ['c:same'], '甲');
    c.remember(A, ['c:same'], '乙');
    for (const text of ['甲', '乙', '丙']) {
      c.remember(A, ['c:same'], text);
      expect(c.lookup(A, ['c:same']), text).toBeUndefined();
    }
  });

  it('is no conflict when the same text, or the same text with other surrounding whitespace, is learned again', () => {
    const c = cache();
    c.remember(A, ['c:same', 't:1'], THOUGHT);
    c.remember(A, ['c:same'], THOUGHT);
    expect(c.lookup(A, ['c:same'])).toBe(THOUGHT);
    c.remember(A, ['c:same', 't:2'], `\n${THOUGHT}  `);
    expect(c.lookup(A, ['c:same'])?.trim()).toBe(THOUGHT);
    expect(c.lookup(A, ['t:1'])).toBe(THOUGHT);
    expect(c.lookup(A, ['t:2'])?.trim()).toBe(THOUGHT);
  });

  it('stays in its scope', () => {
    const c = cache();
    c.remember(A, ['c:same'], '甲');
    c.remember(A, ['c:same'], '乙');
    c.remember(B, ['c:same'], '乙');
    expect(c.lookup(A, ['c:same'])).toBeUndefined();
    expect(c.lookup(B, ['c:same'])).toBe('乙');
  });

  it('keeps the conflict in the store on disk, so a restarted cache misses too', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mimo-cache-'));
    try {
      const first = openStore(dir, DEFAULT_CACHE_LIMITS, silentLogger, { busyTimeoutMs: 50 });
      const c = cache({}, { store: first });
      c.remember(A, ['t:1', 'c:same'], '甲');
      c.remember(A, ['t:2', 'c:same'], '乙');
      expect(c.lookup(A, ['c:same'])).toBeUndefined();
      expect(first.get(`${A}\u0000c:same`, Date.now())).toBeUndefined();
      c.close();
      // A new process: memory is empty, the store still knows the key is conflicted.
      const second = openStore(dir, DEFAULT_CACHE_LIMITS, silentLogger, { busyTimeoutMs: 50 });
      const restarted = cache({}, { store: second });
      expect(restarted.lookup(A, ['c:same'])).toBeUndefined();
      expect(restarted.lookup(A, ['t:1'])).toBe('甲');
      expect(restarted.lookup(A, ['t:2'])).toBe('乙');
      restarted.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('never asks the store for a key conflicted in memory', () => {
    const { store, gets } = mapStore();
    const c = cache({}, { store });
    c.remember(A, ['c:same'], '甲');
    c.remember(A, ['c:same'], '乙');
    expect(c.lookup(A, ['c:same'])).toBeUndefined();
    expect(gets).toEqual([]);
  });

  it('honours the keys the store reports as conflicted, which memory did not know', () => {
    const { store } = mapStore();
    // What an earlier run of the proxy left in the store.
    store.put([`${A}\u0000c:same`], '上次的思考', Date.now() + 60_000);
    const c = cache({}, { store });
    c.remember(A, ['t:new', 'c:same'], '这次的思考');
    expect(c.lookup(A, ['c:same'])).toBeUndefined();
    expect(c.lookup(A, ['t:new'])).toBe('这次的思考');
  });

  it('expires with the TTL, so the key can be learned afresh', () => {
    const t = clock();
    const c = cache({ ttlMs: 60_000 }, { now: t.now });
    c.remember(A, ['c:same'], '甲');
    c.remember(A, ['c:same'], '乙');
    t.advance(59_999);
    expect(c.lookup(A, ['c:same'])).toBeUndefined();
    t.advance(2);
    c.remember(A, ['c:same'], '丁');
    expect(c.lookup(A, ['c:same'])).toBe('丁');
  });

  it('lasts as long as the last text learned under the key would', () => {
    const t = clock();
    const c = cache({ ttlMs: 60_000 }, { now: t.now });
    c.remember(A, ['c:same'], '甲');
    c.remember(A, ['c:same'], '乙');
    t.advance(30_000);
    c.remember(A, ['c:same'], '丙');
    t.advance(30_001);
    expect(c.lookup(A, ['c:same'])).toBeUndefined();
    c.remember(A, ['c:same'], '丁');
    expect(c.lookup(A, ['c:same'])).toBeUndefined();
    t.advance(60_001);
    c.remember(A, ['c:same'], '戊');
    expect(c.lookup(A, ['c:same'])).toBe('戊');
  });
});
