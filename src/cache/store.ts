/**
 * The persistent reasoning store: `<data>/reasoning.sqlite` (node:sqlite),
 * so learned reasoning survives a proxy restart.
 *
 * Schema (user_version 1):
 *   reasoning(hash, bytes, text)          each text once, by sha256 of its UTF-8
 *   keys(key, hash, expires_at, bytes)    full key (scope NUL key) -> text hash,
 *                                         or CONFLICTED ('')
 * A text is deleted with its last key, in the same transaction, so the two
 * tables never disagree.
 *
 * Conflicts: a key that two different texts were learned under leads to
 * neither (nothing can tell which one the model produced for it). It keeps
 * its row with the CONFLICTED hash, which no text has, so a lookup misses;
 * it keeps the later expiry and stays conflicted until then, then it is
 * pruned like any key. Texts that differ only in surrounding whitespace are
 * the same reasoning (sameReasoning): no conflict, the stored one stays.
 *
 * Bounds: the same limits as memory. `entries` counts stored texts, `bytes`
 * counts UTF-8 bytes of texts plus keys (Chinese is 3 bytes a character here,
 * 2 in memory). Expired keys are never returned, are pruned at open and
 * every PRUNE_EVERY_WRITES writes; when over a bound, the keys that expire
 * first go, a bounded batch per write.
 *
 * Write-behind: the cache's writes (enqueue) are queued and written in one
 * transaction per FLUSH_INTERVAL_MS, or as soon as FLUSH_BATCH puts are
 * queued (on the next turn of the event loop), or at once past MAX_QUEUED
 * puts or MAX_QUEUED_BYTES; close() writes what is queued before it closes.
 * A kill -9 loses at most the puts of the last interval (never the file: each
 * batch is one transaction). What is queued is answered by find() at once,
 * and enqueue() checks the keys its caller does not know against the queue and
 * the file, so a conflict is a miss before and after the flush. The flush runs
 * the same per-put rules as put() and tells its listener which keys it found
 * conflicted (another process may have written them meanwhile) or that it failed
 * (the batch is dropped; memory keeps it, as when a put fails).
 *
 * Failure policy: a corrupt file, or one that is not ours (not SQLite, a
 * foreign schema, another program's tables), is moved aside with one warning
 * and an empty store takes its place; its contents are never modified. A file
 * another process holds is not damaged: open waits up to the open-time busy
 * timeout, then startup fails with STORE_LOCKED. Two proxies may share one
 * file (WAL: readers never wait, writers take turns). An unwritable data dir
 * is a startup error; at request time a failed read or write (a lock held
 * past RUNTIME_BUSY_TIMEOUT_MS included) throws, and the cache (cache.ts)
 * reports it, rate-limited, and carries on from memory.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { MimoProxyError } from '../errors.js';
import type { Logger } from '../log.js';
import { assertCheckedLimits, type CacheLimits } from './limits.js';

/** Reads and writes throw when they fail (the cache reports it and carries on from memory). */
export interface ReasoningStore {
  get(fullKey: string, now: number): string | undefined;
  /** Learn `reasoning` under `fullKeys`; returns those of them that are conflicted after this put. A put that throws learned nothing. */
  put(fullKeys: readonly string[], reasoning: string, expiresAt: number): string[];
  stats(): { entries: number; bytes: number };
  close(): void;
  readonly path: string;
}

/** A stored reasoning with its expiry, so a reader can keep the original deadline. */
export interface StoredReasoning {
  reasoning: string;
  expiresAt: number;
}

/** A store that can also tell when an entry expires (openStore's stores can). */
export interface ExpiringReasoningStore extends ReasoningStore {
  find(fullKey: string, now: number): StoredReasoning | undefined;
}

/** What a write-behind store reports about writes it made later (from a timer, or at close). */
export interface StoreListener {
  /** Keys a flush found conflicted; some may have been answered by enqueue already. */
  conflicted(fullKeys: string[]): void;
  /** A flush failed and wrote nothing: its batch is not in the file (memory keeps it). */
  failed(err: unknown): void;
}

/** A store whose writes are queued and written in batches (openStore's stores are). */
export interface WriteBehindReasoningStore extends ExpiringReasoningStore {
  /**
   * Queue `reasoning` under `fullKeys`, written by the next flush. Answers at once which of
   * them are conflicted: every key against the queue, and the keys in `unknownKeys` (default:
   * all; the caller's memory vouches for the others) against the file. Throws when that read
   * fails, having queued nothing.
   */
  enqueue(fullKeys: readonly string[], reasoning: string, expiresAt: number, unknownKeys?: readonly string[]): string[];
  /** Write what is queued now, in one transaction (never throws: the listener hears of it). */
  flush(): void;
  setListener(listener: StoreListener | undefined): void;
  /** Puts queued and not yet written. */
  readonly queued: number;
}

export interface StoreOptions {
  /** How long to wait for another process's lock before calling the file locked. */
  busyTimeoutMs?: number;
  /** How long a queued put may wait for its flush (default FLUSH_INTERVAL_MS). */
  flushIntervalMs?: number;
  /** Wall clock for pruning (default Date.now). */
  now?: () => number;
}

export const STORE_FILE = 'reasoning.sqlite';
const SCHEMA_VERSION = 1;
/** The hash of a conflicted key: no text has it, so the key leads nowhere. */
const CONFLICTED = '';
/** Long enough to outlast another proxy's write transaction (each is one small remember) or its startup prune. */
const DEFAULT_BUSY_TIMEOUT_MS = 3_000;
/**
 * After open: node:sqlite is synchronous, so a wait for another process's lock
 * stalls the event loop (all traffic). Another proxy's transaction takes well
 * under a millisecond; past this, the write gives up and memory keeps the entry.
 */
export const RUNTIME_BUSY_TIMEOUT_MS = 50;
const PRUNE_EVERY_WRITES = 256;
/** At most this many keys deleted per eviction round; rounds per write are bounded too, so no write stalls. */
const EVICT_BATCH = 64;
const EVICT_ROUNDS_PER_WRITE = 8;
const EXPIRED_BATCH = 1_000;
/** Queued puts are written at least this often (a kill -9 loses at most this much). */
export const FLUSH_INTERVAL_MS = 100;
/**
 * This many queued puts are written on the next turn of the event loop, not after the interval.
 * A put costs about the same in a batch of 16 as in one of 200 (~50 us, mostly its pages), so
 * small batches keep each write (~1 ms) from holding up traffic.
 */
export const FLUSH_BATCH = 16;
/** Past this many queued puts (one loop turn that learned them all), or MAX_QUEUED_BYTES of queued text, enqueue writes at once. */
export const MAX_QUEUED = 256;
export const MAX_QUEUED_BYTES = 16 * 1024 * 1024;

// SQLite primary result codes (https://www.sqlite.org/rescode.html).
const SQLITE_PERM = 3;
const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;
const SQLITE_READONLY = 8;
const SQLITE_CORRUPT = 11;
const SQLITE_CANTOPEN = 14;
const SQLITE_NOTADB = 26;

const DATA_DIR_HINT = 'pass --data DIR with a directory you own, or --no-persist';
const LOCKED_HINT = 'stop the other mimo-proxy that uses this data folder, or pass --data DIR with another folder, or --no-persist';

/** Two texts learned under one key are the same reasoning when they differ only in surrounding whitespace. */
export function sameReasoning(a: string, b: string): boolean {
  return a === b || a.trim() === b.trim();
}

type Sqlite = typeof import('node:sqlite');
let sqliteModule: Sqlite | undefined;

function isSqliteExperimentalWarning(warning: string | Error, rest: readonly unknown[]): boolean {
  const message = typeof warning === 'string' ? warning : warning.message;
  const options = rest[0];
  const type =
    typeof options === 'string'
      ? options
      : typeof options === 'object' && options !== null && 'type' in options
        ? String((options as { type?: unknown }).type)
        : typeof warning === 'string'
          ? undefined
          : warning.name;
  return type === 'ExperimentalWarning' && /sqlite/i.test(message);
}

/**
 * Load node:sqlite lazily, with exactly its ExperimentalWarning silenced
 * (printed by Node 22.13..23; a static import would print it before any
 * filter could be installed). Other warnings pass through untouched.
 */
function loadSqlite(): Sqlite {
  if (sqliteModule) return sqliteModule;
  const original = process.emitWarning;
  const filtered = function (this: unknown, warning: string | Error, ...rest: unknown[]): void {
    if (isSqliteExperimentalWarning(warning, rest)) return;
    (original as (...args: unknown[]) => void).call(process, warning, ...rest);
  };
  process.emitWarning = filtered as typeof process.emitWarning;
  try {
    sqliteModule = createRequire(import.meta.url)('node:sqlite') as Sqlite;
  } finally {
    process.emitWarning = original;
  }
  return sqliteModule;
}

function sqliteCode(err: unknown): number | undefined {
  const code = (err as { errcode?: unknown } | null)?.errcode;
  return typeof code === 'number' ? code & 0xff : undefined;
}

/** A short, content-free description of a store failure for the log (SQLite's own words, or a code). */
export function describeFailure(err: unknown): string {
  const e = err as { errstr?: unknown; code?: unknown } | null;
  if (typeof e?.errstr === 'string') return e.errstr;
  if (typeof e?.code === 'string') return e.code;
  return 'error';
}

/** The file is ours to replace: damaged, or not ours (not SQLite, another schema, another program's tables). */
class UnusableStore extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

/** Unusable files only; a busy or locked file is in use, not damaged, and is never replaced. */
function classifyOpenError(err: unknown): UnusableStore | undefined {
  if (err instanceof UnusableStore) return err;
  switch (sqliteCode(err)) {
    case SQLITE_NOTADB:
      return new UnusableStore('not a database');
    case SQLITE_CORRUPT:
      return new UnusableStore('corrupt');
    default:
      return undefined;
  }
}

function isLocked(err: unknown): boolean {
  const code = sqliteCode(err);
  return code === SQLITE_BUSY || code === SQLITE_LOCKED;
}

function unwritable(what: string, err: unknown): MimoProxyError {
  return new MimoProxyError('DATA_DIR_UNWRITABLE', `could not write ${what}: ${describeFailure(err)}`, DATA_DIR_HINT, { cause: err });
}

/**
 * `mkdir -p`, one level at a time; returns the first folder it made (undefined: it existed).
 * Not fs.mkdirSync's `recursive`: it never returns on a pseudo-filesystem that answers ENOENT
 * under a parent that exists (`--data /proc/x` spun at 100% CPU), where this throws the ENOENT.
 */
function makeDirsSync(dir: string, mode: number): string | undefined {
  try {
    fs.mkdirSync(dir, { mode });
    return dir;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return undefined;
    const parent = path.dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw err;
    const first = makeDirsSync(parent, mode);
    try {
      fs.mkdirSync(dir, { mode });
    } catch (again) {
      // Made meanwhile by another process: not ours.
      if ((again as NodeJS.ErrnoException).code === 'EEXIST') return first;
      throw again;
    }
    return first ?? dir;
  }
}

/** Create the data dir (0700 when we create it) and the db file (always 0600). */
function prepareFiles(dir: string, file: string): void {
  try {
    const created = makeDirsSync(dir, 0o700);
    // mkdir's mode is filtered by the umask; say exactly what we mean.
    if (created !== undefined) fs.chmodSync(dir, 0o700);
    fs.closeSync(fs.openSync(file, 'a', 0o600));
    fs.chmodSync(file, 0o600);
  } catch (err) {
    throw unwritable(`the reasoning store ${file}`, err);
  }
  // SQLite gives new -wal/-shm files the db file's mode; old ones get tightened.
  for (const suffix of ['-wal', '-shm']) {
    try {
      fs.chmodSync(file + suffix, 0o600);
    } catch {
      // absent: nothing to tighten
    }
  }
}

/** Rename the file and its -wal/-shm to `<file>.corrupt-<timestamp>`; returns the new name. */
function moveAside(file: string): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  let target = `${file}.corrupt-${stamp}`;
  for (let n = 1; n < 100 && fs.existsSync(target); n++) target = `${file}.corrupt-${stamp}-${n}`;
  try {
    fs.renameSync(file, target);
    for (const suffix of ['-wal', '-shm']) {
      if (fs.existsSync(file + suffix)) fs.renameSync(file + suffix, target + suffix);
    }
  } catch (err) {
    throw unwritable(`a replacement for the unusable store ${file}`, err);
  }
  return target;
}

const EXPECTED_COLUMNS: Record<string, string> = {
  reasoning: 'hash,bytes,text',
  keys: 'key,hash,expires_at,bytes',
};

/** Every schema object we create; anything else in a file without our user_version is another program's. */
const OUR_OBJECTS = new Set(['reasoning', 'reasoning_bytes', 'keys', 'keys_expires', 'keys_hash']);

function schemaVersion(db: DatabaseSync): number {
  return Number((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version);
}

/** A file with user_version 0 is ours to set up only when it holds nothing of anyone else's. */
function refuseForeign(db: DatabaseSync): void {
  const names = db.prepare("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'").all();
  if (names.some((row) => !OUR_OBJECTS.has(String((row as { name: unknown }).name)))) throw new UnusableStore('foreign tables');
}

function checkColumns(db: DatabaseSync): void {
  for (const [table, columns] of Object.entries(EXPECTED_COLUMNS)) {
    const names = db.prepare(`PRAGMA table_info(${table})`).all().map((row) => String((row as { name: unknown }).name));
    if (names.join(',') !== columns) throw new UnusableStore(`schema mismatch in table ${table}`);
  }
}

function openDatabase(file: string, busyTimeoutMs: number): DatabaseSync {
  const { DatabaseSync } = loadSqlite();
  const db = new DatabaseSync(file);
  try {
    db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
    // Read-only checks first, so a file that is not ours is moved aside exactly as it was found.
    const check = db.prepare('PRAGMA quick_check').all();
    if (check.length !== 1 || Object.values(check[0] ?? {})[0] !== 'ok') throw new UnusableStore('quick_check failed');
    const version = schemaVersion(db);
    if (version === 0) refuseForeign(db);
    else if (version === SCHEMA_VERSION) checkColumns(db);
    else throw new UnusableStore(`unknown schema version ${version}`);
    // WAL: readers never wait for the writer, and two proxies can share the file;
    // NORMAL: no fsync per commit (a power cut may lose the last few entries, never corrupt the file).
    db.prepare('PRAGMA journal_mode = WAL').get();
    db.exec('PRAGMA synchronous = NORMAL');
    if (version === 0) {
      db.exec('BEGIN IMMEDIATE');
      // Another proxy may have set the file up while we waited for the lock.
      if (schemaVersion(db) === 0) {
        refuseForeign(db);
        db.exec(`
          CREATE TABLE IF NOT EXISTS reasoning (hash TEXT PRIMARY KEY, bytes INTEGER NOT NULL, text TEXT NOT NULL);
          -- covering index: count and sum at open without reading the texts
          CREATE INDEX IF NOT EXISTS reasoning_bytes ON reasoning (bytes);
          CREATE TABLE IF NOT EXISTS keys (key TEXT PRIMARY KEY, hash TEXT NOT NULL, expires_at INTEGER NOT NULL, bytes INTEGER NOT NULL);
          CREATE INDEX IF NOT EXISTS keys_expires ON keys (expires_at);
          CREATE INDEX IF NOT EXISTS keys_hash ON keys (hash);
          PRAGMA user_version = ${SCHEMA_VERSION};
        `);
      }
      db.exec('COMMIT');
      checkColumns(db);
    }
    return db;
  } catch (err) {
    try {
      if (db.isTransaction) db.exec('ROLLBACK');
      db.close();
    } catch {
      // already failing; the original error is the one to report
    }
    throw err;
  }
}

interface QueuedPut {
  keys: string[];
  keyBytes: number[];
  reasoning: string;
  textBytes: number;
  /** UTF-8 bytes of the text and keys. */
  bytes: number;
  expiresAt: number;
}

class SqliteReasoningStore implements WriteBehindReasoningStore {
  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #limits: CacheLimits;
  readonly #now: () => number;
  #entries = 0;
  #bytes = 0;
  #writes = 0;
  /** Pruning or eviction failed after the last put committed: retried first by the next put. */
  #maintenanceDue = false;
  #pruneDue = false;
  #closed = false;
  readonly #flushIntervalMs: number;
  /** Puts not yet written, in the order they were learned. */
  #queue: QueuedPut[] = [];
  #queuedBytes = 0;
  /** What each queued key will lead to once written (reasoning undefined: conflicted). */
  readonly #pending = new Map<string, { reasoning: string | undefined; expiresAt: number }>();
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  #listener: StoreListener | undefined;
  readonly #q: Record<
    | 'find'
    | 'insertText'
    | 'selectText'
    | 'selectKey'
    | 'selectKeyText'
    | 'insertKey'
    | 'updateKey'
    | 'deleteOrphan'
    | 'deleteExpired'
    | 'deleteOldest',
    StatementSync
  >;

  constructor(file: string, db: DatabaseSync, limits: CacheLimits, now: () => number, flushIntervalMs: number) {
    this.path = file;
    this.#flushIntervalMs = flushIntervalMs;
    this.#db = db;
    this.#limits = limits;
    this.#now = now;
    this.#q = {
      find: db.prepare('SELECT r.text AS text, k.expires_at AS expires_at FROM keys k JOIN reasoning r ON r.hash = k.hash WHERE k.key = ? AND k.expires_at > ?'),
      insertText: db.prepare('INSERT OR IGNORE INTO reasoning (hash, bytes, text) VALUES (?, ?, ?)'),
      selectText: db.prepare('SELECT text FROM reasoning WHERE hash = ?'),
      selectKey: db.prepare('SELECT hash, expires_at FROM keys WHERE key = ?'),
      selectKeyText: db.prepare('SELECT k.hash AS hash, k.expires_at AS expires_at, r.text AS text FROM keys k LEFT JOIN reasoning r ON r.hash = k.hash WHERE k.key = ?'),
      insertKey: db.prepare('INSERT INTO keys (key, hash, expires_at, bytes) VALUES (?, ?, ?, ?)'),
      updateKey: db.prepare('UPDATE keys SET hash = ?, expires_at = ? WHERE key = ?'),
      deleteOrphan: db.prepare('DELETE FROM reasoning WHERE hash = ? AND NOT EXISTS (SELECT 1 FROM keys WHERE hash = ?) RETURNING bytes'),
      deleteExpired: db.prepare('DELETE FROM keys WHERE rowid IN (SELECT rowid FROM keys WHERE expires_at <= ? ORDER BY expires_at LIMIT ?) RETURNING hash, bytes'),
      deleteOldest: db.prepare('DELETE FROM keys WHERE rowid IN (SELECT rowid FROM keys ORDER BY expires_at, rowid LIMIT ?) RETURNING hash, bytes'),
    };
    this.#recount();
    // Startup may catch up on a long backlog (a week offline, lowered limits), so it may loop longer.
    const keyRows = Number((db.prepare('SELECT count(*) AS n FROM keys').get() as { n: number }).n);
    const rounds = Math.ceil(keyRows / EXPIRED_BATCH) + 1;
    for (let i = 0; i < rounds && this.#pruneExpired(now()) === EXPIRED_BATCH; i++);
    this.#evictToBounds(Math.ceil(keyRows / EVICT_BATCH) + 1);
    db.exec(`PRAGMA busy_timeout = ${RUNTIME_BUSY_TIMEOUT_MS}`);
  }

  #recount(): void {
    const texts = this.#db.prepare('SELECT count(*) AS n, coalesce(sum(bytes), 0) AS b FROM reasoning').get() as { n: number; b: number };
    const keys = this.#db.prepare('SELECT coalesce(sum(bytes), 0) AS b FROM keys').get() as { b: number };
    this.#entries = Number(texts.n);
    this.#bytes = Number(texts.b) + Number(keys.b);
  }

  find(fullKey: string, now: number): StoredReasoning | undefined {
    if (this.#closed) return undefined;
    // Queued and not yet written: the queue knows better than the file.
    const queued = this.#pending.get(fullKey);
    if (queued !== undefined && queued.expiresAt > now) return queued.reasoning === undefined ? undefined : { reasoning: queued.reasoning, expiresAt: queued.expiresAt };
    const row = this.#q.find.get(fullKey, now) as { text: string; expires_at: number } | undefined;
    return row === undefined ? undefined : { reasoning: row.text, expiresAt: Number(row.expires_at) };
  }

  get(fullKey: string, now: number): string | undefined {
    return this.find(fullKey, now)?.reasoning;
  }

  put(fullKeys: readonly string[], reasoning: string, expiresAt: number): string[] {
    if (this.#closed || fullKeys.length === 0) return [];
    const put = this.#prepare(fullKeys, reasoning, expiresAt);
    if (put === undefined) return [];
    // What is queued was learned first: write it first, so the order of puts holds.
    this.flush();
    // Failing again, it fails this put before anything is learned (and the cache reports it).
    if (this.#maintenanceDue) this.#maintain();
    // Throws when it rolls back: nothing was learned, so nothing is known to be conflicted either.
    const conflicted = this.#write([put]);
    this.#afterWrite(1);
    return conflicted;
  }

  enqueue(fullKeys: readonly string[], reasoning: string, expiresAt: number, unknownKeys: readonly string[] = fullKeys): string[] {
    if (this.#closed || fullKeys.length === 0) return [];
    const put = this.#prepare(fullKeys, reasoning, expiresAt);
    if (put === undefined) return [];
    const now = this.#now();
    const unknown = new Set(unknownKeys);
    // Read everything first: a read that throws leaves nothing queued.
    const states = put.keys.map((key) => this.#pending.get(key) ?? (unknown.has(key) ? this.#stored(key) : undefined));
    const conflicted: string[] = [];
    put.keys.forEach((key, i) => {
      const state = states[i];
      // Nothing live to disagree with (or an expired one): the key leads to this text.
      if (state === undefined || state.expiresAt <= now) {
        this.#pending.set(key, { reasoning, expiresAt });
        return;
      }
      const later = Math.max(state.expiresAt, expiresAt);
      if (state.reasoning !== undefined && sameReasoning(state.reasoning, reasoning)) {
        this.#pending.set(key, { reasoning: state.reasoning, expiresAt: later });
        return;
      }
      this.#pending.set(key, { reasoning: undefined, expiresAt: later });
      conflicted.push(key);
    });
    this.#queue.push(put);
    this.#queuedBytes += put.bytes;
    this.#schedule();
    return conflicted;
  }

  get queued(): number {
    return this.#queue.length;
  }

  setListener(listener: StoreListener | undefined): void {
    this.#listener = listener;
  }

  flush(): void {
    this.#cancelTimers();
    if (this.#queue.length === 0) return;
    const batch = this.#queue;
    this.#queue = [];
    this.#queuedBytes = 0;
    let conflicted: string[];
    try {
      if (this.#maintenanceDue) this.#maintain();
      conflicted = this.#write(batch);
    } catch (err) {
      // Rolled back: the batch is not in the file; memory still holds it.
      this.#notify((l) => l.failed(err));
      return;
    } finally {
      this.#pending.clear();
    }
    this.#afterWrite(batch.length);
    if (conflicted.length > 0) this.#notify((l) => l.conflicted(conflicted));
  }

  #notify(call: (listener: StoreListener) => void): void {
    if (this.#listener === undefined) return;
    try {
      call(this.#listener);
    } catch {
      // a listener's trouble must not undo a write, nor escape a timer
    }
  }

  #schedule(): void {
    if (this.#queue.length >= MAX_QUEUED || this.#queuedBytes >= MAX_QUEUED_BYTES) {
      this.flush();
      return;
    }
    if (this.#queue.length >= FLUSH_BATCH && this.#immediate === undefined) {
      this.#immediate = setImmediate(() => this.flush());
      this.#immediate.unref();
    }
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.flush(), this.#flushIntervalMs);
      this.#timer.unref();
    }
  }

  #cancelTimers(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#immediate !== undefined) clearImmediate(this.#immediate);
    this.#timer = undefined;
    this.#immediate = undefined;
  }

  /** A key's state in the file: its text (undefined when conflicted) and expiry; undefined when it leads nowhere. */
  #stored(key: string): { reasoning: string | undefined; expiresAt: number } | undefined {
    const row = this.#q.selectKeyText.get(key) as { hash: string; expires_at: number; text: string | null } | undefined;
    if (row === undefined) return undefined;
    if (row.hash === CONFLICTED) return { reasoning: undefined, expiresAt: Number(row.expires_at) };
    // A text that went missing: nothing to disagree with.
    return row.text === null ? undefined : { reasoning: row.text, expiresAt: Number(row.expires_at) };
  }

  /** Deduplicated keys with their sizes; undefined for an entry bigger than the whole budget (it would only evict everything else). */
  #prepare(fullKeys: readonly string[], reasoning: string, expiresAt: number): QueuedPut | undefined {
    const keys = [...new Set(fullKeys)];
    const textBytes = Buffer.byteLength(reasoning, 'utf8');
    const keyBytes = keys.map((k) => Buffer.byteLength(k, 'utf8'));
    const bytes = textBytes + keyBytes.reduce((a, b) => a + b, 0);
    if (bytes > this.#limits.maxBytes) return undefined;
    return { keys, keyBytes, reasoning, textBytes, bytes, expiresAt };
  }

  /** Write `puts` in order, in one transaction; returns the keys conflicted after them. Throws (having written nothing) when it rolls back. */
  #write(puts: readonly QueuedPut[]): string[] {
    const now = this.#now();
    const conflicted: string[] = [];
    this.#transaction(() => {
      let entries = 0;
      let bytes = 0;
      for (const put of puts) {
        const [e, b] = this.#writeOne(put, now, conflicted);
        entries += e;
        bytes += b;
      }
      return [entries, bytes];
    });
    return conflicted;
  }

  /** One put's rows, inside a transaction; returns its [entries, bytes] delta. */
  #writeOne(put: QueuedPut, now: number, conflicted: string[]): [number, number] {
    const { keys, keyBytes, reasoning, textBytes, expiresAt } = put;
    const hash = createHash('sha256').update(reasoning, 'utf8').digest('hex');
    let bytes = 0;
    let used = false; // does any key lead to this text after the put?
    const released = new Set<string>();
    keys.forEach((key, i) => {
      const old = this.#q.selectKey.get(key) as { hash: string; expires_at: number } | undefined;
      if (old === undefined) {
        this.#q.insertKey.run(key, hash, expiresAt, keyBytes[i] ?? 0);
        bytes += keyBytes[i] ?? 0;
        used = true;
        return;
      }
      const oldExpiresAt = Number(old.expires_at);
      const stored = old.hash === CONFLICTED || old.hash === hash ? undefined : (this.#q.selectText.get(old.hash) as { text: string } | undefined)?.text;
      // Expired (not pruned yet), or a text that went missing: nothing to disagree with, start afresh.
      if (oldExpiresAt <= now || (old.hash !== CONFLICTED && old.hash !== hash && stored === undefined)) {
        this.#q.updateKey.run(hash, expiresAt, key);
        if (old.hash !== hash) released.add(old.hash);
        used = true;
        return;
      }
      const later = Math.max(oldExpiresAt, expiresAt);
      if (old.hash === hash || (stored !== undefined && sameReasoning(stored, reasoning))) {
        this.#q.updateKey.run(old.hash, later, key);
        return;
      }
      this.#q.updateKey.run(CONFLICTED, later, key);
      released.add(old.hash);
      conflicted.push(key);
    });
    let entries = 0;
    if (used && this.#q.insertText.run(hash, textBytes, reasoning).changes === 1) {
      entries++;
      bytes += textBytes;
    }
    const orphans = this.#deleteOrphans(released);
    return [entries - orphans.entries, bytes - orphans.bytes];
  }

  /** After `puts` committed: prune every PRUNE_EVERY_WRITES puts, evict to the bounds; a failure here is retried by the next write. */
  #afterWrite(puts: number): void {
    const before = this.#writes;
    this.#writes += puts;
    if (Math.floor(before / PRUNE_EVERY_WRITES) !== Math.floor(this.#writes / PRUNE_EVERY_WRITES)) this.#pruneDue = true;
    try {
      this.#maintain();
    } catch {
      // The writes themselves are committed, and their conflicts must reach the caller: the next write tries again.
      this.#maintenanceDue = true;
    }
  }

  /** Prune expired keys when due, and evict down to the bounds. */
  #maintain(): void {
    if (this.#pruneDue) {
      this.#pruneExpired(this.#now());
      this.#pruneDue = false;
    }
    this.#evictToBounds(EVICT_ROUNDS_PER_WRITE);
    this.#maintenanceDue = false;
  }

  /** Run `body` in one write transaction; apply its [entries, bytes] delta only once committed. */
  #transaction(body: () => [number, number]): void {
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const [entries, bytes] = body();
      this.#db.exec('COMMIT');
      this.#entries += entries;
      this.#bytes += bytes;
    } catch (err) {
      try {
        if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      } catch {
        // the original error is the one to report
      }
      throw err;
    }
  }

  #deleteOrphans(hashes: Iterable<string>): { entries: number; bytes: number } {
    let entries = 0;
    let bytes = 0;
    for (const hash of hashes) {
      if (hash === CONFLICTED) continue;
      for (const row of this.#q.deleteOrphan.all(hash, hash) as { bytes: number }[]) {
        entries++;
        bytes += Number(row.bytes);
      }
    }
    return { entries, bytes };
  }

  /** Delete the keys returned by `statement` and the texts left without keys; returns keys deleted. */
  #deleteKeys(statement: StatementSync, ...params: number[]): number {
    let deleted = 0;
    this.#transaction(() => {
      const rows = statement.all(...params) as { hash: string; bytes: number }[];
      deleted = rows.length;
      const keyBytes = rows.reduce((sum, row) => sum + Number(row.bytes), 0);
      const orphans = this.#deleteOrphans(new Set(rows.map((row) => row.hash)));
      return [-orphans.entries, -keyBytes - orphans.bytes];
    });
    return deleted;
  }

  #pruneExpired(now: number): number {
    return this.#deleteKeys(this.#q.deleteExpired, now, EXPIRED_BATCH);
  }

  #evictToBounds(maxRounds: number): void {
    for (let round = 0; round < maxRounds; round++) {
      const entriesOver = this.#entries - this.#limits.maxEntries;
      const bytesOver = this.#bytes - this.#limits.maxBytes;
      if (entriesOver <= 0 && bytesOver <= 0) return;
      // Delete about what the overshoot needs (by the average entry size), not a fixed batch.
      const average = this.#entries > 0 ? this.#bytes / this.#entries : 1;
      const wanted = Math.max(1, entriesOver, Math.ceil(Math.max(0, bytesOver) / Math.max(1, average)));
      if (this.#deleteKeys(this.#q.deleteOldest, Math.min(EVICT_BATCH, wanted)) === 0) {
        // Nothing left to delete yet still over: the counters drifted; trust the file.
        this.#recount();
        return;
      }
    }
  }

  stats(): { entries: number; bytes: number } {
    return { entries: this.#entries, bytes: this.#bytes };
  }

  close(): void {
    if (this.#closed) return;
    // Nothing queued is lost on a clean stop.
    this.flush();
    this.#closed = true;
    try {
      // Fold the WAL back so the directory holds one tidy file between runs.
      this.#db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
    } catch {
      // another process may hold it; the WAL is still valid
    }
    try {
      this.#db.close();
    } catch {
      // closing twice or after a failure: nothing left to release
    }
  }
}

/**
 * Open (or create) `<dir>/reasoning.sqlite`, bounded by `limits` (checked at
 * startup by validateCacheLimits). Throws MimoProxyError
 * DATA_DIR_UNWRITABLE when the directory or file cannot be written, and
 * STORE_LOCKED when another process still holds it after the busy timeout;
 * replaces an unusable file (moved aside, one warning) with an empty store.
 */
export function openStore(dir: string, limits: CacheLimits, log: Logger, options: StoreOptions = {}): WriteBehindReasoningStore {
  assertCheckedLimits(limits);
  const file = path.join(path.resolve(dir), STORE_FILE);
  const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  const now = options.now ?? Date.now;
  prepareFiles(path.dirname(file), file);
  // Two attempts: the file as found, then (if unusable) a fresh one in its place.
  let failure: unknown;
  for (let attempt = 0; attempt < 2; attempt++) {
    let db: DatabaseSync | undefined;
    try {
      db = openDatabase(file, busyTimeoutMs);
      return new SqliteReasoningStore(file, db, limits, now, options.flushIntervalMs ?? FLUSH_INTERVAL_MS);
    } catch (err) {
      try {
        db?.close();
      } catch {
        // already closed
      }
      failure = err;
      // In use is not damaged: replacing a file another proxy writes to would lose both its entries and ours.
      if (isLocked(err)) {
        throw new MimoProxyError('STORE_LOCKED', `another process holds the reasoning store ${file} (still locked after ${busyTimeoutMs} ms)`, LOCKED_HINT, { cause: err });
      }
      const unusable = classifyOpenError(err);
      if (unusable === undefined || attempt > 0) break;
      const movedTo = moveAside(file);
      log.warn('reasoning store unusable; moved it aside and started an empty one', { file, reason: unusable.reason, moved_to: movedTo });
      prepareFiles(path.dirname(file), file);
    }
  }
  const code = sqliteCode(failure);
  if (code === SQLITE_READONLY || code === SQLITE_CANTOPEN || code === SQLITE_PERM) throw unwritable(`the reasoning store ${file}`, failure);
  throw new MimoProxyError('STORE_UNUSABLE', `could not open the reasoning store ${file}: ${describeFailure(failure)}`, DATA_DIR_HINT, { cause: failure });
}
