/**
 * What identifies a chat-completions assistant turn and the messages before
 * it, for ../reasoning/match.ts (which builds the cache keys from both).
 *
 * The turn digest is the SHA-256 of the canonical form, the JSON
 *   {"content":"<text>","tool_calls":[{"arguments":"<args>","name":"<name>"}, ...]}
 * where
 *   content    the message's text: a string as is; an array of parts -> the
 *              concatenated `text` of its parts; null / absent / anything
 *              else -> ''; then trimmed of surrounding whitespace (streams
 *              often start content with a newline, clients trim it);
 *   tool_calls in their order; [] when absent or null. Per call only the
 *              function name (trimmed) and arguments: ids and types are left
 *              out (ids are keyed separately, and some clients rewrite them);
 *   arguments  parsed as JSON and re-serialised canonically (object keys
 *              sorted recursively, no whitespace), so a client that
 *              re-serialised or re-ordered the arguments still matches; when
 *              they do not parse, the raw string trimmed.
 * Reasoning is not part of it (it is what we look up).
 *
 * A context message's form is its role and what a client keeps stable:
 *   user, tool   the text (string, or the text of its parts; other parts by
 *                their canonical JSON), trimmed;
 *   assistant    its calls (name + canonical arguments), or its text when it
 *                has none: never its reasoning, ids or other fields;
 *   system, developer  not counted (clients rewrite system prompts).
 */
import { canonicalArguments, canonicalJson, isRecord } from '../reasoning/json.js';
import { sha256, type TurnIdentity } from '../reasoning/match.js';
import { contentText, toolCallArguments, toolCallId, toolCallName, toolCallsOf } from './types.js';

/**
 * A message with neither tool calls nor text has nothing of its own to be
 * found by (every such message would look the same): it is neither learned
 * nor looked up.
 */
export function identifiable(message: unknown): boolean {
  if (!isRecord(message)) return false;
  return toolCallsOf(message).length > 0 || contentText(message['content']).trim() !== '';
}

/** The turn's identity, or undefined when it has none (see identifiable). */
export function chatTurnIdentity(message: unknown): TurnIdentity | undefined {
  if (!identifiable(message)) return undefined;
  return { turn: sha256(canonicalMessage(message)), ids: toolCallIds(message) };
}

/** The tool call ids of a message, in call order, without repeats or empty ones. */
export function toolCallIds(message: unknown): string[] {
  // A Set: a list scan per call made a turn of n calls cost n² (60,000 calls: seconds).
  const ids = new Set<string>();
  if (!isRecord(message)) return [];
  for (const call of toolCallsOf(message)) {
    const id = toolCallId(call);
    if (id !== '') ids.add(id);
  }
  return [...ids];
}

/** The canonical form described in the header (exported for tests). */
export function canonicalMessage(message: unknown): string {
  const record = isRecord(message) ? message : {};
  return JSON.stringify({ content: contentText(record['content']).trim(), tool_calls: canonicalCalls(record) });
}

function canonicalCalls(message: Record<string, unknown>): { arguments: string; name: string }[] {
  return toolCallsOf(message).map((call) => ({ arguments: canonicalArguments(toolCallArguments(call)), name: toolCallName(call) }));
}

/** A message's context form (see the header), or undefined for one that does not count. */
export function chatContextForm(message: unknown): string | undefined {
  if (!isRecord(message)) return JSON.stringify(['?', canonicalJson(message)]);
  const role = typeof message['role'] === 'string' ? message['role'] : '';
  if (role === 'system' || role === 'developer') return undefined;
  if (role === 'assistant') {
    const calls = canonicalCalls(message);
    return JSON.stringify([role, calls.length > 0 ? calls : contentText(message['content']).trim()]);
  }
  return JSON.stringify([role, partsText(message['content'])]);
}

/** Text of a content: a string trimmed; parts as their text, others as canonical JSON. */
function partsText(content: unknown): string {
  if (typeof content === 'string') return content.trim();
  if (!Array.isArray(content)) return content === undefined || content === null ? '' : canonicalJson(content);
  return content
    .map((part) => (typeof part === 'string' ? part : isRecord(part) && typeof part['text'] === 'string' ? part['text'] : canonicalJson(part)))
    .join('\n')
    .trim();
}
