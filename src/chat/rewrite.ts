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
import { plainPlaceholder, toolCallPlaceholder } from '../reasoning/degrade.js';
import { isRecord } from '../reasoning/json.js';
import { ContextWindows, hasReasoning, lookupKeys, type Learned } from '../reasoning/match.js';
import { neverThrowing, parseMessages, thinkingDisabled, type ReasoningLookup, type RewriteChanges, type RewriteOutcome, type RewritePolicy } from '../reasoning/rewrite.js';
import { flattenToolExchange } from './degrade.js';
import { chatContextForm, chatTurnIdentity } from './fingerprint.js';
import { toolCallNames, toolCallsOf } from './types.js';

export function rewriteChatRequest(body: Buffer, lookup: ReasoningLookup, policy: RewritePolicy): RewriteOutcome {
  return neverThrowing(() => rewrite(body, lookup, policy));
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
      message['reasoning_content'] = toolCallPlaceholder(step, toolCallNames(message));
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
