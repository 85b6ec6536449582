/**
 * Cache keys for one Anthropic assistant turn, the counterpart of
 * ../fingerprint.ts for the Messages API. Tried in this order:
 *   `id:<tool_use id>`  one per tool_use block (MiMo issues `toolu_…` ids,
 *                       the chat surface `call_…`, so one namespace is safe);
 *   `afp:<sha256 hex>`  the turn's fingerprint, for clients that rewrite ids
 *                       or plain turns that have none (`afp`, not `fp`: the
 *                       canonical forms differ, so they must not meet).
 *
 * The fingerprint is the SHA-256 of the canonical form, the JSON
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
 * look up), nor are images or any other block.
 */
import { createHash } from 'node:crypto';
import { isRecord } from '../chat/types.js';
import { canonicalArguments, canonicalJson, toolCallKey } from '../fingerprint.js';
import { blocksOf, isToolUse, textOf, toolUseId, toolUseName } from './types.js';

/** Every tool_use id key (in order, without repeats), then the fingerprint key. */
export function anthropicMessageKeys(turn: unknown): string[] {
  return [...toolUseKeys(turn), anthropicFingerprintKey(turn)];
}

export function anthropicFingerprintKey(turn: unknown): string {
  return `afp:${createHash('sha256').update(canonicalTurn(turn)).digest('hex')}`;
}

/** The `id:` keys of a turn alone, cheap: no hashing. */
export function toolUseKeys(turn: unknown): string[] {
  const keys: string[] = [];
  for (const block of blocksOf(turn)) {
    if (!isToolUse(block)) continue;
    const id = toolUseId(block);
    if (id === '') continue;
    const key = toolCallKey(id);
    if (!keys.includes(key)) keys.push(key);
  }
  return keys;
}

/** A turn with neither tool_use nor text has no key of its own: it is neither learned nor looked up. */
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
