/**
 * Cache keys for one assistant message, so a reply learned from a response
 * can be found again when the client sends it back in a later request.
 *
 * Two kinds of key, tried in this order by messageKeys():
 *   `id:<tool call id>`  one per tool call; the id MiMo issued is the most
 *                        precise key, and most clients send it back as is.
 *   `fp:<sha256 hex>`    the message's fingerprint, for clients that rewrite
 *                        tool call ids or for plain turns that have none.
 *
 * The fingerprint is the SHA-256 of the canonical form, which is the JSON
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
 */
import { createHash } from 'node:crypto';
import type { AssistantMessage } from './chat/types.js';
import { contentText, isRecord, toolCallArguments, toolCallId, toolCallName, toolCallsOf } from './chat/types.js';

export function toolCallKey(id: string): string {
  return `id:${id}`;
}

export function fingerprintKey(message: AssistantMessage): string {
  return `fp:${createHash('sha256').update(canonicalMessage(message)).digest('hex')}`;
}

/** Every tool call id key (in call order, without repeats), then the fingerprint key. */
export function messageKeys(message: AssistantMessage): string[] {
  return [...toolCallKeys(message), fingerprintKey(message)];
}

/**
 * A message with neither tool calls nor text has no key of its own (every
 * such message would share one fingerprint): it is neither learned nor looked up.
 */
export function identifiable(message: AssistantMessage): boolean {
  if (!isRecord(message)) return false;
  return toolCallsOf(message).length > 0 || contentText(message['content']).trim() !== '';
}

/** The `id:` keys of a message alone, cheap: no hashing. */
export function toolCallKeys(message: AssistantMessage): string[] {
  const keys: string[] = [];
  if (!isRecord(message)) return keys;
  for (const call of toolCallsOf(message)) {
    const id = toolCallId(call);
    if (id === '') continue;
    const key = toolCallKey(id);
    if (!keys.includes(key)) keys.push(key);
  }
  return keys;
}

/** The canonical form described in the header (exported for tests). */
export function canonicalMessage(message: AssistantMessage): string {
  const record = isRecord(message) ? message : {};
  const calls = toolCallsOf(record).map((call) => ({
    arguments: canonicalArguments(toolCallArguments(call)),
    name: toolCallName(call),
  }));
  return JSON.stringify({ content: contentText(record['content']).trim(), tool_calls: calls });
}

/** Arguments parsed and re-serialised with sorted keys; the trimmed raw string when they do not parse. */
export function canonicalArguments(raw: string): string {
  const trimmed = raw.trim();
  if (trimmed === '') return '';
  try {
    return canonicalJson(JSON.parse(trimmed));
  } catch {
    return trimmed;
  }
}

/** JSON with object keys sorted recursively and no whitespace. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isRecord(value)) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key])}`).join(',')}}`;
  }
  // Primitives from JSON.parse: string, number, boolean, null.
  return JSON.stringify(value) ?? 'null';
}
