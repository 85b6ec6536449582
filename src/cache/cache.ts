/**
 * The reasoning cache: what MiMo thought before each assistant reply, kept
 * under the reply's keys (match.ts: the turn with its ids, the turn in its
 * conversation) and scoped by credential, so a later request that dropped it
 * can get it back.
 *
 * A key under which two different reasonings were learned is conflicted:
 * nothing decides between them, so a lookup there is a miss, never a guess
 * (texts that differ only in surrounding whitespace are the same reasoning).
 * Conflicts are remembered in memory (bounded like the entries) and by the
 * store, for as long as an entry would live.
 *
 * Memory is a bounded LRU (lru-cache) in front of an optional persistent
 * store (store.ts): writes go to both, reads try memory then the store. A
 * write-behind store queues the write (it is written within FLUSH_INTERVAL_MS,
 * off the request's path) and answers at once, from its queue and its file,
 * whether the keys memory does not hold are conflicted; what its later flush
 * finds conflicted (another process may have written meanwhile) it reports
 * back here, and memory marks those keys too.
 *
 * A shared store (redis.ts) cannot be read synchronously: lookups answer
 * from memory only, and prefetch() loads what the shared store holds for keys
 * memory missed (exchange.ts calls it between two rewrites of one body). Its
 * writes go through at once, off the request's path; the conflicts it reports
 * mark memory as the SQLite store's do.
 *
 * One memory entry = one reasoning text in one scope, held once, with the
 * keys that lead to it; a side index maps each full key to its entry. So a
 * reply with five tool calls costs its text once, not five times. Entry size
 * = UTF-16 bytes (2 per code unit) of the text, its entry key and its keys.
 * Not counted: the index Map's own overhead (its keys are already counted
 * once, in the entry), and a key that later moved to another text keeps
 * being counted in its old entry until that entry goes (rare: a key is
 * normally learned once).
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { silentLogger, type Logger } from '../log.js';
import { Histogram, STORE_BUCKETS } from '../stats.js';
import { assertCheckedLimits, type CacheLimits } from './limits.js';
import type { SharedStore, SharedStoreStatus } from './redis.js';
import { describeFailure, sameReasoning, type ExpiringReasoningStore, type ReasoningStore, type StoredReasoning, type WriteBehindReasoningStore } from './store.js';

export { DEFAULT_CACHE_LIMITS, validateCacheLimits, type CacheLimits } from './limits.js';

export interface CacheStats {
  /** Entries (one per text per scope) and UTF-16 bytes held in memory. */
  entries: number;
  bytes: number;
  /** Lookups answered (from memory or the store) and not answered. */
  hits: number;
  misses: number;
  /** The part of `hits` answered by the store after a memory miss. */
  storeHits: number;
  persisted: boolean;
  /** Texts and UTF-8 bytes in the store (0 when not persisted, or when the store is shared). */
  storeEntries: number;
  storeBytes: number;
  /** Store calls that failed (each one a miss, or an entry kept in memory only). */
  storeReadErrors: number;
  storeWriteErrors: number;
}

/** Where the cache keeps what memory drops, for the status page and /metrics. */
export type StoreStatus = { kind: 'memory' } | { kind: 'sqlite'; path: string } | SharedStoreStatus;

/** A key may move between texts; at most this many keys stay with one text (newest kept). */
const MAX_KEYS_PER_ENTRY = 256;
/** prefetch() remembers at most this many keys to count their first hit as a store hit. */
const PREFETCHED_MAX = 10_000;
/** Store failures are reported here, for reads and writes alike: one warning a minute, the rest counted. */
const WARN_INTERVAL_MS = 60_000;

/** The key under one scope; NUL cannot occur in a scope, so scopes never collide. */
export function fullKey(scope: string, key: string): string {
  return `${scope}\u0000${key}`;
}

interface Entry {
  reasoning: string;
  /** Full keys; the index points each of them here unless it moved on. */
  keys: string[];
}

function entrySize(entry: Entry, entryKey: string): number {
  let chars = entry.reasoning.length + entryKey.length;
  for (const key of entry.keys) chars += key.length;
  return Math.max(1, chars * 2);
}

function hasFind(store: ReasoningStore): store is ExpiringReasoningStore {
  return typeof (store as Partial<ExpiringReasoningStore>).find === 'function';
}

function isWriteBehind(store: ReasoningStore | undefined): store is WriteBehindReasoningStore {
  return typeof (store as Partial<WriteBehindReasoningStore> | undefined)?.enqueue === 'function';
}

export class ReasoningCache {
  readonly #lru: LRUCache<string, Entry>;
  /** Full key -> entry key. Bounded: only keys held by live entries (the dispose hook removes the rest). */
  readonly #index = new Map<string, string>();
  readonly #store: ReasoningStore | undefined;
  readonly #shared: SharedStore | undefined;
  /** SQLite reads (the shared store times its own calls). */
  readonly #storeLatency = new Histogram(STORE_BUCKETS);
  /** Keys prefetch() put in memory whose first hit counts as a store hit (bounded: cleared past PREFETCHED_MAX). */
  readonly #prefetched = new Set<string>();
  #storeReadErrors = 0;
  #storeWriteErrors = 0;
  readonly #limits: CacheLimits;
  readonly #log: Logger;
  readonly #now: () => number;
  /** Full keys under which different reasonings were learned. */
  readonly #conflicts: LRUCache<string, true>;
  #hits = 0;
  #misses = 0;
  #storeHits = 0;
  #lastWarn = Number.NEGATIVE_INFINITY;
  #warningsHeldBack = 0;

  /** `limits` as validateCacheLimits passed them (at startup). */
  constructor(options: { limits: CacheLimits; store?: ReasoningStore | undefined; shared?: SharedStore | undefined; log?: Logger; now?: () => number }) {
    assertCheckedLimits(options.limits);
    this.#limits = { ...options.limits };
    this.#store = options.store;
    this.#shared = options.shared;
    this.#log = options.log ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#lru = new LRUCache<string, Entry>({
      max: this.#limits.maxEntries,
      maxSize: this.#limits.maxBytes,
      sizeCalculation: entrySize,
      ttl: this.#limits.ttlMs,
      ttlAutopurge: false,
      updateAgeOnGet: false,
      // An injected clock must be read on every check, not cached for 1 ms.
      ttlResolution: options.now ? 0 : 1,
      ...(options.now ? { perf: { now: options.now } } : {}),
      dispose: (entry, entryKey) => {
        for (const key of entry.keys) if (this.#index.get(key) === entryKey) this.#index.delete(key);
      },
    });
    this.#conflicts = new LRUCache<string, true>({
      max: this.#limits.maxEntries,
      ttl: this.#limits.ttlMs,
      ttlResolution: options.now ? 0 : 1,
      ...(options.now ? { perf: { now: options.now } } : {}),
    });
    if (isWriteBehind(this.#store)) {
      this.#store.setListener({
        conflicted: (fullKeys) => {
          for (const full of fullKeys) this.#markConflicted(full);
        },
        failed: (err) => this.#warn('write', err),
      });
    }
  }

  /**
   * The reasoning under the first of `keys` that has one: each key in memory, then in the
   * SQLite store (a shared store is read by prefetch, before). `count: false` leaves the
   * hit and miss counters alone (a first pass whose outcome tally() reports, or not).
   */
  lookup(scope: string, keys: Iterable<string>, count = true): string | undefined {
    for (const key of keys) {
      const full = fullKey(scope, key);
      if (this.#conflicts.has(full)) continue;
      const entryKey = this.#index.get(full);
      const entry = entryKey === undefined ? undefined : this.#lru.get(entryKey);
      if (entry !== undefined) {
        if (count) {
          this.#hits++;
          if (this.#prefetched.delete(full)) this.#storeHits++;
        }
        return entry.reasoning;
      }
      if (this.#store === undefined) continue;
      const now = this.#now();
      const found = this.#storeFind(this.#store, full, now);
      if (found === undefined) continue;
      // Back in memory for what is left of its stored lifetime, not a fresh one.
      this.#rememberInMemory(scope, [full], found.reasoning, Math.max(1, Math.min(this.#limits.ttlMs, Math.ceil(found.expiresAt - now))));
      if (count) {
        this.#hits++;
        this.#storeHits++;
      }
      return found.reasoning;
    }
    if (count) this.#misses++;
    return undefined;
  }

  /** Counts lookups made with `count: false` whose outcome stands. */
  tally(hits: number, misses: number): void {
    this.#hits += hits;
    this.#misses += misses;
  }

  /** Whether prefetch() can find anything memory does not hold. */
  get shared(): boolean {
    return this.#shared !== undefined;
  }

  /**
   * Asks the shared store about `keys` (all but those memory knows as conflicted), in one call
   * bounded by the store's timeout, and brings memory up to date: a text memory lacks is loaded
   * (for what is left of its stored lifetime); a key the store knows as conflicted, or under
   * another text than memory's (another instance learned it since), becomes conflicted here too
   * (and in the store, which may have lost memory's text).
   * Resolves with how many keys changed in memory; 0 when the store failed (counted, warned).
   * Never rejects.
   */
  async prefetch(scope: string, keys: readonly string[]): Promise<number> {
    const shared = this.#shared;
    if (shared === undefined) return 0;
    const wanted = [...new Set(keys.map((key) => fullKey(scope, key)))].filter((full) => !this.#conflicts.has(full));
    if (wanted.length === 0) return 0;
    let found: Map<string, StoredReasoning | 'conflicted'>;
    try {
      found = await shared.find(wanted);
    } catch (err) {
      this.#warn('read', err);
      return 0;
    }
    const now = this.#now();
    if (this.#prefetched.size > PREFETCHED_MAX) this.#prefetched.clear();
    let changed = 0;
    for (const [full, value] of found) {
      if (this.#conflicts.has(full)) continue;
      const known = this.#textOf(full);
      if (value !== 'conflicted' && known !== undefined && !sameReasoning(known, value.reasoning)) {
        // Redis lost memory's text (a restart, an eviction) and another was learned since: the
        // store is told of the conflict, so the other instances honour it too.
        shared.conflict([full], this.#limits.ttlMs).catch((err: unknown) => this.#warn('write', err));
      }
      if (value === 'conflicted' || (known !== undefined && !sameReasoning(known, value.reasoning))) {
        this.#markConflicted(full);
        changed++;
      } else if (known === undefined) {
        this.#rememberInMemory(scope, [full], value.reasoning, Math.max(1, Math.min(this.#limits.ttlMs, Math.ceil(value.expiresAt - now))));
        this.#prefetched.add(full);
        changed++;
      }
    }
    return changed;
  }

  remember(scope: string, keys: readonly string[], reasoning: string): void {
    if (keys.length === 0) return;
    const fullKeys = [...new Set(keys.map((key) => fullKey(scope, key)))];
    const conflicted = new Set<string>();
    const unknown: string[] = [];
    for (const full of fullKeys) {
      const known = this.#textOf(full);
      if (this.#conflicts.has(full) || (known !== undefined && !sameReasoning(known, reasoning))) conflicted.add(full);
      else if (known === undefined) unknown.push(full);
    }
    if (this.#store !== undefined) {
      try {
        // The store knows keys that memory has dropped (evicted, or learned before a restart).
        const expiresAt = this.#now() + this.#limits.ttlMs;
        const fromStore = isWriteBehind(this.#store)
          ? // Queued for the next flush; only the keys memory knows nothing of are read from the file now.
            this.#store.enqueue(fullKeys, reasoning, expiresAt, unknown)
          : this.#store.put(fullKeys, reasoning, expiresAt);
        for (const full of fromStore) conflicted.add(full);
      } catch (err) {
        this.#warn('write', err);
      }
    }
    if (this.#shared !== undefined) {
      // Through to the shared store now, off the request's path; what it finds conflicted
      // (another instance learned another text) is marked when it answers. Never under a key
      // memory knows conflicted: the store may have lost that (a restart, an eviction), and
      // the text would stand there for another instance to read until the marker came.
      const clear = fullKeys.filter((full) => !conflicted.has(full));
      this.#shared.put(clear, reasoning, this.#limits.ttlMs).then(
        (found) => {
          for (const full of found) this.#markConflicted(full);
        },
        (err: unknown) => this.#warn('write', err),
      );
      // Those keys get the marker instead, which the store may have lost too.
      if (conflicted.size > 0) this.#shared.conflict([...conflicted], this.#limits.ttlMs).catch((err: unknown) => this.#warn('write', err));
    }
    for (const full of conflicted) this.#markConflicted(full);
    const kept = fullKeys.filter((full) => !conflicted.has(full));
    if (kept.length > 0) this.#rememberInMemory(scope, kept, reasoning, this.#limits.ttlMs);
  }

  /** The text a live key leads to in memory. */
  #textOf(full: string): string | undefined {
    const entryKey = this.#index.get(full);
    return entryKey === undefined ? undefined : this.#lru.peek(entryKey)?.reasoning;
  }

  #markConflicted(full: string): void {
    this.#conflicts.set(full, true);
    this.#unlink(full);
  }

  /** The key leads nowhere in memory any more: off the index and off the entry that held it. */
  #unlink(full: string): void {
    const entryKey = this.#index.get(full);
    if (entryKey === undefined) return;
    this.#index.delete(full);
    const entry = this.#lru.peek(entryKey, { allowStale: true });
    if (entry !== undefined) entry.keys = entry.keys.filter((k) => k !== full);
  }

  #storeFind(store: ReasoningStore, full: string, now: number): StoredReasoning | undefined {
    const started = performance.now();
    try {
      if (hasFind(store)) return store.find(full, now);
      const reasoning = store.get(full, now);
      return reasoning === undefined ? undefined : { reasoning, expiresAt: now + this.#limits.ttlMs };
    } catch (err) {
      this.#warn('read', err);
      return undefined;
    } finally {
      this.#storeLatency.observe((performance.now() - started) / 1000);
    }
  }

  #rememberInMemory(scope: string, fullKeys: readonly string[], reasoning: string, ttl: number): void {
    const entryKey = fullKey(scope, createHash('sha256').update(reasoning, 'utf8').digest('hex'));
    const entry = this.#lru.peek(entryKey) ?? { reasoning, keys: [] };
    for (const full of fullKeys) {
      // The key now leads to another text: take it off the old entry.
      if (this.#index.get(full) !== entryKey) this.#unlink(full);
      if (!entry.keys.includes(full)) entry.keys.push(full);
    }
    if (entry.keys.length > MAX_KEYS_PER_ENTRY) {
      for (const dropped of entry.keys.splice(0, entry.keys.length - MAX_KEYS_PER_ENTRY)) {
        if (this.#index.get(dropped) === entryKey) this.#index.delete(dropped);
      }
    }
    // Setting the same object again re-sizes it and refreshes its age without a dispose.
    this.#lru.set(entryKey, entry, { ttl });
    // A text too big for the whole budget is not kept: then point nothing at it.
    if (this.#lru.peek(entryKey) !== entry) return;
    for (const full of entry.keys) this.#index.set(full, entryKey);
  }

  /**
   * Store trouble never reaches traffic: the store throws, memory carries on, and this is the
   * one place that says so (no keys, no text; one line a minute, with a count of the rest).
   */
  #warn(kind: 'read' | 'write', err: unknown): void {
    if (kind === 'read') this.#storeReadErrors++;
    else this.#storeWriteErrors++;
    const t = Date.now();
    if (t - this.#lastWarn < WARN_INTERVAL_MS) {
      this.#warningsHeldBack++;
      return;
    }
    const suppressed = this.#warningsHeldBack > 0 ? this.#warningsHeldBack : undefined;
    this.#lastWarn = t;
    this.#warningsHeldBack = 0;
    const outcome = kind === 'read' ? 'serving from memory' : 'keeping it in memory only';
    const where = this.#shared !== undefined ? { store: this.#shared.status().target } : { file: this.#store?.path };
    this.#log.warn(`reasoning store ${kind} failed; ${outcome}`, { ...where, error: describeFailure(err), suppressed });
  }

  stats(): CacheStats {
    const store = this.#store?.stats();
    return {
      entries: this.#lru.size,
      bytes: this.#lru.calculatedSize,
      hits: this.#hits,
      misses: this.#misses,
      storeHits: this.#storeHits,
      persisted: this.#store !== undefined || this.#shared !== undefined,
      storeEntries: store?.entries ?? 0,
      storeBytes: store?.bytes ?? 0,
      storeReadErrors: this.#storeReadErrors,
      storeWriteErrors: this.#storeWriteErrors,
    };
  }

  storeStatus(): StoreStatus {
    if (this.#shared !== undefined) return this.#shared.status();
    if (this.#store !== undefined) return { kind: 'sqlite', path: this.#store.path };
    return { kind: 'memory' };
  }

  /** Seconds per store read (SQLite) or call (the shared store). */
  storeLatency(): Histogram {
    return this.#shared?.latency ?? this.#storeLatency;
  }

  /** Write what the store has queued now (it does so by itself within its flush interval, and on close). */
  flush(): void {
    if (isWriteBehind(this.#store)) this.#store.flush();
  }

  /** Close the store (writing what it has queued); memory is dropped (this cache is done). A shared store's connection closes in the background. */
  close(): Promise<void> {
    try {
      this.#store?.close();
    } catch (err) {
      this.#warn('write', err);
    }
    this.#lru.clear();
    this.#index.clear();
    this.#conflicts.clear();
    this.#prefetched.clear();
    return this.#shared?.close() ?? Promise.resolve();
  }
}
