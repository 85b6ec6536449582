/**
 * What identifies an Anthropic assistant turn and the messages before it,
 * for ../reasoning/match.ts; the counterpart of ../chat/fingerprint.ts for
 * the Messages API.
 *
 * The turn digest is the SHA-256 of the canonical form, the JSON
 *   {"text":"<text>","tool_use":[{"input":"<input>","name":"<name>"}, ...]}
 * where
 *   text      each text block's text trimmed, empty ones left out, joined by
 *             "\n" (a string content: the string trimmed); clients trim blocks
 *             or drop empty ones, streams start text with a newline;
 *   tool_use  in their order; per block only the name (trimmed) and the input
 *             as canonical JSON (keys sorted, no whitespace), so a client that
 *             re-serialised the input still matches; a string input (some
 *             clients, or a stream's partial JSON that never parsed) is parsed
 *             first, the raw string trimmed when it does not parse; absent -> {}.
 * thinking and redacted_thinking blocks are not part of it (they are what we
 * look up), nor are images or any other block. The canonical forms differ
 * from the chat dialect's, so the two never meet (and their scopes differ).
 *
 * A context message's form is its role and what a client keeps stable:
 *   user       its text (a string content, or its text blocks, trimmed; the two
 *              forms are the same), each tool_result's text and error
 *              flag, other blocks by their `source` or type: never ids or
 *              cache_control markers, which clients move between requests;
 *   assistant  its tool_use blocks (name + canonical input), or its text
 *              when it has none: never thinking (clients drop it, or demote
 *              it to a text block, which is why text does not count when the
 *              turn has calls).
 * The system prompt is a top-level field, never a message: it does not count.
 */
import { resultText } from '../reasoning/degrade.js';
import { canonicalArguments, canonicalJson, isRecord } from '../reasoning/json.js';
import { sha256, type TurnIdentity } from '../reasoning/match.js';
import { blocksOf, isBlockOfType, isToolUse, textOf, toolUseId, toolUseName } from './types.js';

/** The turn's identity, or undefined when it has nothing to be found by. */
export function anthropicTurnIdentity(turn: unknown): TurnIdentity | undefined {
  if (!identifiableTurn(turn)) return undefined;
  return { turn: sha256(canonicalTurn(turn)), ids: toolUseIds(turn) };
}

/** The tool_use ids of a turn, in order, without repeats or empty ones. */
export function toolUseIds(turn: unknown): string[] {
  // A Set: a list scan per call made a turn of n calls cost n² (60,000 calls: seconds).
  const ids = new Set<string>();
  for (const block of blocksOf(turn)) {
    if (!isToolUse(block)) continue;
    const id = toolUseId(block);
    if (id !== '') ids.add(id);
  }
  return [...ids];
}

/** A turn with neither tool_use nor text has no identity of its own: it is neither learned nor looked up. */
export function identifiableTurn(turn: unknown): boolean {
  if (!isRecord(turn)) return false;
  const content = turn['content'];
  if (typeof content === 'string') return content.trim() !== '';
  return blocksOf(turn).some((block) => isToolUse(block) || (textOf(block) ?? '').trim() !== '');
}

/** The canonical form described in the header (exported for tests). */
export function canonicalTurn(turn: unknown): string {
  const content = isRecord(turn) ? turn['content'] : undefined;
  const texts: string[] = [];
  const tools: { input: string; name: string }[] = [];
  if (typeof content === 'string') {
    if (content.trim() !== '') texts.push(content.trim());
  } else {
    for (const block of blocksOf(turn)) {
      if (isToolUse(block)) {
        tools.push({ input: canonicalInput(block['input']), name: toolUseName(block) });
        continue;
      }
      const text = textOf(block)?.trim() ?? '';
      if (text !== '') texts.push(text);
    }
  }
  return JSON.stringify({ text: texts.join('\n'), tool_use: tools });
}

/** A tool_use input in canonical JSON (see the header). */
export function canonicalInput(input: unknown): string {
  if (input === undefined || input === null) return '{}';
  if (typeof input === 'string') {
    const canonical = canonicalArguments(input);
    return canonical === '' ? '{}' : canonical;
  }
  return canonicalJson(input);
}

/** A message's context form (see the header). */
export function anthropicContextForm(message: unknown): string | undefined {
  if (!isRecord(message)) return JSON.stringify(['?', canonicalJson(message)]);
  const role = typeof message['role'] === 'string' ? message['role'] : '';
  const original = message['content'];
  // A string is the same as one text block (clients switch forms, e.g. to add cache_control).
  const content = typeof original === 'string' ? [{ type: 'text', text: original }] : original;
  if (!Array.isArray(content)) return JSON.stringify([role, content === undefined || content === null ? '' : canonicalJson(content)]);
  if (role === 'assistant') {
    const calls = content.filter(isToolUse).map((block) => [toolUseName(block), canonicalInput(block['input'])]);
    if (calls.length > 0) return JSON.stringify([role, calls]);
  }
  const parts: unknown[] = [];
  for (const block of content) {
    if (isBlockOfType(block, 'thinking') || isBlockOfType(block, 'redacted_thinking')) continue;
    const text = textOf(block);
    if (text !== undefined) {
      if (text.trim() !== '') parts.push(text.trim());
    } else if (isBlockOfType(block, 'tool_result')) {
      parts.push(['tool_result', block['is_error'] === true, block['content'] === undefined ? '' : resultText(block['content']).trim()]);
    } else if (isRecord(block)) {
      parts.push([String(block['type']), block['source'] === undefined ? '' : canonicalJson(block['source'])]);
    } else {
      parts.push(canonicalJson(block));
    }
  }
  return JSON.stringify([role, parts]);
}
