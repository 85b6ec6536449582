/**
 * What to put in place of thinking that was not kept, for an Anthropic
 * assistant turn MiMo would otherwise refuse; the counterpart of
 * ../chat/degrade.ts, with the wording of ../reasoning/degrade.ts:
 *
 *   placeholder  an unsigned thinking block specific to its turn (the step's
 *                position and the tools it used, so a constant text never
 *                repeats across turns).
 *   flatten      the tool exchange becomes plain text: the turn loses its
 *                tool_use blocks (keeping its own text, or a short neutral
 *                line so roles still alternate), and each matching tool_result
 *                block in the following user turn(s) becomes a text block
 *                naming the tool, its input and its result. The call
 *                descriptions go in the user's turn, never the assistant's
 *                ("[Called X]" in assistant text teaches a model to write tool
 *                calls as text), and no tool_result is left without its tool_use.
 * Pure: functions over the parsed request's plain objects; they return new
 * content arrays and leave their input as it was.
 */
import { flattenedPlaceholder, resultText } from '../reasoning/degrade.js';
import { isRecord } from '../reasoning/json.js';
import { canonicalInput } from './fingerprint.js';
import { blocksOf, isBlockOfType, isToolUse, textOf, thinkingOf, toolUseName } from './types.js';

/** An unsigned thinking block: MiMo's own carry an empty signature, and it accepts one sent back without. */
export function thinkingBlock(thinking: string): { type: 'thinking'; thinking: string; signature: string } {
  return { type: 'thinking', thinking, signature: '' };
}

/** A block list without thinking blocks that carry nothing (they would be sent next to the real ones). */
export function withoutEmptyThinking(blocks: readonly unknown[]): unknown[] {
  return blocks.filter((block) => !isEmptyThinking(block));
}

/** A thinking or redacted_thinking block with nothing in it. */
export function isEmptyThinking(block: unknown): boolean {
  return (isBlockOfType(block, 'thinking') || isBlockOfType(block, 'redacted_thinking')) && thinkingOf(block) === undefined;
}

export interface FlattenedTurn {
  /** The assistant turn's new content. */
  assistant: unknown[];
  /** New content for the user turns that held its results, by message index. */
  users: Map<number, unknown[]>;
  /** Calls with no result and no later user turn to state them in: a user turn to append after the turn. */
  trailing: Record<string, unknown> | undefined;
}

/**
 * Flattens the tool exchange of the assistant turn at `index`: its results
 * are the tool_result blocks of the user turns after it, up to the next
 * assistant turn, whose tool_use_id is one of its tool_use ids.
 * `plainTurns`: the flattened turn also gets a placeholder thinking block.
 */
export function flattenToolUse(messages: readonly unknown[], index: number, step: number, plainTurns: boolean): FlattenedTurn {
  const turn = messages[index];
  const content = blocksOf(turn);
  const toolUses = content.filter(isToolUse);
  // Keyed by the raw id: a malformed (say numeric) id still pairs with its result, so none is orphaned.
  const byId = new Map<unknown, unknown>();
  for (const block of toolUses) {
    const id = block['id'];
    if (id !== undefined && id !== null && !byId.has(id)) byId.set(id, block);
  }

  const answered = new Set<unknown>();
  const users = new Map<number, unknown[]>();
  let firstUser: number | undefined;
  for (let i = index + 1; i < messages.length; i++) {
    const next = messages[i];
    if (!isRecord(next)) continue;
    if (next['role'] === 'assistant') break;
    if (next['role'] !== 'user') continue;
    firstUser ??= i;
    const blocks = next['content'];
    if (!Array.isArray(blocks)) continue;
    let changed = false;
    const replaced = blocks.map((block) => {
      if (!isBlockOfType(block, 'tool_result')) return block;
      const use = byId.get(block['tool_use_id']);
      if (use === undefined) return block;
      answered.add(block['tool_use_id']);
      changed = true;
      return { type: 'text', text: describeResult(use, block) };
    });
    if (changed) users.set(i, replaced);
  }

  // Calls nobody answered are stated too, first in the following user turn.
  const unanswered = toolUses.filter((block) => !answered.has(block['id']));
  const notes = unanswered.map((block) => ({ type: 'text', text: `${describeCall(block)}\nNo result was recorded.` }));
  let trailing: Record<string, unknown> | undefined;
  if (notes.length > 0) {
    if (firstUser === undefined) trailing = { role: 'user', content: notes };
    else {
      const target = messages[firstUser];
      const current = users.get(firstUser) ?? (isRecord(target) ? target['content'] : undefined);
      const existing = Array.isArray(current) ? current : typeof current === 'string' && current !== '' ? [{ type: 'text', text: current }] : [];
      users.set(firstUser, [...notes, ...existing]);
    }
  }

  const kept = withoutEmptyThinking(content.filter((block) => !isToolUse(block)));
  const hasText = kept.some((block) => (textOf(block) ?? '').trim() !== '');
  const assistant: unknown[] = hasText ? kept : [...kept, { type: 'text', text: `(Step ${step} used tools; the calls and their results follow as text.)` }];
  if (plainTurns && !assistant.some((block) => thinkingOf(block) !== undefined)) {
    assistant.unshift(thinkingBlock(flattenedPlaceholder(step, toolUses.map(toolUseName))));
  }
  return { assistant, users, trailing };
}

function describeCall(use: unknown): string {
  const name = toolUseName(use) || 'an unnamed tool';
  const input = isRecord(use) ? canonicalInput(use['input']) : '{}';
  return `The tool ${name} was called with input ${input}.`;
}

function describeResult(use: unknown, result: Record<string, unknown>): string {
  const failed = result['is_error'] === true ? ' (the tool reported an error)' : '';
  const content = result['content'];
  const text = content === undefined ? '(empty)' : resultText(content);
  return `${describeCall(use)}\nResult${failed}:\n${text}`;
}
