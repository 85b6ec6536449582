/**
 * What identifies a Responses assistant turn (a run of one output's items,
 * types.ts) and the entries before it, for ../reasoning/match.ts; the
 * counterpart of ../chat/fingerprint.ts for the Responses API.
 *
 * The turn digest is the SHA-256 of the canonical form, the JSON
 *   {"calls":[{"arguments":"<args>","name":"<name>"}, ...],"text":"<text>"}
 * where
 *   calls  the run's function_call items in order: the name (trimmed) and the
 *          arguments as canonical JSON (keys sorted, no whitespace; the raw
 *          string trimmed when they do not parse); never ids;
 *   text   the text of the run's assistant messages, each trimmed, empty ones
 *          left out, joined by "\n".
 * Reasoning items are not part of it (they are what we look up). The ids are
 * the calls' `call_id`s (the upstream's, unique per call), not the items' `id`s.
 * The form differs from the other dialects' (the key names), and their scopes
 * differ too, so the dialects never meet.
 *
 * An entry's context form is its role and what a client keeps stable:
 *   a run              its calls (name + canonical arguments), or its text
 *                      when it has none: never reasoning or ids;
 *   user (and any other message role)  its text, trimmed;
 *   function_call_output  ['tool', its output's text], never the call_id;
 *   system, developer  not counted (clients rewrite system prompts), nor is
 *                      the top-level `instructions`;
 *   any other item     not counted: item types this proxy does not know
 *                      (item_reference, other tools' calls) are kept verbatim
 *                      in the request and left out of the context, so a client
 *                      that drops or renumbers them still matches.
 */
import { resultText } from '../reasoning/degrade.js';
import { canonicalArguments, isRecord } from '../reasoning/json.js';
import { sha256, type TurnIdentity } from '../reasoning/match.js';
import { callArguments, callName, isAssistantMessage, isFunctionCall, messageText, stringField, type InputEntry } from './types.js';

/** The run's identity, or undefined when it has neither calls nor text (nothing of its own to be found by). */
export function runIdentity(items: readonly unknown[]): TurnIdentity | undefined {
  const { calls, text } = canonicalParts(items);
  if (calls.length === 0 && text === '') return undefined;
  return { turn: sha256(JSON.stringify({ calls, text })), ids: callIds(items) };
}

/** The call_ids of a run's function calls, in order, without repeats or empty ones. */
export function callIds(items: readonly unknown[]): string[] {
  // A Set: a list scan per call made a turn of n calls cost n² (60,000 calls: seconds).
  const ids = new Set<string>();
  for (const item of items) {
    if (!isFunctionCall(item)) continue;
    const id = stringField(item, 'call_id');
    if (id !== '') ids.add(id);
  }
  return [...ids];
}

/** The canonical form described in the header (exported for tests). */
export function canonicalRun(items: readonly unknown[]): string {
  const { calls, text } = canonicalParts(items);
  return JSON.stringify({ calls, text });
}

function canonicalParts(items: readonly unknown[]): { calls: { arguments: string; name: string }[]; text: string } {
  const calls = items.filter(isFunctionCall).map((item) => ({ arguments: canonicalArguments(callArguments(item)), name: callName(item) }));
  const texts = items
    .filter(isAssistantMessage)
    .map((item) => messageText(item['content']).trim())
    .filter((text) => text !== '');
  return { calls, text: texts.join('\n') };
}

/** An entry's context form (see the header), or undefined for one that does not count. */
export function responsesContextForm(entry: unknown): string | undefined {
  if (!isRecord(entry) || !Array.isArray(entry['items'])) return undefined;
  const { role, items } = entry as unknown as InputEntry;
  if (role === 'assistant') {
    const { calls, text } = canonicalParts(items);
    return JSON.stringify(['assistant', calls.length > 0 ? calls : text]);
  }
  const item = items[0];
  if (!isRecord(item)) return undefined;
  if (role === 'tool') {
    const output = item['output'];
    return JSON.stringify(['tool', output === undefined ? '' : resultText(output).trim()]);
  }
  if (role === 'item' || role === 'system' || role === 'developer') return undefined;
  return JSON.stringify([role, messageText(item['content']).trim()]);
}
