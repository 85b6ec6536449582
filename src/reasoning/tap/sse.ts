/**
 * The read-only tap on a streamed (`text/event-stream`) response, whatever
 * the dialect. Bytes -> streaming UTF-8 decode (a character split across
 * chunks is held until it is whole) -> eventsource-parser -> JSON per
 * `data:` event -> the dialect's fold (an SseFolder, in the dialect's
 * fold.ts), which also says when the stream is complete. The tap only
 * observes: the proxy forwards every chunk as it came.
 *
 * Anything but a complete stream stores nothing: a cut-off stream, an
 * `error` event, data that is not JSON, an event the fold refuses, a line
 * longer than maxLineBytes. It never throws: a tap must not break traffic.
 */
import { createParser, type EventSourceMessage, type EventSourceParser } from 'eventsource-parser';
import type { ResponseTap } from '../dialect.js';
import type { TurnReasoning } from '../match.js';

/** One SSE line (or event) past this many bytes poisons the tap instead of growing memory. */
export const DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024;

const LF = 0x0a;
const CR = 0x0d;

/** A fold's text past this many characters (all choices or blocks) poisons it: bounded memory. */
export const DEFAULT_MAX_FOLDED_CHARS = 32 * 1024 * 1024;

export interface SseTapOptions {
  maxLineBytes?: number;
  /** Bound on the folded text, see DEFAULT_MAX_FOLDED_CHARS. */
  maxFoldedChars?: number;
}

/** What a format plugs into the shared SSE plumbing (decode, parse, bounds, poisoning). */
export interface SseFolder {
  /** One event's parsed `data:` JSON; false poisons the stream. */
  add(data: unknown): boolean;
  /** A `data: [DONE]` line. */
  sawDone(): void;
  /** The stream is complete: later events do not matter. */
  stopped(): boolean;
  /** At the end of the body, unpoisoned: what to learn, or undefined for nothing. */
  finish(): TurnReasoning[] | undefined;
}

/** Bytes -> UTF-8 -> eventsource-parser -> JSON per event -> `folder`, bounded and never throwing. */
export function createFoldingSseTap(folder: SseFolder, options: { maxLineBytes?: number | undefined } = {}): ResponseTap {
  const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  const decoder = new TextDecoder('utf-8');
  let poisoned = false;
  let ended = false;
  /** Bytes since the last line terminator: the line still being received. */
  let pendingLineBytes = 0;

  const onEvent = (event: EventSourceMessage): void => {
    if (poisoned || folder.stopped()) return;
    if (event.event === 'error') {
      poisoned = true;
      return;
    }
    if (event.data === '[DONE]') {
      folder.sawDone();
      return;
    }
    let data: unknown;
    try {
      data = JSON.parse(event.data);
    } catch {
      poisoned = true;
      return;
    }
    if (!folder.add(data)) poisoned = true;
  };

  const parser: EventSourceParser = createParser({
    onEvent,
    onError: (error) => {
      // Unknown fields and bad `retry:` values are harmless; only the buffer cap matters.
      if (error.type === 'max-buffer-size-exceeded') poisoned = true;
    },
    // Characters, not bytes, but a character is at least one byte: this also caps multi-line events.
    maxBufferSize: maxLineBytes,
  });

  return {
    feed(chunk) {
      if (poisoned || ended || folder.stopped()) return;
      try {
        // Every line is measured, wherever the chunk boundaries fall, so the verdict does not depend on them.
        let line = pendingLineBytes;
        for (let i = 0; i < chunk.length; i++) {
          const byte = chunk[i];
          if (byte === LF || byte === CR) line = 0;
          else if (++line > maxLineBytes) {
            poisoned = true;
            return;
          }
        }
        pendingLineBytes = line;
        parser.feed(decoder.decode(chunk, { stream: true }));
      } catch {
        poisoned = true;
      }
    },
    settled: () => !poisoned && !ended && folder.stopped(),
    end(): TurnReasoning[] | undefined {
      if (ended) return undefined;
      ended = true;
      try {
        if (!poisoned && !folder.stopped()) {
          // Flush a held partial character and dispatch an event whose blank line never came;
          // a cut-off event then fails JSON.parse and poisons, as it should.
          parser.feed(`${decoder.decode()}\n\n`);
        }
        return poisoned ? undefined : folder.finish();
      } catch {
        return undefined;
      }
    },
  };
}
