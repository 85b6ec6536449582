/**
 * The tap on a compressed answer: a zlib decoder (one per coding, piped)
 * between the response chunks and the SSE or JSON tap. It only observes: the
 * client gets the compressed bytes exactly as upstream sent them; the decoder
 * works on a copy of each chunk, off the main thread.
 *
 * Learning happens when the decoder has flushed at the end. A decode error,
 * or more than maxDecodedBytes of decoded output (a decompression bomb: the
 * decoder is destroyed at once), learns nothing. Never throws, never rejects.
 */
import type { Transform } from 'node:stream';
import type { ResponseTap } from '../dialect.js';
import { createDecoder, type Coding } from '../encoding.js';
import type { TurnReasoning } from '../match.js';

/** A response tap as the exchange drives it: end() may wait for a decoder; abort() drops everything. */
export interface LearningTap {
  feed(chunk: Uint8Array): void;
  end(): TurnReasoning[] | undefined | Promise<TurnReasoning[] | undefined>;
  abort(): void;
  /** See ResponseTap.settled; a decoding tap learns at the end of the body (its decoder must flush first). */
  settled?(): boolean;
}

export interface DecodingTapOptions {
  /** Decoded bytes past this stop learning (undefined: no cap of its own; the inner tap's bounds apply). */
  maxDecodedBytes?: number | undefined;
  /** Called once when learning stops early, with why (for a log line). */
  onGiveUp?: (reason: 'too-large' | 'invalid') => void;
}

/** `inner` as is for an identity body; otherwise behind decoders for `codings` (in the order applied). */
export function decodingTap(codings: readonly Coding[], inner: ResponseTap, options: DecodingTapOptions = {}): LearningTap {
  if (codings.length === 0) return { feed: (chunk) => inner.feed(chunk), end: () => inner.end(), abort: () => undefined, settled: () => inner.settled?.() === true };
  return createDecodingTap(codings, inner, options);
}

export function createDecodingTap(codings: readonly Coding[], inner: ResponseTap, options: DecodingTapOptions = {}): LearningTap {
  const max = options.maxDecodedBytes ?? Number.POSITIVE_INFINITY;
  const stages: Transform[] = [...codings].reverse().map(createDecoder);
  const first = stages[0]!;
  const last = stages[stages.length - 1]!;
  let decoded = 0;
  let failed = false;
  let sawEnd = false;
  let ending = false;
  let settle: (learned: TurnReasoning[] | undefined) => void = () => undefined;
  const result = new Promise<TurnReasoning[] | undefined>((resolve) => {
    settle = resolve;
  });

  const fail = (reason: 'too-large' | 'invalid'): void => {
    if (failed) return;
    failed = true;
    for (const stage of stages) stage.destroy();
    try {
      options.onGiveUp?.(reason);
    } catch {
      // A log line must not break the tap.
    }
  };

  for (let i = 0; i + 1 < stages.length; i++) stages[i]!.pipe(stages[i + 1]!);
  // Every stage keeps an error listener for its whole life: an error after fail() is harmless.
  for (const stage of stages) stage.on('error', () => fail('invalid'));
  last.on('data', (chunk: Buffer) => {
    if (failed) return;
    decoded += chunk.length;
    if (decoded > max) {
      fail('too-large');
      return;
    }
    inner.feed(chunk);
  });
  last.once('end', () => {
    sawEnd = true;
  });
  // 'close' comes last in every case (ended, failed, destroyed): the one place that settles.
  last.once('close', () => {
    if (failed || !sawEnd || !ending) {
      settle(undefined);
      return;
    }
    try {
      settle(inner.end());
    } catch {
      settle(undefined);
    }
  });

  return {
    feed(chunk) {
      if (failed || ending) return;
      try {
        // A copy: the same bytes are on their way to the client.
        first.write(Buffer.from(chunk));
      } catch {
        fail('invalid');
      }
    },
    end() {
      if (!ending) {
        ending = true;
        if (!failed) first.end();
      }
      return result;
    },
    abort() {
      ending = true;
      if (!failed) {
        failed = true;
        for (const stage of stages) stage.destroy();
      }
    },
  };
}
