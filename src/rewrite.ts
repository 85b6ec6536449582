/**
 * The request side: puts remembered reasoning back into the assistant
 * messages of a chat-completions request, and degrades (degrade.ts) the
 * tool-call messages whose reasoning is not remembered, so MiMo does not
 * answer 400 "The reasoning_content in the thinking mode must be passed back".
 *
 * A message counts as lacking reasoning when `reasoning_content` is absent,
 * null, not a string, or only whitespace: DeepSeek (same rule) rejects `''`,
 * and a lone space is a gateway's backfill, not reasoning worth keeping over
 * the real one. Any other value the client sent is never touched; it is
 * reported in `learned` so it can be remembered.
 *
 * Returns a description of what it did; no change -> the very Buffer it was
 * given, so the original bytes go upstream. Pure, and never throws.
 */
import { isUtf8 } from 'node:buffer';
import type { Learned } from './chat/types.js';
import { hasReasoning, isRecord, toolCallsOf } from './chat/types.js';
import { flattenToolExchange, plainPlaceholder, toolCallPlaceholder } from './degrade.js';
import { fingerprintKey, identifiable, messageKeys, toolCallKeys } from './fingerprint.js';

export type Degrade = 'placeholder' | 'flatten';

export interface RewritePolicy {
  /** What to do with a tool-call assistant message whose reasoning is not found. */
  degrade: Degrade;
  /** Also give plain assistant messages lacking reasoning a placeholder (the retry: whether MiMo needs it there is unknown). */
  plainTurns?: boolean;
  /**
   * Look a message that has tool-call ids up by its fingerprint too (default true). The retry
   * turns this off: two identical calls in different turns share a fingerprint, so a
   * fingerprint hit for a message whose ids are unknown may be another turn's reasoning.
   */
  fingerprintFallback?: boolean;
}

export interface RewriteChanges {
  /** Remembered reasoning put back. */
  injected: number;
  /** Turn-specific placeholders written (tool-call or, with plainTurns, plain messages). */
  placeholders: number;
  /** Tool exchanges turned into text. */
  flattened: number;
  /** Messages that needed reasoning (tool calls, or any with plainTurns) and had none remembered. */
  missing: number;
}

export type SkipReason = 'invalid-json' | 'not-an-object' | 'no-messages' | 'internal-error';

export type RewriteOutcome =
  | { kind: 'unchanged'; body: Buffer; learned: Learned[]; changes: RewriteChanges }
  | { kind: 'rewritten'; body: Buffer; learned: Learned[]; changes: RewriteChanges }
  | { kind: 'skipped'; reason: SkipReason };

export type ReasoningLookup = (keys: readonly string[]) => string | undefined;

/** Only `"thinking": {"type": "disabled"}` turns thinking off; a request that does not say is thinking. */
export function thinkingDisabled(request: unknown): boolean {
  if (!isRecord(request)) return false;
  const thinking = request['thinking'];
  return isRecord(thinking) && thinking['type'] === 'disabled';
}

export function rewriteChatRequest(body: Buffer, lookup: ReasoningLookup, policy: RewritePolicy): RewriteOutcome {
  return neverThrowing(() => rewrite(body, lookup, policy));
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
  // Invalid UTF-8 would come back altered from a re-serialisation: leave such a body alone.
  if (!isUtf8(body)) return { kind: 'skipped', reason: 'invalid-json' };
  let request: unknown;
  try {
    request = JSON.parse(body.toString('utf8'));
  } catch {
    return { kind: 'skipped', reason: 'invalid-json' };
  }
  if (!isRecord(request)) return { kind: 'skipped', reason: 'not-an-object' };
  const messages = request['messages'];
  if (!Array.isArray(messages)) return { kind: 'skipped', reason: 'no-messages' };
  return { request, messages };
}

function rewrite(body: Buffer, lookup: ReasoningLookup, policy: RewritePolicy): RewriteOutcome {
  const parsed = parseMessages(body);
  if ('kind' in parsed) return parsed;
  const { request, messages } = parsed;

  const disabled = thinkingDisabled(request);
  const plainTurns = policy.plainTurns === true;
  const changes: RewriteChanges = { injected: 0, placeholders: 0, flattened: 0, missing: 0 };
  const learned: Learned[] = [];
  const replacements = new Map<number, Record<string, unknown>[]>();
  const removed = new Set<number>();
  let step = 0;

  for (let i = 0; i < messages.length; i++) {
    const message: unknown = messages[i];
    if (!isRecord(message) || message['role'] !== 'assistant') continue;
    step++;
    const reasoning = message['reasoning_content'];
    if (hasReasoning(reasoning)) {
      if (identifiable(message)) learned.push({ keys: messageKeys(message), reasoning });
      continue;
    }

    // A plain turn is looked up only when the retry asks for plain turns: its fingerprint is
    // its text alone, and a short reply ("好的", "Done.") would find another conversation's.
    const hasCalls = toolCallsOf(message).length > 0;
    if (!hasCalls && !plainTurns) continue;

    const found = find(message, lookup, policy.fingerprintFallback !== false);
    if (found !== undefined) {
      message['reasoning_content'] = found;
      changes.injected++;
      continue;
    }

    changes.missing++;
    if (disabled) continue;
    if (!hasCalls) {
      message['reasoning_content'] = plainPlaceholder(step);
      changes.placeholders++;
    } else if (policy.degrade === 'placeholder') {
      message['reasoning_content'] = toolCallPlaceholder(step, message);
      changes.placeholders++;
    } else {
      const { replacement, consumed } = flattenToolExchange(messages, i, step, plainTurns);
      replacements.set(i, replacement);
      for (const index of consumed) removed.add(index);
      changes.flattened++;
    }
  }

  if (changes.injected + changes.placeholders + changes.flattened === 0) {
    return { kind: 'unchanged', body, learned, changes };
  }
  if (replacements.size > 0) {
    const next: unknown[] = [];
    for (let i = 0; i < messages.length; i++) {
      if (removed.has(i)) continue;
      const replacement = replacements.get(i);
      if (replacement) next.push(...replacement);
      else next.push(messages[i]);
    }
    request['messages'] = next;
  }
  return { kind: 'rewritten', body: Buffer.from(JSON.stringify(request), 'utf8'), learned, changes };
}

/** The remembered reasoning: by tool call id first, then (hashing only now) by fingerprint. */
function find(message: Record<string, unknown>, lookup: ReasoningLookup, fingerprintFallback: boolean): string | undefined {
  if (!identifiable(message)) return undefined;
  const ids = toolCallKeys(message);
  if (ids.length === 0) return safeLookup(lookup, [fingerprintKey(message)]);
  const byId = safeLookup(lookup, ids);
  return byId ?? (fingerprintFallback ? safeLookup(lookup, [fingerprintKey(message)]) : undefined);
}

function safeLookup(lookup: ReasoningLookup, keys: readonly string[]): string | undefined {
  try {
    const value = lookup(keys);
    return hasReasoning(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
