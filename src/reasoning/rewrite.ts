/**
 * The request side's contract, the same in every dialect: what a rewrite is
 * given (a policy, a lookup into the cache) and what it returns (a
 * description of what it changed, or why it left the body alone), and what
 * every rewrite starts with: parse the body without losing anything, and
 * never throw into live traffic. No change -> the very Buffer it was given,
 * so the original bytes go upstream.
 * Pure.
 */
import { isUtf8 } from 'node:buffer';
import type { Degrade } from '../config.js';
import { isRecord, parseJson } from './json.js';
import type { Learned } from './match.js';

export interface RewritePolicy {
  /** What to do with a tool-call assistant turn whose reasoning is not found. */
  degrade: Degrade;
  /**
   * Also give plain assistant turns lacking reasoning their remembered reasoning or a placeholder
   * (the retry: whether MiMo needs it there is unknown); `with-tools`: only when the request
   * declares `tools` (DeepSeek is reported to want every turn then).
   */
  plainTurns?: boolean | 'with-tools';
  /** Models that think only when the request turns thinking on (thinkingDisabled). */
  thinkingOffModels?: RegExp;
  /** Fixes for other 400s the upstream is known to give, on requests rewritten anyway. */
  repairs?: Repairs;
}

/** The other avoidable 400s a provider is known to give (MiMo: MIMO-API.md). */
export interface Repairs {
  /** An assistant tool-call message's `content` null -> '', a list of text parts -> their text. */
  toolCallContent?: boolean;
  /** A tool call with an empty name gets the name the upstream gave that call id (remembered), never an invented one. */
  toolCallNames?: boolean;
}

export interface RewriteChanges {
  /** Remembered reasoning put back. */
  injected: number;
  /** Turn-specific placeholders written (tool-call or, with plainTurns, plain turns). */
  placeholders: number;
  /** Tool exchanges turned into text. */
  flattened: number;
  /** Turns that needed reasoning (tool calls, or any with plainTurns) and had none remembered. */
  missing: number;
  /** Messages fixed by the policy's repairs (absent when none). */
  repaired?: number;
}

export type SkipReason = 'invalid-json' | 'not-an-object' | 'no-messages' | 'stateful' | 'internal-error';

/**
 * `learned`: turns that came with their own reasoning; `context`: the context digest of the
 * turn that will answer this request (match.ts), to learn that turn under.
 */
export type RewriteOutcome =
  | { kind: 'unchanged'; body: Buffer; learned: Learned[]; context: string; changes: RewriteChanges }
  | { kind: 'rewritten'; body: Buffer; learned: Learned[]; context: string; changes: RewriteChanges }
  | { kind: 'skipped'; reason: SkipReason };

/** The remembered value under the first of `keys` that has one (read lazily, in order). */
export type ReasoningLookup = (keys: Iterable<string>) => string | undefined;

/**
 * `"thinking": {"type": "disabled"}` turns thinking off and `"enabled"` on; a request that does
 * not say is thinking, unless its model is one of `offModels` (a provider's non-thinking models).
 */
export function thinkingDisabled(request: unknown, offModels?: RegExp): boolean {
  if (!isRecord(request)) return false;
  const thinking = request['thinking'];
  const type = isRecord(thinking) ? thinking['type'] : undefined;
  if (type === 'disabled') return true;
  if (type === 'enabled' || offModels === undefined) return false;
  const model = request['model'];
  return typeof model === 'string' && offModels.test(model);
}

/** Whether the request declares tools (a non-empty `tools` list). */
export function declaresTools(request: unknown): boolean {
  return isRecord(request) && Array.isArray(request['tools']) && request['tools'].length > 0;
}

/** A rewrite must never throw into live traffic: anything unexpected forwards the original. */
export function neverThrowing(rewrite: () => RewriteOutcome): RewriteOutcome {
  try {
    return rewrite();
  } catch {
    return { kind: 'skipped', reason: 'internal-error' };
  }
}

/** The request object and its `messages` array, or why the body is left alone. */
export function parseMessages(body: Buffer): { request: Record<string, unknown>; messages: unknown[] } | { kind: 'skipped'; reason: SkipReason } {
  const parsed = parseRequest(body);
  if ('kind' in parsed) return parsed;
  const { request } = parsed;
  const messages = request['messages'];
  if (!Array.isArray(messages)) return { kind: 'skipped', reason: 'no-messages' };
  return { request, messages };
}

/** The request object, parsed without losing anything, or why the body is left alone. */
export function parseRequest(body: Buffer): { request: Record<string, unknown> } | { kind: 'skipped'; reason: SkipReason } {
  // Invalid UTF-8 would come back altered from a re-serialisation: leave such a body alone.
  if (!isUtf8(body)) return { kind: 'skipped', reason: 'invalid-json' };
  let request: unknown;
  try {
    request = parseJson(body.toString('utf8'));
  } catch {
    return { kind: 'skipped', reason: 'invalid-json' };
  }
  if (!isRecord(request)) return { kind: 'skipped', reason: 'not-an-object' };
  return { request };
}
