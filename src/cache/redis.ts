/**
 * The shared reasoning store: Redis (or Valkey, same commands), so several
 * proxies behind one address learn from each other's answers. The memory LRU
 * (cache.ts) stays in front; this store is written through (off the request's
 * path) and read when memory misses (exchange.ts asks for all the keys a
 * rewrite missed in one round trip, then rewrites again).
 *
 * Keys: PREFIX + sha256(full key), full key = credential-scope hash NUL turn
 * key (cache.ts fullKey): never a raw API key, never text, fixed length, and
 * one Redis can hold several tools' data and be inspected (SCAN mimo-proxy:*).
 * Value: sha256 hex of the trimmed text, then the text (checked on every read:
 * anything else under the prefix is a miss); CONFLICTED ("!") when
 * two different texts were learned under the key. Every key expires with the
 * cache TTL (PX), conflict markers too, so Redis never grows without bound
 * even without maxmemory.
 *
 * Conflicts across instances: one Lua script per write compares and sets
 * each key atomically (two proxies writing different texts under one key at
 * once both end up reading the marker), with the same rule as memory and
 * SQLite: texts equal once trimmed are the same reasoning.
 *
 * Faults never reach traffic: every call is bounded (CALL_TIMEOUT_MS, then
 * it is a miss or an unwritten entry that memory keeps); nothing queues while
 * disconnected (ioredis' offline queue is off: a call fails at once); at most
 * MAX_IN_FLIGHT calls wait for a slow (or stopped) server; the client
 * reconnects with a capped backoff. State changes are logged once each, with
 * the code (REDIS_UNREACHABLE, REDIS_AUTH, REDIS_TLS) and the fix naming
 * --store; the URL's password is never logged or shown.
 *
 * The one module of cache/ that opens a socket, and the only importer of ioredis.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { SecureContext } from 'node:tls';
import { Redis } from 'ioredis';
import { MimoProxyError } from '../errors.js';
import type { Logger } from '../log.js';
import { Histogram, STORE_BUCKETS } from '../stats.js';
import type { StoredReasoning } from './store.js';

/** Key prefix: the tool, and the layout version of keys and values. */
export const REDIS_PREFIX = 'mimo-proxy:v1:';
/** A store call that takes longer is a miss (read) or an entry kept in memory only (write). */
export const CALL_TIMEOUT_MS = 50;
/**
 * Calls waiting for replies at once; past this (a stopped server that keeps its socket, or a
 * burst of learning faster than Redis answers), calls fail at once: a read is a miss, a write
 * stays in memory only. 1024 writes of 10 KB texts hold 10 MB at most.
 */
export const MAX_IN_FLIGHT = 1024;
/** Reconnect backoff: 100 ms doubling, capped, so a server that comes back is used again within this. */
export const MAX_BACKOFF_MS = 2_000;
/** How long startup waits to know whether Redis answers (it serves on either way). */
export const STARTUP_WAIT_MS = 1_000;
const CONNECT_TIMEOUT_MS = 2_000;
const CONFLICTED = '!';
const HASH_CHARS = 64;

/**
 * Reads each key's value and remaining life in one round trip. A key of another type under the
 * prefix (not ours) reads as absent instead of failing the whole call (redis.pcall).
 */
const FIND_SCRIPT = `
local out = {}
for i, key in ipairs(KEYS) do
  local value = redis.pcall('GET', key)
  if type(value) == 'string' then
    out[#out + 1] = value
    out[#out + 1] = redis.call('PTTL', key)
  else
    out[#out + 1] = ''
    out[#out + 1] = -2
  end
end
return out`;

/**
 * Learns ARGV[1] (hash..text) under KEYS for ARGV[2] ms; returns the keys that are conflicted
 * after it (1-based indexes). Same text: the later expiry wins. Another text: the marker. A key
 * of another type under the prefix is not ours: left as it is, the other keys still learned.
 */
const PUT_SCRIPT = `
local value, ttl = ARGV[1], tonumber(ARGV[2])
local hash = string.sub(value, 1, ${HASH_CHARS})
local conflicted = {}
for i, key in ipairs(KEYS) do
  local old = redis.pcall('GET', key)
  if type(old) == 'table' then
    -- WRONGTYPE: not a value of ours.
  elseif not old then
    redis.call('SET', key, value, 'PX', ttl)
  elseif old == '${CONFLICTED}' or string.sub(old, 1, ${HASH_CHARS}) ~= hash then
    redis.call('SET', key, '${CONFLICTED}', 'PX', math.max(ttl, redis.call('PTTL', key)))
    conflicted[#conflicted + 1] = i
  elseif redis.call('PTTL', key) < ttl then
    redis.call('PEXPIRE', key, ttl)
  end
end
return conflicted`;

export type SharedStoreState = 'connecting' | 'connected' | 'down';

export interface SharedStoreStatus {
  kind: 'redis';
  /** host:port/db, without credentials. */
  target: string;
  tls: boolean;
  state: SharedStoreState;
  /** The code of the last failure (REDIS_UNREACHABLE, REDIS_AUTH, REDIS_TLS), while not connected. */
  problem: string | undefined;
}

/** What the cache needs of a store it reads asynchronously (this one). */
export interface SharedStore {
  /** Each key found: its text and expiry, or 'conflicted'. Rejects on any failure (then: a miss). */
  find(fullKeys: readonly string[]): Promise<Map<string, StoredReasoning | 'conflicted'>>;
  /** Learn `reasoning` under `fullKeys` for `ttlMs`; resolves with the keys conflicted after it. */
  put(fullKeys: readonly string[], reasoning: string, ttlMs: number): Promise<string[]>;
  /** Mark `fullKeys` conflicted for `ttlMs` (what this instance knows and the store may have lost). */
  conflict(fullKeys: readonly string[], ttlMs: number): Promise<void>;
  status(): SharedStoreStatus;
  /** Seconds per call, reads and writes. */
  readonly latency: Histogram;
  close(): Promise<void>;
}

export interface RedisStoreOptions {
  /** redis://[user:pass@]host:port[/db] or rediss://... (checked by cli/options.ts). */
  url: URL;
  log: Logger;
  /** Trust for rediss:// (the same roots as upstream TLS: system store, NODE_EXTRA_CA_CERTS, --upstream-ca). */
  secureContext?: SecureContext | undefined;
  callTimeoutMs?: number;
}

/** host:port/db of a --store URL, never its credentials. */
export function describeRedisUrl(url: URL): string {
  const db = url.pathname.replace(/^\/+/, '');
  return `${url.protocol}//${url.hostname}:${url.port || '6379'}${db ? `/${db}` : ''}`;
}

export function redisKey(fullKey: string): string {
  return REDIS_PREFIX + createHash('sha256').update(fullKey, 'utf8').digest('hex');
}

function textHash(reasoning: string): string {
  return createHash('sha256').update(reasoning.trim(), 'utf8').digest('hex');
}

function redisValue(reasoning: string): string {
  return textHash(reasoning) + reasoning;
}

/** A value this store wrote: its text's hash leads it. Anything else under the prefix is a miss, never a text to put back. */
function isOurValue(value: string): boolean {
  return value.length >= HASH_CHARS && textHash(value.slice(HASH_CHARS)) === value.slice(0, HASH_CHARS);
}

/**
 * Which fix a connection failure needs: credentials, TLS, or reaching the server at all. Over
 * rediss://, a connect timeout is most often a plain port (Redis reads the TLS hello as an
 * unfinished command and never answers), so it counts as TLS; the message says both.
 */
export function classifyRedisFailure(err: unknown, tls = false): 'REDIS_AUTH' | 'REDIS_TLS' | 'REDIS_UNREACHABLE' {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = typeof e?.message === 'string' ? e.message : '';
  if (/^(WRONGPASS|NOAUTH|NOPERM)/.test(message) || /invalid (username-)?password|Authentication required/i.test(message)) return 'REDIS_AUTH';
  if (/^(ERR_SSL|ERR_TLS|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|ERR_OSSL|HOSTNAME_MISMATCH)/.test(code) || /SSL|TLS|certificate|wrong version number|packet length/i.test(message)) return 'REDIS_TLS';
  if (tls && code === 'ETIMEDOUT') return 'REDIS_TLS';
  return 'REDIS_UNREACHABLE';
}

/** A content-free word for the log: the system or Redis error code, never a reply's text beyond its code. */
function failureWord(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (typeof e?.code === 'string') return e.code;
  const first = typeof e?.message === 'string' ? /^[A-Z][A-Z_]+/.exec(e.message)?.[0] : undefined;
  return first ?? (err as Error)?.name ?? 'error';
}

export function redisProblem(err: unknown, where: string, tls = false): MimoProxyError {
  const kind = classifyRedisFailure(err, tls);
  const word = failureWord(err);
  if (kind === 'REDIS_AUTH') return new MimoProxyError('REDIS_AUTH', `--store ${where}: Redis refused the credentials (${word})`);
  if (kind === 'REDIS_TLS' && word === 'ETIMEDOUT') {
    return new MimoProxyError('REDIS_TLS', `--store ${where}: no TLS handshake within ${CONNECT_TIMEOUT_MS / 1000} s (ETIMEDOUT): a plain (non-TLS) port, or nothing reachable there`);
  }
  if (kind === 'REDIS_TLS') return new MimoProxyError('REDIS_TLS', `--store ${where}: the TLS connection to Redis failed (${word})`);
  const message = (err as Error | null)?.message ?? '';
  if (/^ERR /.test(message)) {
    // A Redis error reply while connecting (say a /DB past the server's `databases`): its own words, which carry no secret.
    return new MimoProxyError('REDIS_UNREACHABLE', `--store ${where}: Redis refused the connection (${message.slice(0, 80).replace(/[^\x20-\x7e]/g, '?')})`, 'check the /DB number and the server\'s settings; pass --store redis://HOST:PORT/DB with a database it has');
  }
  return new MimoProxyError('REDIS_UNREACHABLE', `--store ${where}: Redis does not answer (${word})`);
}

export class RedisStore implements SharedStore {
  readonly latency = new Histogram(STORE_BUCKETS);
  readonly #client: Redis;
  readonly #log: Logger;
  readonly #target: string;
  readonly #tls: boolean;
  readonly #timeoutMs: number;
  #state: SharedStoreState = 'connecting';
  #problem: string | undefined;
  #inFlight = 0;
  #closed = false;

  constructor(options: RedisStoreOptions) {
    const { url } = options;
    this.#log = options.log;
    this.#target = describeRedisUrl(url);
    this.#tls = url.protocol === 'rediss:';
    this.#timeoutMs = options.callTimeoutMs ?? CALL_TIMEOUT_MS;
    const db = url.pathname.replace(/^\/+/, '');
    const host = url.hostname.replace(/^\[|\]$/g, '');
    this.#client = new Redis({
      host,
      port: Number(url.port) || 6379,
      username: url.username ? decodeURIComponent(url.username) : undefined,
      password: url.password ? decodeURIComponent(url.password) : undefined,
      db: db ? Number(db) : 0,
      ...(this.#tls ? { tls: { servername: isIP(host) === 0 ? host : undefined, secureContext: options.secureContext, rejectUnauthorized: true } } : {}),
      connectTimeout: CONNECT_TIMEOUT_MS,
      // Nothing waits for a connection: while Redis is away every call fails at once (a miss).
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      // 100 ms, 200 ms, ... capped: `times` counts attempts from 1.
      retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times - 1, 10), MAX_BACKOFF_MS),
      lazyConnect: false,
    });
    this.#client.defineCommand('mimoFind', { lua: FIND_SCRIPT });
    this.#client.defineCommand('mimoPut', { lua: PUT_SCRIPT });
    this.#client.on('ready', () => this.#become('connected', undefined));
    this.#client.on('error', (err: unknown) => this.#become('down', err));
    // A server that closes cleanly (a stop, a restart) sends no error: the close says it.
    this.#client.on('close', () => this.#become('down', undefined));
    this.#client.on('end', () => this.#become('down', undefined));
  }

  /** Resolves once Redis answered, failed, or STARTUP_WAIT_MS passed: startup logs the outcome and serves on. */
  ready(waitMs = STARTUP_WAIT_MS): Promise<void> {
    if (this.#state !== 'connecting') return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#client.off('ready', done);
        this.#client.off('error', done);
        resolve();
      };
      const timer = setTimeout(() => {
        if (this.#state === 'connecting') this.#log.warn('reasoning store: Redis has not answered yet; serving from memory until it does', { store: this.#target });
        done();
      }, waitMs);
      timer.unref();
      this.#client.once('ready', done);
      this.#client.once('error', done);
    });
  }

  /** One log line per change of state or of problem (a reconnect loop does not repeat itself). */
  #become(state: SharedStoreState, err: unknown): void {
    if (this.#closed) return;
    const problem = err === undefined ? (state === 'down' ? this.#problem : undefined) : redisProblem(err, this.#target, this.#tls);
    const code = problem instanceof MimoProxyError ? problem.code : problem;
    if (state === this.#state && code === this.#problem) return;
    const wasDown = this.#state === 'down';
    this.#state = state;
    this.#problem = code;
    if (state === 'connected') {
      this.#log.info(wasDown ? 'reasoning store: Redis is back; using it again' : 'reasoning store: Redis connected', { store: this.#target });
    } else if (problem instanceof MimoProxyError) {
      this.#log.warn(`${problem.message}; serving from memory, reconnecting. Fix: ${problem.hint}`, { code: problem.code });
    } else if (state === 'down') {
      this.#log.warn('reasoning store: Redis connection lost; serving from memory, reconnecting', { store: this.#target });
    }
  }

  status(): SharedStoreStatus {
    return { kind: 'redis', target: this.#target, tls: this.#tls, state: this.#state, problem: this.#state === 'connected' ? undefined : this.#problem };
  }

  /** Calls sent whose reply has not come back (a timed-out call counts until it does, or the connection drops). */
  get waiting(): number {
    return this.#inFlight;
  }

  /**
   * A call, bounded in time and in number; its latency recorded (the cache counts failures).
   * The timeout is ours, not ioredis' commandTimeout: a timed-out command stays in the client's
   * queue until its reply comes, so it keeps counting against MAX_IN_FLIGHT until then, and a
   * stopped server cannot make that queue (or the texts it holds) grow without bound.
   */
  async #call<T>(run: () => Promise<T>): Promise<T> {
    if (this.#closed || this.#state !== 'connected' || this.#inFlight >= MAX_IN_FLIGHT) {
      throw new Error(this.#closed ? 'closed' : this.#state !== 'connected' ? 'not connected' : 'too many calls waiting');
    }
    this.#inFlight++;
    const started = performance.now();
    const reply = run().finally(() => this.#inFlight--);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error('Redis call timed out'), { code: 'ETIMEDOUT' })), this.#timeoutMs);
    });
    // A reply or failure after the timeout is nobody's business.
    reply.catch(() => undefined);
    try {
      return await Promise.race([reply, late]);
    } finally {
      clearTimeout(timer);
      this.latency.observe((performance.now() - started) / 1000);
    }
  }

  async find(fullKeys: readonly string[]): Promise<Map<string, StoredReasoning | 'conflicted'>> {
    const found = new Map<string, StoredReasoning | 'conflicted'>();
    if (fullKeys.length === 0) return found;
    const reply = await this.#call(() => (this.#client as unknown as Scripts).mimoFind(fullKeys.length, ...fullKeys.map(redisKey)));
    const now = Date.now();
    fullKeys.forEach((full, i) => {
      const value = reply[2 * i];
      const ttl = Number(reply[2 * i + 1]);
      if (typeof value !== 'string' || value === '' || !(ttl > 0)) return;
      if (value === CONFLICTED) found.set(full, 'conflicted');
      else if (isOurValue(value)) found.set(full, { reasoning: value.slice(HASH_CHARS), expiresAt: now + ttl });
    });
    return found;
  }

  async put(fullKeys: readonly string[], reasoning: string, ttlMs: number): Promise<string[]> {
    if (fullKeys.length === 0) return [];
    const conflicted = await this.#call(() => (this.#client as unknown as Scripts).mimoPut(fullKeys.length, ...fullKeys.map(redisKey), redisValue(reasoning), String(Math.max(1, Math.round(ttlMs)))));
    return conflicted.map((i) => fullKeys[Number(i) - 1]).filter((k): k is string => k !== undefined);
  }

  async conflict(fullKeys: readonly string[], ttlMs: number): Promise<void> {
    if (fullKeys.length === 0) return;
    // The marker as the value: unequal to every text's hash, so the script sets it on every key.
    await this.#call(() => (this.#client as unknown as Scripts).mimoPut(fullKeys.length, ...fullKeys.map(redisKey), CONFLICTED, String(Math.max(1, Math.round(ttlMs)))));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      // QUIT lets replies in flight arrive; a server that does not answer is cut.
      await Promise.race([this.#client.quit(), new Promise((resolve) => setTimeout(resolve, 200).unref())]);
    } catch {
      // Already gone.
    }
    this.#client.disconnect(false);
  }
}

interface Scripts {
  mimoFind(numKeys: number, ...args: string[]): Promise<unknown[]>;
  mimoPut(numKeys: number, ...args: string[]): Promise<unknown[]>;
}
