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
 * reported in `learned` so it can be remembered. What is put back is found
 * only for the same turn in the same conversation (match.ts).
 *
 * Returns a description of what it did; no change -> the very Buffer it was
 * given, so the original bytes go upstream. Pure, and never throws.
 */
import { isUtf8 } from 'node:buffer';
import { hasReasoning, isRecord, toolCallsOf } from './types.js';
import { flattenToolExchange, plainPlaceholder, toolCallPlaceholder } from './degrade.js';
import { chatContextForm, chatTurnIdentity } from './fingerprint.js';
import { parseJson } from '../reasoning/json.js';
import { ContextWindows, lookupKeys, type Learned } from '../reasoning/match.js';

export type Degrade = 'placeholder' | 'flatten';

export interface RewritePolicy {
  /** What to do with a tool-call assistant message whose reasoning is not found. */
  degrade: Degrade;
  /** Also give plain assistant messages lacking reasoning a placeholder (the retry: whether MiMo needs it there is unknown). */
  plainTurns?: boolean;
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
    request = parseJson(body.toString('utf8'));
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
  const windows = new ContextWindows(messages, chatContextForm);

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
      const identity = chatTurnIdentity(message);
      if (identity) learned.push({ identity, reasoning, context: windows.before(i), upstreamIds: false });
      continue;
    }

    // A plain turn is filled only when the retry asks for plain turns: whether MiMo needs
    // reasoning there is unknown, and sending it back costs input tokens.
    const hasCalls = toolCallsOf(message).length > 0;
    if (!hasCalls && !plainTurns) continue;

    const identity = chatTurnIdentity(message);
    const found = identity && safeLookup(lookup, lookupKeys(identity, () => windows.before(i)));
    if (found) {
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

  const context = windows.end();
  if (changes.injected + changes.placeholders + changes.flattened === 0) {
    return { kind: 'unchanged', body, learned, context, changes };
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
  return { kind: 'rewritten', body: Buffer.from(JSON.stringify(request), 'utf8'), learned, context, changes };
}

function safeLookup(lookup: ReasoningLookup, keys: Iterable<string>): string | undefined {
  try {
    const value = lookup(keys);
    return hasReasoning(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
