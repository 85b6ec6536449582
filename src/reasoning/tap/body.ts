/**
 * The read-only tap on a non-streamed chat completion: keeps a bounded copy
 * of the body, parses it once at the end, and learns every
 * `choices[i].message` that has reasoning. Past maxBytes, or on a body that is
 * not a successful completion, it stores nothing. Never throws.
 */
import type { Learned } from '../../chat/types.js';
import { isRecord } from '../../chat/types.js';
import { learnedFrom, type ResponseTap } from '../../chat/fold.js';

export type { ResponseTap } from '../../chat/fold.js';

/** A body copy past this many bytes is dropped (poisons the tap): bounded memory. */
export const DEFAULT_MAX_JSON_BYTES = 32 * 1024 * 1024;

export function createJsonTap(options: { maxBytes?: number } = {}): ResponseTap {
  return createBodyTap(learnedFromBody, options.maxBytes ?? DEFAULT_MAX_JSON_BYTES);
}

/** A bounded copy of the body, handed to `learn` once at the end; past maxBytes, nothing. */
export function createBodyTap(learn: (body: Uint8Array) => Learned[] | undefined, maxBytes: number): ResponseTap {
  let chunks: Uint8Array[] = [];
  let size = 0;
  let poisoned = false;
  let ended = false;

  return {
    feed(chunk) {
      if (poisoned || ended) return;
      size += chunk.length;
      if (size > maxBytes) {
        poisoned = true;
        chunks = [];
        return;
      }
      // A copy: the proxy may reuse or hand on the chunk's memory.
      chunks.push(Uint8Array.prototype.slice.call(chunk));
    },
    end() {
      if (ended) return undefined;
      ended = true;
      const held = chunks;
      chunks = [];
      if (poisoned) return undefined;
      try {
        return learn(Buffer.concat(held, size));
      } catch {
        return undefined;
      }
    },
  };
}

/** Learned entries from a whole completion body; undefined when it is not one (error, invalid JSON). */
export function learnedFromBody(body: Uint8Array): Learned[] | undefined {
  const parsed = successBody(body);
  if (!parsed) return undefined;
  const choices = parsed['choices'];
  if (!Array.isArray(choices)) return undefined;
  const learned: Learned[] = [];
  for (const choice of choices) {
    if (!isRecord(choice)) continue;
    const message = choice['message'];
    if (!isRecord(message)) continue;
    const entry = learnedFrom(message);
    if (entry) learned.push(entry);
  }
  return learned;
}

/** A response body's JSON object, or undefined when it is not JSON, not an object, or an error. */
export function successBody(body: Uint8Array): Record<string, unknown> | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8').decode(body));
  } catch {
    return undefined;
  }
  if (!isRecord(parsed)) return undefined;
  if (parsed['type'] === 'error' || (parsed['error'] !== undefined && parsed['error'] !== null)) return undefined;
  return parsed;
}
