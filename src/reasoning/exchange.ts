/**
 * One exchange on a reasoning surface (chat completions, or the Anthropic
 * messages endpoint: ../dialects.ts) through the proxy, from the plugin's side:
 *   request body  -> buffered up to --max-body, rewritten by the surface with
 *                    what the cache remembers for this credential;
 *   400 reasoning -> described as a retry (the body to send instead, with the
 *                    next stronger strategy), which the plugin sends once before
 *                    the client sees anything;
 *   response      -> tapped read-only by the surface's SSE or JSON fold; on a
 *                    complete 200 answer every assistant turn's reasoning is learned.
 * No I/O: the plugin reads and sends; this decides what. Never throws into live
 * traffic: anything it cannot improve goes upstream as the client sent it.
 */
import type http from 'node:http';
import type { Degrade, ProxyConfig } from '../config.js';
import type { Logger } from '../log.js';
import { credentialScope } from './scope.js';
import type { RewriteOutcome, RewritePolicy } from './rewrite.js';
import type { Counters } from '../stats.js';
import { contentCodings, decodeBody } from './encoding.js';
import { decodingTap, type LearningTap } from './tap/decode.js';
import type { Dialect } from './dialect.js';
import { isReasoningRejection } from './rejection.js';
import { learnKeys, type Learned, type TurnReasoning } from './match.js';

/** What the exchange needs of the cache (cache/cache.ts is one): scoped lookups and remembering. */
export interface ReasoningMemory {
  /** The value under the first of `keys` that has one, reading the keys lazily in order. */
  lookup(scope: string, keys: Iterable<string>): string | undefined;
  remember(scope: string, keys: readonly string[], reasoning: string): void;
}

export interface ReasoningServiceOptions {
  config: Pick<ProxyConfig, 'degrade' | 'maxBodyBytes'>;
  cache: ReasoningMemory;
  counters: Counters;
  log: Logger;
}

/**
 * The ladder: the configured strategy first; on MiMo's reasoning 400, once more with the next
 * stronger one: flatten every tool exchange whose reasoning is not remembered, and after
 * `flatten` also give plain turns a placeholder (whether MiMo needs them there is unknown).
 */
export function retryPolicy(first: Degrade): RewritePolicy {
  return { degrade: 'flatten', plainTurns: first === 'flatten' };
}

export class ReasoningService {
  constructor(private readonly options: ReasoningServiceOptions) {}

  /** Entries are scoped by credential and by surface: the two formats never feed each other. */
  exchange(headers: http.IncomingHttpHeaders, surface: Dialect): Exchange {
    const scope = credentialScope(headers);
    return new Exchange(this.options, surface, surface.name === 'chat' ? scope : `${scope}|${surface.name}`);
  }
}

export class Exchange {
  private chunks: Buffer[] = [];
  private size = 0;
  private buffering = true;
  private original: Buffer | undefined;
  private firstBody: Buffer | undefined;
  private tap: LearningTap | undefined;
  /** Where the answer's turn sits in its conversation (match.ts); undefined: learn nothing from it. */
  private context: string | undefined;
  private done = false;

  constructor(
    private readonly options: ReasoningServiceOptions,
    private readonly surface: Dialect,
    private readonly scope: string,
  ) {}

  /** Request chunk in; what to send upstream now (undefined while buffering). */
  requestData(chunk: Buffer): Buffer | undefined {
    if (!this.buffering) return chunk;
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size <= this.options.config.maxBodyBytes) return undefined;
    // Past the cap: forward what we hold and stream the rest untouched.
    this.buffering = false;
    this.options.counters.skippedBodies++;
    this.options.log.info('request body over --max-body, forwarded unchanged', { bytes: this.size });
    const held = Buffer.concat(this.chunks);
    this.chunks = [];
    return held;
  }

  /** End of the request body; the bytes still to send upstream. */
  requestEnd(): Buffer | undefined {
    if (!this.buffering) return undefined;
    const sent = this.takeBody();
    return this.firstRewrite(sent)?.body ?? sent;
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
      const outcome = this.firstRewrite(decoded.body);
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

  /** The buffered body, once; buffering stops. */
  private takeBody(): Buffer {
    this.buffering = false;
    const body = Buffer.concat(this.chunks);
    this.chunks = [];
    return body;
  }

  /**
   * The first attempt's rewrite of the body the client sent (decoded): learns what the request
   * carries and keeps what a retry and the answer need. Undefined: left as sent.
   */
  private firstRewrite(body: Buffer): Exclude<RewriteOutcome, { kind: 'skipped' }> | undefined {
    const outcome = this.rewrite(body, { degrade: this.options.config.degrade });
    if (outcome.kind === 'skipped') {
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

  private rewrite(body: Buffer, policy: RewritePolicy): RewriteOutcome {
    const { cache, counters } = this.options;
    try {
      return this.surface.rewrite(body, (keys) => cache.lookup(this.scope, keys), policy);
    } catch (err) {
      // rewrite.ts promises not to throw; if it ever does, the original goes upstream.
      counters.skippedBodies++;
      this.options.log.error('rewrite failed, forwarding the original', { error: (err as Error).name });
      return { kind: 'skipped', reason: 'invalid-json' };
    }
  }

  private report(message: string, outcome: Extract<RewriteOutcome, { kind: 'rewritten' }>): void {
    const { counters, log } = this.options;
    const c = outcome.changes;
    counters.rewrittenRequests++;
    counters.injected += c.injected;
    counters.placeholders += c.placeholders;
    counters.flattened += c.flattened;
    log.info(message, { surface: this.surface.name, injected: c.injected, placeholders: c.placeholders, flattened: c.flattened, missing: c.missing });
  }

  private learn(learned: readonly Learned[]): void {
    for (const entry of learned) {
      this.options.cache.remember(this.scope, learnKeys(entry), entry.reasoning);
      this.options.counters.learned++;
    }
  }

  /** The answer's turns, under the context of the request they answer; their ids are the upstream's. */
  private learnAnswer(turns: readonly TurnReasoning[]): void {
    const context = this.context;
    if (context === undefined) return;
    this.learn(turns.map((turn) => ({ ...turn, context, upstreamIds: true })));
  }

  /**
   * Whether an answer with this status may be MiMo's reasoning 400 for a request this exchange
   * rewrote: then the plugin reads the answer's body (rejection.ts says how much) and asks
   * retryBody before the client sees anything.
   */
  mayRetry(status: number | undefined): boolean {
    return status === 400 && this.original !== undefined && this.firstBody !== undefined;
  }

  /**
   * The whole body of the upstream's 400: when it is MiMo's reasoning rejection and a stronger
   * rewrite exists, the body to send upstream once more instead; undefined: the answer goes on
   * to the client as it came.
   */
  retryBody(body: Buffer): Buffer | undefined {
    if (!this.original || !this.firstBody || !isReasoningRejection(400, body)) return undefined;
    const outcome = this.rewrite(this.original, retryPolicy(this.options.config.degrade));
    if (outcome.kind === 'skipped' || outcome.body.equals(this.firstBody)) {
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

  responseData(chunk: Buffer): void {
    if (this.tap && !this.done) this.tap.feed(chunk);
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
    this.original = undefined;
    this.firstBody = undefined;
  }
}
