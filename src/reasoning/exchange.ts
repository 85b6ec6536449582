/**
 * One exchange on a reasoning surface (chat completions, Anthropic messages or
 * the Responses API, at a provider: ../providers.ts) through the proxy, from
 * the plugin's side:
 *   request body  -> buffered up to --max-body, rewritten by the surface with
 *                    what the cache remembers for this credential;
 *   400 reasoning -> described as a retry (the body to send instead, with the
 *                    next stronger strategy), which the plugin sends once before
 *                    the client sees anything;
 *   response      -> tapped read-only by the surface's SSE or JSON fold; on a
 *                    complete 200 answer every assistant turn's reasoning is learned.
 * No I/O: the plugin reads and sends; this decides what. Never throws into live
 * traffic: anything it cannot improve goes upstream as the client sent it.
 *
 * With a shared store (cache/redis.ts), whose reads are asynchronous, the
 * first rewrite looks up memory only and records the keys memory did not
 * answer first-hand (missProbe); those are asked of the store in one call
 * (bounded by the store's timeout), and when that changed memory the body is
 * rewritten once more, from memory again. One round is enough: a turn that
 * missed was asked under all its keys, and the keys a turn is looked up under
 * do not depend on other turns' reasoning.
 */
import type http from 'node:http';
import type { ProxyConfig } from '../config.js';
import type { Logger } from '../log.js';
import { credentialScope } from './scope.js';
import type { ReasoningLookup, RewriteOutcome, RewritePolicy } from './rewrite.js';
import type { Counters } from '../stats.js';
import { contentCodings, decodeBody } from './encoding.js';
import { decodingTap, type LearningTap } from './tap/decode.js';
import type { Dialect } from './dialect.js';
import { isReasoningRejection } from './rejection.js';
import { learnKeys, nameKey, type Learned, type TurnReasoning } from './match.js';
import { firstPolicy, retryPolicy, type UpstreamRules } from './upstream.js';

export { retryPolicy } from './upstream.js';

/** What the exchange needs of the cache (cache/cache.ts is one): scoped lookups and remembering. */
export interface ReasoningMemory {
  /** The value under the first of `keys` that has one, reading the keys lazily in order; `count: false` counts nothing. */
  lookup(scope: string, keys: Iterable<string>, count?: boolean): string | undefined;
  remember(scope: string, keys: readonly string[], reasoning: string): void;
  /** True when a store exists that lookups cannot read synchronously (prefetch reads it). */
  readonly shared?: boolean;
  /** Brings memory up to date with the shared store for `keys`; how many keys changed. Never rejects. */
  prefetch?(scope: string, keys: readonly string[]): Promise<number>;
  /** Counts lookups made with `count: false`. */
  tally?(hits: number, misses: number): void;
}

/** At most this many missed keys are asked of a shared store per request (the rest stay misses). */
export const MAX_PREFETCH_KEYS = 2048;

/**
 * A lookup that counts nothing and records the keys to ask the shared store about: every key
 * of a lookup that memory did not answer on its first (most specific) key. A lookup answered
 * by a later key is asked about too: another instance may have learned the earlier key, or
 * found the later one conflicted, since this memory learned it.
 */
function missProbe(memory: ReasoningMemory, scope: string): { lookup: ReasoningLookup; missed: string[]; hits: number; misses: number } {
  const probe = {
    missed: [] as string[],
    hits: 0,
    misses: 0,
    lookup: ((keys) => {
      const asked: string[] = [];
      const found = memory.lookup(scope, recorded(keys, asked), false);
      if (found !== undefined) probe.hits++;
      else probe.misses++;
      if (found === undefined || asked.length > 1) for (const key of asked) if (probe.missed.length < MAX_PREFETCH_KEYS) probe.missed.push(key);
      return found;
    }) as ReasoningLookup,
  };
  return probe;
}

function* recorded(keys: Iterable<string>, into: string[]): Generator<string> {
  for (const key of keys) {
    into.push(key);
    yield key;
  }
}

/**
 * Rewrites a body elsewhere (proxy/rewrite-worker.ts: a worker thread) with the dialect's own
 * rewrite, looking up through `lookup`; the outcome is what the dialect's rewrite returns
 * (`unchanged`: the very Buffer given). Rejects when it cannot (the original goes upstream).
 */
export interface BodyRewriter {
  rewrite(dialect: Dialect, body: Buffer, lookup: ReasoningLookup, policy: RewritePolicy): Promise<RewriteOutcome>;
}

/** Bodies larger than this are rewritten off the event loop (when a BodyRewriter is given). */
export const OFFLOAD_BODY_BYTES = 1024 * 1024;
/**
 * At most this much request body is held for rewriting at once, across all requests (from its
 * first byte until the answer is chosen: a retry needs it). A body that does not fit (by its
 * Content-Length, or once its chunks pass it) is forwarded unchanged, streamed.
 */
export const BUFFERED_BODIES_BYTES = 128 * 1024 * 1024;

export interface ReasoningServiceOptions {
  config: Pick<ProxyConfig, 'degrade' | 'maxBodyBytes'>;
  cache: ReasoningMemory;
  counters: Counters;
  log: Logger;
  /** Where bodies over OFFLOAD_BODY_BYTES are rewritten; without it, in this thread. */
  offload?: BodyRewriter;
  /** The total held at once (BUFFERED_BODIES_BYTES unless a test says otherwise). */
  bufferedBodiesBytes?: number;
}

/** The bytes of request body held for rewriting, across all exchanges of one service. */
class BodyBudget {
  held = 0;
  constructor(readonly limit: number) {}
  reserve(bytes: number): boolean {
    if (this.held + bytes > this.limit) return false;
    this.held += bytes;
    return true;
  }
  release(bytes: number): void {
    this.held = Math.max(0, this.held - bytes);
  }
}

export class ReasoningService {
  private readonly budget: BodyBudget;

  constructor(private readonly options: ReasoningServiceOptions) {
    this.budget = new BodyBudget(options.bufferedBodiesBytes ?? BUFFERED_BODIES_BYTES);
  }

  /** Request body bytes held for rewriting now, across all exchanges. */
  get bufferedBytes(): number {
    return this.budget.held;
  }

  /**
   * Entries are scoped by credential, by surface and by provider (`upstream`): two formats never
   * feed each other, and a key used at two providers keeps two memories. (MiMo's chat scope is
   * the bare credential, as stores written before there were other surfaces and providers have it.)
   */
  exchange(headers: http.IncomingHttpHeaders, surface: Dialect, upstream: UpstreamRules): Exchange {
    const scope = credentialScope(headers) + (surface.name === 'chat' ? '' : `|${surface.name}`) + (upstream.id === 'mimo' ? '' : `@${upstream.id}`);
    const length = Number(headers['content-length']);
    const declared = headers['content-length'] !== undefined && Number.isSafeInteger(length) && length >= 0 ? length : undefined;
    return new Exchange(this.options, surface, scope, this.budget, declared, upstream);
  }
}

export class Exchange {
  private chunks: Buffer[] = [];
  /** A large body of a declared length, filled as it arrives (instead of chunks). */
  private presized: Buffer | undefined;
  private size = 0;
  private buffering = true;
  private original: Buffer | undefined;
  private firstBody: Buffer | undefined;
  private tap: LearningTap | undefined;
  /** Where the answer's turn sits in its conversation (match.ts); undefined: learn nothing from it. */
  private context: string | undefined;
  private done = false;
  /** Bytes of the budget this exchange holds (released once its bodies are dropped). */
  private reserved = 0;

  constructor(
    private readonly options: ReasoningServiceOptions,
    private readonly surface: Dialect,
    private readonly scope: string,
    private readonly budget: BodyBudget,
    /** The Content-Length the client declared, when it did: the budget is taken for it at once. */
    private readonly declared: number | undefined,
    /** The provider the request goes to: its rejection texts, thinking switch, ladder and repairs. */
    private readonly upstream: UpstreamRules,
  ) {}

  /** Request chunk in; what to send upstream now (undefined while buffering). */
  requestData(chunk: Buffer): Buffer | undefined {
    if (!this.buffering) return chunk;
    const at = this.size;
    this.size += chunk.length;
    if (at === 0 && this.declared !== undefined && this.offloads(this.declared) && this.declared <= this.options.config.maxBodyBytes && this.budget.reserve(this.declared)) {
      // A large body of a declared length goes straight into the buffer the worker reads: no
      // chunks held besides it, no copy at the end. Reserved first: a length the budget
      // refuses allocates nothing (the check below forwards the body).
      this.reserved = this.declared;
      this.presized = Buffer.from(new SharedArrayBuffer(this.declared));
    }
    if (this.presized && this.size <= this.presized.length) chunk.copy(this.presized, at);
    else {
      if (this.presized) this.chunks.push(this.presized.subarray(0, at));
      this.presized = undefined;
      this.chunks.push(chunk);
    }
    if (this.size > this.options.config.maxBodyBytes) {
      // Past the cap: forward what we hold and stream the rest untouched.
      this.options.log.info('request body over --max-body, forwarded unchanged', { bytes: this.size });
      return this.stopBuffering();
    }
    // A body within --max-body: held only while all the bodies held stay within the budget.
    const want = Math.min(Math.max(this.size, this.declared ?? 0), this.options.config.maxBodyBytes) - this.reserved;
    if (want > 0) {
      if (!this.budget.reserve(want)) {
        this.options.log.info('request bodies held for rewriting at their limit, this one forwarded unchanged', { bytes: Math.max(this.size, this.declared ?? 0), held: this.budget.held });
        return this.stopBuffering();
      }
      this.reserved += want;
    }
    return undefined;
  }

  /** Give up on this body: what is held goes upstream now and the rest streams untouched. */
  private stopBuffering(): Buffer {
    this.buffering = false;
    this.options.counters.skippedBodies++;
    const held = this.presized ? Buffer.from(this.presized.subarray(0, this.size)) : Buffer.concat(this.chunks);
    this.presized = undefined;
    this.chunks = [];
    this.releaseBudget();
    return held;
  }

  private releaseBudget(): void {
    this.budget.release(this.reserved);
    this.reserved = 0;
  }

  /**
   * End of the request body; the bytes still to send upstream. A body over OFFLOAD_BODY_BYTES is
   * rewritten off the event loop: then a promise (never rejects) of those bytes.
   */
  requestEnd(): Buffer | undefined | Promise<Buffer | undefined> {
    if (!this.buffering) return undefined;
    if (this.offloads(this.size)) {
      const sent = this.takeBody(true);
      return this.firstRewriteOffloaded(sent).then((outcome) => (this.done ? undefined : (outcome?.body ?? sent)));
    }
    const sent = this.takeBody();
    const first = this.firstRewrite(sent);
    if (first instanceof Promise) return first.then((outcome) => (this.done ? undefined : (outcome?.body ?? sent)));
    return first?.body ?? sent;
  }

  private offloads(bytes: number): boolean {
    return this.options.offload !== undefined && bytes > OFFLOAD_BODY_BYTES;
  }

  /**
   * End of a request body sent with a Content-Encoding (encoding.ts). It is decoded off the
   * event loop, at most --max-body of it, and rewritten; `identity` when `body` is the decoded
   * (rewritten) body, to go upstream without Content-Encoding. Unchanged, unknown, undecodable
   * or too large once decoded: the bytes as sent. `decoded`: a retry sends a decoded body.
   */
  async requestEndEncoded(header: string | readonly string[]): Promise<{ body: Buffer | undefined; identity: boolean; decoded: boolean }> {
    if (!this.buffering) return { body: undefined, identity: false, decoded: false };
    const sent = this.takeBody();
    const asSent = { body: sent, identity: false, decoded: false };
    const { counters, log, config } = this.options;
    try {
      const codings = contentCodings(header);
      const decoded = codings ? await decodeBody(sent, codings, config.maxBodyBytes) : { kind: 'unknown' as const };
      if (this.done) return { body: undefined, identity: false, decoded: false };
      if (decoded.kind !== 'decoded') {
        counters.skippedBodies++;
        if (decoded.kind === 'too-large') log.info('compressed request body over --max-body once decoded, forwarded unchanged', { bytes: sent.length });
        else log.debug('compressed request body not decoded, forwarded unchanged', { reason: decoded.kind });
        return asSent;
      }
      const outcome = this.offloads(decoded.body.length) ? await this.firstRewriteOffloaded(decoded.body) : await this.firstRewrite(decoded.body);
      if (this.done) return { body: undefined, identity: false, decoded: false };
      if (outcome === undefined) return asSent;
      if (outcome.kind === 'unchanged') return { body: sent, identity: false, decoded: true };
      return { body: outcome.body, identity: true, decoded: true };
    } catch (err) {
      // Never into live traffic: the bytes as sent, and no retry with a decoded body.
      this.original = undefined;
      this.firstBody = undefined;
      log.error('compressed request body not handled, forwarding it as sent', { error: (err as Error)?.name ?? 'unknown' });
      return asSent;
    }
  }

  /**
   * The buffered body, once; buffering stops. `forWorker`: in a SharedArrayBuffer, so a worker
   * reads the very bytes this thread keeps (no copy).
   */
  private takeBody(forWorker = false): Buffer {
    this.buffering = false;
    const filled = this.presized;
    this.presized = undefined;
    if (filled) {
      this.chunks = [];
      // (A compressed body is decoded from a plain Buffer.)
      if (filled.length === this.size) return forWorker ? filled : Buffer.from(filled);
      this.chunks = [filled.subarray(0, this.size)];
    }
    const body = forWorker ? Buffer.from(new SharedArrayBuffer(this.size)) : undefined;
    let at = 0;
    if (body) for (const chunk of this.chunks) at += chunk.copy(body, at);
    const taken = body ?? Buffer.concat(this.chunks);
    this.chunks = [];
    return taken;
  }

  /**
   * The first attempt's rewrite of the body the client sent (decoded): learns what the request
   * carries and keeps what a retry and the answer need. Undefined: left as sent.
   */
  private firstRewrite(body: Buffer): Exclude<RewriteOutcome, { kind: 'skipped' }> | undefined | Promise<Exclude<RewriteOutcome, { kind: 'skipped' }> | undefined> {
    const policy = firstPolicy(this.options.config.degrade, this.upstream);
    if (!this.options.cache.shared) return this.applyFirst(body, this.rewrite(body, policy));
    const probe = missProbe(this.options.cache, this.scope);
    const outcome = this.withShared(probe, this.rewrite(body, policy, probe.lookup), () => this.rewrite(body, policy));
    if (!(outcome instanceof Promise)) return this.applyFirst(body, outcome);
    return outcome.then((final) => (this.done ? undefined : this.applyFirst(body, final)));
  }

  /** firstRewrite, the rewrite itself off the event loop; never rejects. */
  private async firstRewriteOffloaded(body: Buffer): Promise<Exclude<RewriteOutcome, { kind: 'skipped' }> | undefined> {
    const policy = firstPolicy(this.options.config.degrade, this.upstream);
    let outcome: RewriteOutcome;
    if (!this.options.cache.shared) outcome = await this.rewriteOffloaded(body, policy);
    else {
      const probe = missProbe(this.options.cache, this.scope);
      outcome = await this.withShared(probe, await this.rewriteOffloaded(body, policy, probe.lookup), () => this.rewriteOffloaded(body, policy));
    }
    if (this.done) return undefined;
    return this.applyFirst(body, outcome);
  }

  /**
   * After a first rewrite from memory alone: when the probe recorded keys, ask the shared store
   * about them and, when that changed memory, rewrite again (`again`); otherwise the first
   * outcome stands and its lookups are counted. Never rejects (prefetch does not, the rewrites
   * do not).
   */
  private withShared(probe: ReturnType<typeof missProbe>, first: RewriteOutcome, again: () => RewriteOutcome | Promise<RewriteOutcome>): RewriteOutcome | Promise<RewriteOutcome> {
    const cache = this.options.cache;
    const stands = (): RewriteOutcome => {
      cache.tally?.(probe.hits, probe.misses);
      return first;
    };
    if (probe.missed.length === 0 || first.kind === 'skipped' || cache.prefetch === undefined) return stands();
    return cache.prefetch(this.scope, probe.missed).then((changed) => (changed === 0 || this.done ? stands() : again()));
  }

  private applyFirst(body: Buffer, outcome: RewriteOutcome): Exclude<RewriteOutcome, { kind: 'skipped' }> | undefined {
    if (outcome.kind === 'skipped') {
      // Nothing held for a retry: the budget is free again.
      this.releaseBudget();
      this.options.counters.skippedBodies++;
      this.options.log.debug('request not rewritten', { surface: this.surface.name, reason: outcome.reason });
      return undefined;
    }
    this.learn(outcome.learned);
    this.context = outcome.context;
    this.original = body;
    this.firstBody = outcome.body;
    if (outcome.kind === 'rewritten') this.report('rewrote request', outcome);
    return outcome;
  }

  /** The cache, in this exchange's credential scope. */
  private readonly lookup: ReasoningLookup = (keys) => this.options.cache.lookup(this.scope, keys);

  private rewrite(body: Buffer, policy: RewritePolicy, lookup: ReasoningLookup = this.lookup): RewriteOutcome {
    try {
      return this.surface.rewrite(body, lookup, policy);
    } catch (err) {
      // rewrite.ts promises not to throw; if it ever does, the original goes upstream (counted
      // as a skipped body where the skipped outcome is handled, applyFirst).
      this.options.log.error('rewrite failed, forwarding the original', { error: (err as Error).name });
      return { kind: 'skipped', reason: 'internal-error' };
    }
  }

  /** rewrite, in the BodyRewriter; a failure there (crash, timeout) forwards the original. Never rejects. */
  private async rewriteOffloaded(body: Buffer, policy: RewritePolicy, lookup: ReasoningLookup = this.lookup): Promise<RewriteOutcome> {
    try {
      return await this.options.offload!.rewrite(this.surface, body, lookup, policy);
    } catch (err) {
      this.options.log.error('rewrite off the event loop failed, forwarding the original', { error: (err as Error)?.name ?? 'unknown' });
      return { kind: 'skipped', reason: 'internal-error' };
    }
  }

  private report(message: string, outcome: Extract<RewriteOutcome, { kind: 'rewritten' }>): void {
    const { counters, log } = this.options;
    const c = outcome.changes;
    counters.rewrittenRequests++;
    counters.injected += c.injected;
    counters.placeholders += c.placeholders;
    counters.flattened += c.flattened;
    counters.repaired += c.repaired ?? 0;
    log.info(message, { surface: this.surface.name, provider: this.upstream.id, injected: c.injected, placeholders: c.placeholders, flattened: c.flattened, missing: c.missing, repaired: c.repaired ?? 0 });
  }

  private learn(learned: readonly Learned[]): void {
    for (const entry of learned) {
      this.options.cache.remember(this.scope, learnKeys(entry), entry.reasoning);
      this.options.counters.learned++;
    }
  }

  /**
   * The answer's turns, under the context of the request they answer; their ids are the
   * upstream's. With the name repair on, each call's name is remembered under its id too.
   */
  private learnAnswer(turns: readonly TurnReasoning[]): void {
    const context = this.context;
    if (context === undefined) return;
    this.learn(turns.map((turn) => ({ ...turn, context, upstreamIds: true })));
    if (this.upstream.repairs?.toolCallNames !== true) return;
    for (const turn of turns) for (const call of turn.calls ?? []) this.options.cache.remember(this.scope, [nameKey(call.id)], call.name);
  }

  /**
   * Whether an answer with this status may be the provider's reasoning 400 for a request this exchange
   * rewrote: then the plugin reads the answer's body (rejection.ts says how much) and asks
   * retryBody before the client sees anything.
   */
  mayRetry(status: number | undefined): boolean {
    return status === 400 && this.original !== undefined && this.firstBody !== undefined;
  }

  /**
   * The whole body of the upstream's 400: when it is the provider's reasoning rejection and a stronger
   * rewrite exists, the body to send upstream once more instead; undefined: the answer goes on
   * to the client as it came.
   */
  retryBody(body: Buffer): Buffer | undefined | Promise<Buffer | undefined> {
    if (!this.original || !this.firstBody || !isReasoningRejection(400, body, this.upstream.rejections)) return undefined;
    const policy = retryPolicy(this.options.config.degrade, this.upstream);
    if (this.offloads(this.original.length)) {
      const firstBody = this.firstBody;
      return this.rewriteOffloaded(this.original, policy).then((outcome) => this.retryOf(outcome, firstBody));
    }
    return this.retryOf(this.rewrite(this.original, policy), this.firstBody);
  }

  private retryOf(outcome: RewriteOutcome, firstBody: Buffer): Buffer | undefined {
    if (outcome.kind === 'skipped' || outcome.body.equals(firstBody)) {
      this.options.log.warn('upstream refused the reasoning and no stronger rewrite exists');
      return undefined;
    }
    if (outcome.kind === 'rewritten') this.report('upstream refused the reasoning; retrying with a stronger rewrite', outcome);
    return outcome.body;
  }

  /** The answer the client gets (the first one, or the retry's): sets up the tap on it. */
  responseHeaders(status: number | undefined, headers: http.IncomingHttpHeaders): void {
    // Memory: the bodies are no longer needed once the answer is chosen.
    this.original = undefined;
    this.firstBody = undefined;
    this.releaseBudget();
    if (status === 200 && this.context !== undefined) {
      const type = String(headers['content-type'] ?? '');
      const max = this.options.config.maxBodyBytes;
      // A compressed answer is decoded for the tap (tap/decode.ts); an unknown coding is not learned from.
      const codings = contentCodings(headers['content-encoding']);
      const onGiveUp = (reason: string): void => this.options.log.debug('compressed answer not learned', { surface: this.surface.name, reason });
      if (codings) {
        if (type.includes('text/event-stream')) this.tap = decodingTap(codings, this.surface.sseTap(), { onGiveUp });
        else if (type.includes('json')) this.tap = decodingTap(codings, this.surface.jsonTap(max), { maxDecodedBytes: max, onGiveUp });
      }
    }
  }

  /** A chunk of the answer, before it is forwarded: fed to the tap, learned from at once when it completes the answer. */
  responseData(chunk: Buffer): void {
    if (!this.tap || this.done) return;
    this.tap.feed(chunk);
    if (this.tap.settled?.() === true) void this.responseEnd();
  }

  /** End of the answer: learns from it; a promise when a decoder must flush first (never rejects). */
  responseEnd(): Promise<void> | undefined {
    if (!this.tap || this.done) return undefined;
    this.done = true;
    const learned = this.tap.end();
    this.tap = undefined;
    if (learned instanceof Promise) {
      return learned
        .then((entries) => {
          if (entries) this.learnAnswer(entries);
        })
        .catch((err: unknown) => this.options.log.error('learning from a compressed answer failed', { error: (err as Error)?.name ?? 'unknown' }));
    }
    if (learned) this.learnAnswer(learned);
    return undefined;
  }

  /** The exchange broke off (client gone, upstream failed): learn nothing from it. */
  abort(): void {
    this.done = true;
    this.tap?.abort();
    this.tap = undefined;
    this.chunks = [];
    this.presized = undefined;
    this.original = undefined;
    this.firstBody = undefined;
    this.releaseBudget();
  }
}
