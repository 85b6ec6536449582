/**
 * What a dialect is: one API format (OpenAI chat completions, Anthropic
 * messages, the OpenAI Responses API) over the one reasoning core. A dialect
 * only says how a request of its format is rewritten (usually rewriteTurns,
 * turns.ts, over its own TurnDialect) and how its responses are folded into
 * learned reasoning (its SSE and JSON taps, built on tap/). Everything else is
 * shared: the cache and store, credential scoping, counters, the
 * degrade/retry ladder, decoding compressed bodies (exchange.ts). The
 * dialects are listed in ../dialects.ts; which one serves which path of
 * which provider is ../providers.ts.
 */
import type { TurnReasoning } from './match.js';
import type { ReasoningLookup, RewriteOutcome, RewritePolicy } from './rewrite.js';

/** A tap on one response body. `end()` -> undefined: incomplete or failed, store nothing. Never throws. */
export interface ResponseTap {
  feed(chunk: Uint8Array): void;
  end(): TurnReasoning[] | undefined;
  /**
   * The answer is complete before its body ends (a stream's terminal event was fed): `end()`
   * may be called now. A client acts on that event at once (its next request may come before
   * the body's last bytes), so the exchange learns then, before forwarding the chunk.
   */
  settled?(): boolean;
}

export interface Dialect {
  /**
   * Unique among the dialects: the cache scopes entries by it, so two formats never feed
   * each other (exchange.ts), and logs name it.
   */
  readonly name: string;
  /** The request side: put remembered reasoning back, degrade the rest. Pure, never throws. */
  rewrite(body: Buffer, lookup: ReasoningLookup, policy: RewritePolicy): RewriteOutcome;
  /** A fresh tap on a streamed (`text/event-stream`) answer. */
  sseTap(): ResponseTap;
  /** A fresh tap on a JSON answer, keeping at most maxBytes of it. */
  jsonTap(maxBytes: number): ResponseTap;
}
