/**
 * One exchange on a reasoning surface (chat completions, or the Anthropic
 * messages endpoint: ../dialects.ts) through the proxy, from the plugin's side:
 *   request body  -> buffered up to --max-body, rewritten by the surface with
 *                    what the cache remembers for this credential;
 *   400 reasoning -> retried once with the next stronger strategy, before the
 *                    client sees anything;
 *   response      -> tapped read-only by the surface's SSE or JSON fold; on a
 *                    complete 200 answer every assistant turn's reasoning is learned.
 * Never throws into live traffic: anything it cannot improve goes upstream as
 * the client sent it.
 */
import http from 'node:http';
import https from 'node:https';
import { PassThrough } from 'node:stream';
import type { Degrade, ProxyConfig } from '../config.js';
import type { ReasoningCache } from '../cache/cache.js';
import type { Logger } from '../log.js';
import { credentialScope } from './scope.js';
import type { RewriteOutcome, RewritePolicy } from './rewrite.js';
import type { Counters } from '../stats.js';
import { contentCodings, decodeBody } from './encoding.js';
import { decodingTap, type LearningTap } from './tap/decode.js';
import type { Dialect } from './dialect.js';
import { isReasoningRejection } from './rejection.js';
import { learnKeys, type Learned, type TurnReasoning } from './match.js';

/** An error body larger than this is not MiMo's reasoning 400; it is passed on. */
const MAX_ERROR_PEEK_BYTES = 64 * 1024;

export interface ReasoningServiceOptions {
  config: Pick<ProxyConfig, 'degrade' | 'maxBodyBytes'>;
  cache: ReasoningCache;
  counters: Counters;
  log: Logger;
  agents: { http: http.Agent; https: https.Agent };
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

  request(isSSL: boolean, options: http.RequestOptions, onResponse: (res: http.IncomingMessage) => void): http.ClientRequest {
    return (isSSL ? https : http).request(options, onResponse);
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
   * The upstream answered. On MiMo's reasoning 400, retry once with a
   * stronger strategy; otherwise pass the response on (replaying any bytes
   * read to check it). Sets up the tap on the response the client will get.
   */
  async response(res: http.IncomingMessage, retry: (body: Buffer) => Promise<http.IncomingMessage>): Promise<http.IncomingMessage> {
    let final = res;
    if (res.statusCode === 400 && this.original && this.firstBody) {
      const { head, complete } = await peek(res, MAX_ERROR_PEEK_BYTES);
      if (complete && isReasoningRejection(400, head)) {
        const outcome = this.rewrite(this.original, retryPolicy(this.options.config.degrade));
        if (outcome.kind !== 'skipped' && !outcome.body.equals(this.firstBody)) {
          if (outcome.kind === 'rewritten') this.report('upstream refused the reasoning; retrying with a stronger rewrite', outcome);
          final = await retry(outcome.body);
        } else {
          this.options.log.warn('upstream refused the reasoning and no stronger rewrite exists');
          final = replay(res, head, complete);
        }
      } else {
        final = replay(res, head, complete);
      }
    }
    // Memory: the bodies are no longer needed once the answer is chosen.
    this.original = undefined;
    this.firstBody = undefined;
    if (final.statusCode === 200 && this.context !== undefined) {
      const type = String(final.headers['content-type'] ?? '');
      const max = this.options.config.maxBodyBytes;
      // A compressed answer is decoded for the tap (tap/decode.ts); an unknown coding is not learned from.
      const codings = contentCodings(final.headers['content-encoding']);
      const onGiveUp = (reason: string): void => this.options.log.debug('compressed answer not learned', { surface: this.surface.name, reason });
      if (codings) {
        if (type.includes('text/event-stream')) this.tap = decodingTap(codings, this.surface.sseTap(), { onGiveUp });
        else if (type.includes('json')) this.tap = decodingTap(codings, this.surface.jsonTap(max), { maxDecodedBytes: max, onGiveUp });
      }
    }
    return final;
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

/**
 * Read up to `limit` bytes of a response; `complete` only when it ended cleanly within them.
 * A response that fails or closes early is never taken for a whole one.
 */
function peek(res: http.IncomingMessage, limit: number): Promise<{ head: Buffer; complete: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (complete: boolean): void => {
      if (settled) return;
      settled = true;
      res.off('data', onData);
      res.off('end', onEnd);
      res.off('error', onBroken);
      res.off('close', onBroken);
      res.pause();
      resolve({ head: Buffer.concat(chunks), complete });
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > limit) finish(false);
    };
    const onEnd = (): void => finish(true);
    const onBroken = (): void => finish(false);
    res.on('data', onData);
    res.once('end', onEnd);
    res.once('error', onBroken);
    res.once('close', onBroken);
    res.resume();
  });
}

/** A stand-in for a response whose first bytes were already read: those bytes, then the rest. */
function replay(res: http.IncomingMessage, head: Buffer, complete: boolean): http.IncomingMessage {
  const stream = new PassThrough();
  Object.assign(stream, { statusCode: res.statusCode, statusMessage: res.statusMessage, headers: res.headers, rawHeaders: res.rawHeaders, httpVersion: res.httpVersion });
  stream.pause();
  stream.write(head);
  if (complete) stream.end();
  else {
    res.pipe(stream);
    res.resume();
  }
  res.on('error', (err) => stream.destroy(err));
  return stream as unknown as http.IncomingMessage;
}
