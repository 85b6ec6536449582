/**
 * The read-only tap on a non-streamed response, whatever the dialect: keeps
 * a bounded copy of the body and hands it, once, at the end, to the
 * dialect's reading of a whole response (in the dialect's fold.ts).
 * Past maxBytes it stores nothing. Never throws.
 */
import type { ResponseTap } from '../dialect.js';
import { isRecord } from '../json.js';
import type { TurnReasoning } from '../match.js';

/** A body copy past this many bytes is dropped (poisons the tap): bounded memory. */
export const DEFAULT_MAX_JSON_BYTES = 32 * 1024 * 1024;

/** A bounded copy of the body, handed to `learn` once at the end; past maxBytes, nothing. */
export function createBodyTap(learn: (body: Uint8Array) => TurnReasoning[] | undefined, maxBytes = DEFAULT_MAX_JSON_BYTES): ResponseTap {
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
