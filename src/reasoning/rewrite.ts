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
  /** Also give plain assistant turns lacking reasoning a placeholder (the retry: whether MiMo needs it there is unknown). */
  plainTurns?: boolean;
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

/** Only `"thinking": {"type": "disabled"}` turns thinking off; a request that does not say is thinking. */
export function thinkingDisabled(request: unknown): boolean {
  if (!isRecord(request)) return false;
  const thinking = request['thinking'];
  return isRecord(thinking) && thinking['type'] === 'disabled';
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
