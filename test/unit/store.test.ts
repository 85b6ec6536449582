import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_CACHE_LIMITS, ReasoningCache, type CacheLimits } from '../../src/cache/cache.js';
import { MimoProxyError } from '../../src/errors.js';
import { createLogger, silentLogger, type Logger } from '../../src/log.js';
import { FLUSH_BATCH, FLUSH_INTERVAL_MS, MAX_QUEUED, openStore, type ReasoningStore, type WriteBehindReasoningStore } from '../../src/cache/store.js';

const SCOPE = 'k:0123456789abcdef0123456789abcdef';
const CHINESE = '首先，我需要理解用户的问题。「读取文件」意味着调用 read_file 工具；注意 emoji 🤔 和换行\r\n以及全角：，。';

let tmp: string;
const open: WriteBehindReasoningStore[] = [];

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mimo-store-'));
});

afterEach(() => {
  vi.useRealTimers();
  for (const store of open.splice(0)) store.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function limits(extra: Partial<CacheLimits> = {}): CacheLimits {
  return { ...DEFAULT_CACHE_LIMITS, ...extra };
}

function store(dir = path.join(tmp, 'data'), l: CacheLimits = limits(), log: Logger = silentLogger, now?: () => number): WriteBehindReasoningStore {
  const s = openStore(dir, l, log, { busyTimeoutMs: 50, ...(now ? { now } : {}) });
  open.push(s);
  return s;
}

/** Texts and bytes counted from the file itself, as openStore does at startup. */
function recount(s: ReasoningStore): { entries: number; bytes: number } {
  const { DatabaseSync } = process.getBuiltinModule('node:sqlite');
  const db = new DatabaseSync(s.path, { readOnly: true });
  try {
    const texts = db.prepare('SELECT count(*) AS n, coalesce(sum(bytes), 0) AS b, coalesce(sum(length(CAST(text AS BLOB))), 0) AS utf8 FROM reasoning').get() as { n: number; b: number; utf8: number };
    const keys = db.prepare('SELECT coalesce(sum(bytes), 0) AS b, coalesce(sum(length(CAST(key AS BLOB))), 0) AS utf8 FROM keys').get() as { b: number; utf8: number };
    // The bytes columns must tell the truth about what they sum.
    expect(texts.b).toBe(texts.utf8);
    expect(keys.b).toBe(keys.utf8);
    return { entries: texts.n, bytes: texts.b + keys.b };
  } finally {
    db.close();
  }
}

function capture(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger('debug', (line) => lines.push(line)), lines };
}

describe('openStore', () => {
  it('survives a restart: a new cache on the same dir finds what the old one learned', () => {
    const dir = path.join(tmp, 'data');
    const first = new ReasoningCache({ limits: limits(), store: store(dir) });
    first.remember(SCOPE, ['id:call_1', 'fp:abc'], CHINESE);
    first.close();

    const second = new ReasoningCache({ limits: limits(), store: store(dir) });
    expect(second.lookup(SCOPE, ['fp:abc'])).toBe(CHINESE);
    expect(second.lookup(SCOPE, ['id:call_1'])).toBe(CHINESE);
    expect(second.lookup('anonymous', ['id:call_1'])).toBeUndefined();
    // Each key came from the store: a store hit is put back under the key that found it.
    expect(second.stats()).toMatchObject({ storeHits: 2, hits: 2, misses: 1 });
    expect(second.lookup(SCOPE, ['fp:abc'])).toBe(CHINESE);
    expect(second.stats()).toMatchObject({ storeHits: 2, hits: 3 });
  });

  it('round-trips Chinese text, emoji and CRLF exactly', () => {
    const s = store();
    s.put([`${SCOPE}\u0000id:1`], CHINESE, Date.now() + 60_000);
    expect(s.get(`${SCOPE}\u0000id:1`, Date.now())).toBe(CHINESE);
    expect(s.stats().bytes).toBe(Buffer.byteLength(CHINESE) + Buffer.byteLength(`${SCOPE}\u0000id:1`));
  });

  it('never returns an expired entry and prunes it at the next open', () => {
    const dir = path.join(tmp, 'data');
    const now = 1_700_000_000_000;
    const s = store(dir, limits(), silentLogger, () => now);
    s.put(['a\u0000id:1'], '短命', now + 1_000);
    s.put(['a\u0000id:2'], '长命', now + 100_000);
    expect(s.get('a\u0000id:1', now + 999)).toBe('短命');
    expect(s.get('a\u0000id:1', now + 1_000)).toBeUndefined();
    expect(s.get('a\u0000id:2', now + 1_000)).toBe('长命');
    s.close();

    const reopened = store(dir, limits(), silentLogger, () => now + 5_000);
    expect(reopened.stats().entries).toBe(1);
    expect(reopened.get('a\u0000id:2', now + 5_000)).toBe('长命');
  });

  it('honours the TTL through the cache with an injected clock', () => {
    // The store prunes by the wall clock at open, so the fake clock starts at real time.
    let t = Date.now();
    const dir = path.join(tmp, 'data');
    const c1 = new ReasoningCache({ limits: limits({ ttlMs: 60_000 }), store: store(dir), now: () => t });
    c1.remember(SCOPE, ['id:1'], CHINESE);
    c1.close();
    const c2 = new ReasoningCache({ limits: limits({ ttlMs: 60_000 }), store: store(dir), now: () => t });
    t += 30_000;
    expect(c2.lookup(SCOPE, ['id:1'])).toBe(CHINESE);
    // Back in memory with what was left of its lifetime (30 s), not a fresh minute.
    t += 30_001;
    expect(c2.lookup(SCOPE, ['id:1'])).toBeUndefined();
  });

  it('stays within its entry limit, dropping what expires first', () => {
    const s = store(undefined, limits({ maxEntries: 5 }));
    const base = Date.now() + 60_000;
    for (let i = 0; i < 20; i++) s.put([`a\u0000id:${i}`], `思考 ${i}`, base + i);
    expect(s.stats().entries).toBeLessThanOrEqual(5);
    expect(s.get('a\u0000id:0', Date.now())).toBeUndefined();
    expect(s.get('a\u0000id:19', Date.now())).toBe('思考 19');
  });

  it('stays within its byte limit', () => {
    const s = store(undefined, limits({ maxBytes: 10_000 }));
    const base = Date.now() + 60_000;
    for (let i = 0; i < 30; i++) s.put([`a\u0000id:${i}`], `${i}`.padEnd(500, '字'), base + i);
    expect(s.stats().bytes).toBeLessThanOrEqual(10_000);
    expect(s.stats().bytes).toBeGreaterThan(5_000);
    expect(s.get('a\u0000id:29', Date.now())).toBe('29'.padEnd(500, '字'));
    expect(s.get('a\u0000id:0', Date.now())).toBeUndefined();
  });

  it('applies lowered limits at the next open', () => {
    const dir = path.join(tmp, 'data');
    const s = store(dir);
    for (let i = 0; i < 50; i++) s.put([`a\u0000id:${i}`], `文本 ${i}`, Date.now() + 60_000 + i);
    s.close();
    expect(store(dir, limits({ maxEntries: 10 })).stats().entries).toBeLessThanOrEqual(10);
  });

  it('stores shared text once and deletes it with its last key', () => {
    const s = store();
    const exp = Date.now() + 60_000;
    s.put(['a\u0000id:1', 'a\u0000id:2'], '共享', exp);
    s.put(['b\u0000id:1'], '共享', exp);
    expect(s.stats().entries).toBe(1);
    // Another text under all three keys: each is conflicted, and the shared text, left without a key, goes.
    expect(s.put(['a\u0000id:1', 'a\u0000id:2', 'b\u0000id:1'], '替换', exp)).toEqual(['a\u0000id:1', 'a\u0000id:2', 'b\u0000id:1']);
    expect(s.stats().entries).toBe(0);
    expect(s.get('b\u0000id:1', Date.now())).toBeUndefined();
    expect(s.stats()).toEqual(recount(s));
  });

  it('calls a key conflicted when a second, different text is learned under it: both callers are told, nothing is found', () => {
    const s = store();
    const exp = Date.now() + 60_000;
    expect(s.put(['a\u0000id:1', 'a\u0000fp:1'], '第一种想法', exp)).toEqual([]);
    expect(s.put(['a\u0000id:1', 'a\u0000id:2'], '第二种想法', exp)).toEqual(['a\u0000id:1']);
    expect(s.get('a\u0000id:1', Date.now())).toBeUndefined();
    expect(s.find('a\u0000id:1', Date.now())).toBeUndefined();
    // The other keys of each text still lead to it.
    expect(s.get('a\u0000fp:1', Date.now())).toBe('第一种想法');
    expect(s.get('a\u0000id:2', Date.now())).toBe('第二种想法');
    // Conflicted stays conflicted, whichever text comes next, and each caller hears it.
    expect(s.put(['a\u0000id:1'], '第一种想法', exp)).toEqual(['a\u0000id:1']);
    expect(s.put(['a\u0000id:1', 'a\u0000id:3'], '第三种想法', exp)).toEqual(['a\u0000id:1']);
    expect(s.get('a\u0000id:1', Date.now())).toBeUndefined();
    expect(s.stats()).toEqual(recount(s));
  });

  it('drops the text that lost its only key to a conflict, in the same write', () => {
    const s = store();
    const exp = Date.now() + 60_000;
    s.put(['a\u0000id:1'], '甲', exp);
    expect(s.put(['a\u0000id:1'], '乙', exp)).toEqual(['a\u0000id:1']);
    expect(s.stats().entries).toBe(0);
    expect(s.stats()).toEqual(recount(s));
    expect(recount(s).bytes).toBe(Buffer.byteLength('a\u0000id:1'));
  });

  it('does not call the same text learned twice, or with other surrounding whitespace, a conflict', () => {
    const s = store();
    const exp = Date.now() + 60_000;
    expect(s.put(['a\u0000id:1'], CHINESE, exp)).toEqual([]);
    expect(s.put(['a\u0000id:1'], CHINESE, exp + 1)).toEqual([]);
    expect(s.put(['a\u0000id:1', 'a\u0000id:2'], `\n  ${CHINESE}\n\n`, exp + 2)).toEqual([]);
    // The stored text is kept for the key it had; a new key gets the text it came with.
    expect(s.get('a\u0000id:1', Date.now())).toBe(CHINESE);
    expect(s.get('a\u0000id:2', Date.now())).toBe(`\n  ${CHINESE}\n\n`);
    expect(s.find('a\u0000id:1', Date.now())?.expiresAt).toBe(exp + 2);
    expect(s.stats()).toEqual(recount(s));
  });

  it('keeps a conflict across a restart, with the later expiry of the two, until it expires', () => {
    const dir = path.join(tmp, 'data');
    let now = Date.now();
    const clock = (): number => now;
    const s = store(dir, limits(), silentLogger, clock);
    s.put(['a\u0000id:1'], '旧的', now + 10_000);
    expect(s.put(['a\u0000id:1'], '新的', now + 20_000)).toEqual(['a\u0000id:1']);
    s.close();

    const reopened = store(dir, limits(), silentLogger, clock);
    expect(reopened.get('a\u0000id:1', now)).toBeUndefined();
    now += 15_000; // past the first text's expiry, not the second's: still conflicted
    expect(reopened.put(['a\u0000id:1'], '新的', now + 20_000)).toEqual(['a\u0000id:1']);
    expect(reopened.get('a\u0000id:1', now)).toBeUndefined();
    now += 20_001; // the conflict ran out: a put starts afresh
    expect(reopened.put(['a\u0000id:1'], '第三个', now + 20_000)).toEqual([]);
    expect(reopened.get('a\u0000id:1', now)).toBe('第三个');
    expect(reopened.stats()).toEqual(recount(reopened));
  });

  it('prunes an expired conflict like any key and keeps its counts right', () => {
    const dir = path.join(tmp, 'data');
    const now = Date.now();
    const s = store(dir, limits(), silentLogger, () => now);
    s.put(['a\u0000id:1', 'a\u0000id:2'], '一', now + 1_000);
    s.put(['a\u0000id:1'], '二', now + 2_000);
    s.close();
    const later = store(dir, limits(), silentLogger, () => now + 3_000);
    expect(later.stats()).toEqual({ entries: 0, bytes: 0 });
    expect(later.stats()).toEqual(recount(later));
  });

  it('keeps its counters equal to a recount through conflicts, evictions and expiries', () => {
    const dir = path.join(tmp, 'data');
    let now = Date.now();
    const s = store(dir, limits({ maxEntries: 20, maxBytes: 4_000 }), silentLogger, () => now);
    for (let i = 0; i < 200; i++) {
      const key = `a\u0000id:${i % 37}`;
      const text = i % 3 === 0 ? ` 文本 ${i % 5} ` : `文本 ${i % 5}`;
      s.put([key, `a\u0000fp:${i % 11}`], text, now + 1_000 + (i % 7) * 100);
      if (i % 50 === 49) now += 400;
      expect(s.stats()).toEqual(recount(s));
    }
    expect(s.stats().entries).toBeLessThanOrEqual(20);
    expect(s.stats().bytes).toBeLessThanOrEqual(4_000);
  });

  it('moves a corrupt file aside with one warning and starts empty', () => {
    const dir = path.join(tmp, 'data');
    fs.mkdirSync(dir, { mode: 0o700 });
    fs.writeFileSync(path.join(dir, 'reasoning.sqlite'), 'this is not a database, 这不是数据库'.repeat(200));
    const { log, lines } = capture();
    const s = store(dir, limits(), log);
    const warnings = lines.filter((l) => l.includes(' WARN '));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(path.join(dir, 'reasoning.sqlite'));
    const aside = fs.readdirSync(dir).filter((f) => f.startsWith('reasoning.sqlite.corrupt-'));
    expect(aside).toHaveLength(1);
    expect(fs.readFileSync(path.join(dir, aside[0] ?? '')).toString()).toContain('not a database');
    s.put(['a\u0000id:1'], CHINESE, Date.now() + 60_000);
    expect(s.get('a\u0000id:1', Date.now())).toBe(CHINESE);
  });

  it('moves a database with a foreign schema aside', () => {
    const dir = path.join(tmp, 'data');
    fs.mkdirSync(dir);
    const first = store(dir);
    first.close();
    const { DatabaseSync } = process.getBuiltinModule('node:sqlite');
    const db = new DatabaseSync(path.join(dir, 'reasoning.sqlite'));
    db.exec('DROP TABLE keys; CREATE TABLE keys (other TEXT)');
    db.close();
    const { log, lines } = capture();
    store(dir, limits(), log).put(['a\u0000id:1'], '好', Date.now() + 60_000);
    expect(lines.filter((l) => l.includes('schema mismatch'))).toHaveLength(1);
  });

  it('refuses a database another connection locks with STORE_LOCKED, and leaves it in place', () => {
    const dir = path.join(tmp, 'data');
    const file = path.join(dir, 'reasoning.sqlite');
    store(dir).put(['a\u0000id:1'], '锁', Date.now() + 60_000);
    for (const s of open.splice(0)) s.close();
    const { DatabaseSync } = process.getBuiltinModule('node:sqlite');
    const holder = new DatabaseSync(file);
    try {
      // Rollback journal and an exclusive lock: even reading waits for it.
      holder.exec('PRAGMA journal_mode = DELETE; PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; INSERT INTO keys VALUES (1, 2, 3, 4);');
      const { log, lines } = capture();
      expect(() => store(dir, limits(), log)).toThrow(expect.objectContaining({ code: 'STORE_LOCKED' }));
      expect(lines).toEqual([]);
      expect(fs.readdirSync(dir).filter((f) => f.includes('.corrupt-'))).toEqual([]);
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }
    expect(store(dir).get('a\u0000id:1', Date.now())).toBe('锁');
  });

  it("moves another program's SQLite file aside untouched and starts a fresh store", () => {
    const dir = path.join(tmp, 'data');
    fs.mkdirSync(dir);
    const file = path.join(dir, 'reasoning.sqlite');
    const { DatabaseSync } = process.getBuiltinModule('node:sqlite');
    const foreign = new DatabaseSync(file);
    foreign.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('购物清单'), ('milk');");
    foreign.close();
    const before = fs.readFileSync(file);

    const { log, lines } = capture();
    const s = store(dir, limits(), log);
    const warnings = lines.filter((l) => l.includes(' WARN '));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('reason="foreign tables"');
    const aside = fs.readdirSync(dir).filter((f) => f.startsWith('reasoning.sqlite.corrupt-'));
    expect(aside).toHaveLength(1);
    expect(warnings[0]).toContain(path.join(dir, aside[0] ?? ''));
    // Byte for byte what it was: no tables of ours, no WAL switch, no user_version.
    expect(fs.readFileSync(path.join(dir, aside[0] ?? '')).equals(before)).toBe(true);
    expect(fs.readdirSync(dir).filter((f) => f.startsWith(`${aside[0]}-`))).toEqual([]);

    s.put(['a\u0000id:1'], CHINESE, Date.now() + 60_000);
    expect(s.get('a\u0000id:1', Date.now())).toBe(CHINESE);
    const check = new DatabaseSync(path.join(dir, aside[0] ?? ''), { readOnly: true });
    try {
      expect(check.prepare('SELECT body FROM notes ORDER BY id').all().map((r) => r.body)).toEqual(['购物清单', 'milk']);
      expect(check.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all().map((r) => r.name)).toEqual(['notes']);
    } finally {
      check.close();
    }
  });

  it('sets up an empty SQLite file (user_version 0, no tables) as a store', () => {
    const dir = path.join(tmp, 'data');
    fs.mkdirSync(dir);
    const { DatabaseSync } = process.getBuiltinModule('node:sqlite');
    const empty = new DatabaseSync(path.join(dir, 'reasoning.sqlite'));
    empty.exec('PRAGMA page_size = 8192; VACUUM;');
    empty.close();
    const { log, lines } = capture();
    store(dir, limits(), log).put(['a\u0000id:1'], '空', Date.now() + 60_000);
    expect(lines).toEqual([]);
    expect(fs.readdirSync(dir).filter((f) => f.includes('.corrupt-'))).toEqual([]);
  });

  it('creates the dir 0700 and the file 0600', () => {
    const dir = path.join(tmp, 'nested', 'data');
    const s = store(dir);
    s.put(['a\u0000id:1'], '私密', Date.now() + 60_000);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(dir, 'reasoning.sqlite')).mode & 0o777).toBe(0o600);
    expect(s.path).toBe(path.join(dir, 'reasoning.sqlite'));
  });

  it('refuses an unwritable data dir with DATA_DIR_UNWRITABLE and a hint', () => {
    const file = path.join(tmp, 'a-file');
    fs.writeFileSync(file, 'x');
    let thrown: unknown;
    try {
      store(path.join(file, 'data'));
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(MimoProxyError);
    expect((thrown as MimoProxyError).code).toBe('DATA_DIR_UNWRITABLE');
    expect((thrown as MimoProxyError).format()).toContain('--no-persist');
  });

  it('keeps answering from memory when a store write fails at request time', () => {
    const dir = path.join(tmp, 'data');
    const { log, lines } = capture();
    const c = new ReasoningCache({ limits: limits(), store: store(dir, limits(), log), log });
    const { DatabaseSync } = process.getBuiltinModule('node:sqlite');
    const holder = new DatabaseSync(path.join(dir, 'reasoning.sqlite'));
    try {
      holder.exec('BEGIN IMMEDIATE'); // another writer holds the lock past our busy timeout
      for (let i = 0; i < 3; i++) {
        c.remember(SCOPE, [`id:${i}`], CHINESE + i);
        c.flush(); // what the flush timer does; each flush fails
      }
    } finally {
      holder.close();
    }
    expect(c.lookup(SCOPE, ['id:2'])).toBe(`${CHINESE}2`);
    const warnings = lines.filter((l) => l.includes('write failed'));
    expect(warnings).toHaveLength(1); // rate-limited, not one per request
    expect(warnings[0]).toContain('database is locked');
    expect(lines.join('')).not.toContain('首先');
    expect(c.stats().storeEntries).toBe(0);
  });

  it('throws a write it could not make to its caller, having learned nothing, and says nothing itself', () => {
    const dir = path.join(tmp, 'data');
    const { log, lines } = capture();
    const s = store(dir, limits(), log);
    s.put([`${SCOPE}\u0000id:before`], CHINESE, Date.now() + 60_000);
    const { DatabaseSync } = process.getBuiltinModule('node:sqlite');
    const holder = new DatabaseSync(path.join(dir, 'reasoning.sqlite'));
    try {
      holder.exec('BEGIN IMMEDIATE');
      expect(() => s.put([`${SCOPE}\u0000id:during`], `${CHINESE}!`, Date.now() + 60_000)).toThrow(/database is locked/);
    } finally {
      holder.close();
    }
    expect(s.get(`${SCOPE}\u0000id:during`, Date.now())).toBeUndefined();
    expect(s.stats()).toEqual(recount(s));
    expect(s.stats().entries).toBe(1);
    expect(lines).toEqual([]); // the cache reports it (once, rate-limited), not the store as well
  });

  it('logs neither reasoning nor keys', () => {
    const dir = path.join(tmp, 'data');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'reasoning.sqlite'), 'garbage');
    const { log, lines } = capture();
    const c = new ReasoningCache({ limits: limits({ maxEntries: 2 }), store: store(dir, limits({ maxEntries: 2 }), log), log });
    for (let i = 0; i < 5; i++) c.remember(SCOPE, [`id:call_secret_${i}`], CHINESE + i);
    c.lookup(SCOPE, ['id:call_secret_0']);
    const text = lines.join('');
    expect(text).not.toContain('call_secret');
    expect(text).not.toContain('首先');
    expect(text).not.toContain(SCOPE);
  });
});

describe('write-behind', () => {
  const LATER = (): number => Date.now() + 3_600_000;
  const fakeTimers = (): void => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate'] });
  };

  it('writes what is queued after the flush interval, in one go, not before', () => {
    fakeTimers();
    const s = store();
    expect(s.enqueue([`${SCOPE}\u0000id:1`, `${SCOPE}\u0000fp:1`], CHINESE, LATER())).toEqual([]);
    s.enqueue([`${SCOPE}\u0000id:2`], `${CHINESE}2`, LATER());
    expect(s.queued).toBe(2);
    expect(recount(s)).toEqual({ entries: 0, bytes: 0 });
    vi.advanceTimersByTime(FLUSH_INTERVAL_MS - 1);
    expect(recount(s).entries).toBe(0);
    vi.advanceTimersByTime(1);
    expect(s.queued).toBe(0);
    expect(recount(s).entries).toBe(2);
    expect(s.stats()).toEqual(recount(s));
    expect(s.get(`${SCOPE}\u0000fp:1`, Date.now())).toBe(CHINESE);
  });

  it('writes a full batch on the next turn of the event loop, and at once past the queue bound', () => {
    fakeTimers();
    const s = store();
    for (let i = 0; i < FLUSH_BATCH; i++) s.enqueue([`a\u0000id:${i}`], `批 ${i}`, LATER());
    expect(recount(s).entries).toBe(0);
    vi.advanceTimersByTime(0); // immediates only: the interval has not passed
    expect(s.queued).toBe(0);
    expect(recount(s).entries).toBe(FLUSH_BATCH);

    // No turn of the loop at all (one long synchronous burst): the queue still stays bounded.
    for (let i = 0; i < MAX_QUEUED; i++) s.enqueue([`b\u0000id:${i}`], `满 ${i}`, LATER());
    expect(s.queued).toBe(0);
    expect(recount(s).entries).toBe(FLUSH_BATCH + MAX_QUEUED);
    expect(s.stats()).toEqual(recount(s));
  });

  it('writes what is queued on close, so a clean stop loses nothing', () => {
    fakeTimers();
    const dir = path.join(tmp, 'data');
    const c = new ReasoningCache({ limits: limits(), store: store(dir) });
    c.remember(SCOPE, ['id:1', 'fp:1'], CHINESE);
    c.close();
    vi.useRealTimers();
    const reopened = store(dir);
    expect(reopened.get(`${SCOPE}\u0000id:1`, Date.now())).toBe(CHINESE);
    expect(reopened.stats()).toEqual(recount(reopened));
  });

  it('answers lookups from the queue: a memory miss right after a write still finds it', () => {
    fakeTimers();
    const s = store();
    // Memory holds one entry: the second remember evicts the first from it.
    const c = new ReasoningCache({ limits: limits({ maxEntries: 1 }), store: s });
    c.remember(SCOPE, ['id:1'], CHINESE);
    c.remember(SCOPE, ['id:2'], `${CHINESE}2`);
    expect(recount(s).entries).toBe(0);
    expect(c.lookup(SCOPE, ['id:1'])).toBe(CHINESE);
    expect(c.stats()).toMatchObject({ storeHits: 1 });
    expect(s.find(`${SCOPE}\u0000id:2`, Date.now())?.reasoning).toBe(`${CHINESE}2`);
  });

  it('makes a key conflicted with an entry from before a restart a miss, before and after the flush and the next restart', () => {
    fakeTimers();
    const dir = path.join(tmp, 'data');
    const before = new ReasoningCache({ limits: limits(), store: store(dir) });
    before.remember(SCOPE, ['id:1', 'fp:old'], '重启之前');
    before.close();

    const s = store(dir);
    const after = new ReasoningCache({ limits: limits(), store: s });
    after.remember(SCOPE, ['id:1', 'fp:new'], '重启之后');
    expect(s.queued).toBe(1);
    expect(after.lookup(SCOPE, ['id:1'])).toBeUndefined();
    expect(s.find(`${SCOPE}\u0000id:1`, Date.now())).toBeUndefined();
    expect(after.lookup(SCOPE, ['fp:new'])).toBe('重启之后');
    vi.advanceTimersByTime(FLUSH_INTERVAL_MS);
    expect(s.queued).toBe(0);
    expect(after.lookup(SCOPE, ['id:1'])).toBeUndefined();
    expect(s.find(`${SCOPE}\u0000id:1`, Date.now())).toBeUndefined();
    after.close();

    const next = new ReasoningCache({ limits: limits(), store: store(dir) });
    expect(next.lookup(SCOPE, ['id:1'])).toBeUndefined();
    expect(next.lookup(SCOPE, ['fp:old'])).toBe('重启之前');
    expect(next.lookup(SCOPE, ['fp:new'])).toBe('重启之后');
  });

  it('tells the cache of a conflict its flush found with what another writer wrote meanwhile', () => {
    fakeTimers();
    const dir = path.join(tmp, 'data');
    const s = store(dir);
    const c = new ReasoningCache({ limits: limits(), store: s });
    c.remember(SCOPE, ['id:1'], '这边的');
    // Another proxy on the same file writes another text under the key before our flush.
    store(dir).put([`${SCOPE}\u0000id:1`], '那边的', LATER());
    expect(c.lookup(SCOPE, ['id:1'])).toBe('这边的'); // nothing tells yet
    vi.advanceTimersByTime(FLUSH_INTERVAL_MS);
    expect(c.lookup(SCOPE, ['id:1'])).toBeUndefined();
    expect(s.find(`${SCOPE}\u0000id:1`, Date.now())).toBeUndefined();
  });

  it('treats a text learned again while queued like put does: the same text is no conflict, another one is', () => {
    fakeTimers();
    const s = store();
    expect(s.enqueue(['a\u0000id:1'], CHINESE, LATER())).toEqual([]);
    expect(s.enqueue(['a\u0000id:1', 'a\u0000id:2'], `  ${CHINESE}\n`, LATER())).toEqual([]);
    expect(s.enqueue(['a\u0000id:2', 'a\u0000id:3'], '别的', LATER())).toEqual(['a\u0000id:2']);
    expect(s.get('a\u0000id:1', Date.now())).toBe(CHINESE);
    expect(s.get('a\u0000id:2', Date.now())).toBeUndefined();
    s.flush();
    expect(s.get('a\u0000id:1', Date.now())).toBe(CHINESE);
    expect(s.get('a\u0000id:2', Date.now())).toBeUndefined();
    expect(s.get('a\u0000id:3', Date.now())).toBe('别的');
    expect(s.stats()).toEqual(recount(s));
  });

  it('drops a batch whose write fails, warns once through the cache, and keeps serving from memory', () => {
    fakeTimers();
    const dir = path.join(tmp, 'data');
    const { log, lines } = capture();
    const s = store(dir, limits(), log);
    const c = new ReasoningCache({ limits: limits(), store: s, log });
    const { DatabaseSync } = process.getBuiltinModule('node:sqlite');
    const holder = new DatabaseSync(path.join(dir, 'reasoning.sqlite'));
    try {
      holder.exec('BEGIN IMMEDIATE');
      c.remember(SCOPE, ['id:1'], CHINESE);
      vi.advanceTimersByTime(FLUSH_INTERVAL_MS); // the timer's flush fails: no throw escapes it
      c.remember(SCOPE, ['id:2'], CHINESE);
      vi.advanceTimersByTime(FLUSH_INTERVAL_MS);
    } finally {
      holder.close();
    }
    expect(s.queued).toBe(0);
    expect(lines.filter((l) => l.includes('write failed'))).toHaveLength(1);
    expect(c.lookup(SCOPE, ['id:1'])).toBe(CHINESE);
    expect(recount(s).entries).toBe(0);
    expect(lines.join('')).not.toContain('首先');
  });
});
