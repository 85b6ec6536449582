/**
 * The request side of the Anthropic dialect (`POST /anthropic/v1/messages`):
 * what an assistant turn of the Messages API is to the turn loop
 * (../reasoning/turns.ts), which puts remembered thinking blocks back into
 * turns that have tool_use blocks but no thinking, and degrades (degrade.ts)
 * those whose thinking is not remembered, so MiMo does not answer its 400
 * "The reasoning_content in the thinking mode must be passed back".
 *
 * A turn counts as having thinking when it has a thinking block with
 * non-whitespace text (or a non-empty redacted_thinking block): such a turn
 * is never touched, and is reported in `learned`. A text block is not
 * thinking, even when it holds the thinking: some clients send MiMo's
 * unsigned thinking back as a `text` block before the tool_use, which MiMo
 * rejects; when a text block before the first tool_use equals a remembered
 * thinking text, it is that thinking demoted, and it is restored (the text
 * copy goes, the thinking block comes back).
 *
 * Put back = the remembered blocks become the turn's first blocks, with their
 * signatures ('' when MiMo gave none); empty thinking blocks the client left
 * there are dropped. Turns whose content is a string have no tool_use and are
 * left alone, unless `plainTurns` asks for every assistant turn.
 */
import { isRecord } from '../reasoning/json.js';
import type { ReasoningLookup, RewriteOutcome, RewritePolicy } from '../reasoning/rewrite.js';
import { rewriteTurns, type Alternative, type Edits, type TurnDialect } from '../reasoning/turns.js';
import { flattenToolUse, isEmptyThinking, thinkingBlock, withoutEmptyThinking } from './degrade.js';
import { anthropicContextForm, anthropicTurnIdentity } from './fingerprint.js';
import { decodeThinking, encodeThinking, hasOwnThinking, isToolUse, textOf, thinkingBlocksOf, toolUseName, type ThinkingBlock } from './types.js';

/** An assistant turn: its message, and its content as blocks (a string content as one text block). */
export interface AnthropicTurn {
  message: Record<string, unknown>;
  content: unknown[];
}

export const anthropicTurns: TurnDialect<AnthropicTurn, ThinkingBlock[]> = {
  contextForm: anthropicContextForm,
  turn(message, plainTurns) {
    const content = message['content'];
    if (Array.isArray(content)) return { message, content };
    if (plainTurns && typeof content === 'string' && content.trim() !== '') return { message, content: [{ type: 'text', text: content }] };
    return undefined;
  },
  ownReasoning: ({ content }) => (hasOwnThinking(content) ? encodeThinking(thinkingBlocksOf(content)) : undefined),
  identity: ({ content }) => anthropicTurnIdentity({ content }),
  toolNames: ({ content }) => content.filter(isToolUse).map(toolUseName),
  decode: decodeThinking,
  alternative: ({ content }) => demotedThinking(content),
  putBack: ({ message, content }, found) => ({ ...message, content: restore(content, found) }),
  withPlaceholder: ({ message, content }, text) => ({ ...message, content: [thinkingBlock(text), ...withoutEmptyThinking(content)] }),
  flatten(messages, index, step, plainTurns) {
    const flat = flattenToolUse(messages, index, step, plainTurns);
    const edits: Edits = new Map();
    edits.set(index, [withContent(messages[index], flat.assistant), ...(flat.trailing ? [flat.trailing] : [])]);
    for (const [at, blocks] of flat.users) edits.set(at, [withContent(messages[at], blocks)]);
    return edits;
  },
};

export function rewriteMessagesRequest(body: Buffer, lookup: ReasoningLookup, policy: RewritePolicy): RewriteOutcome {
  return rewriteTurns(body, lookup, policy, anthropicTurns);
}

/**
 * In case the turn's first text block before its tool_use is its thinking
 * demoted: the turn without that block, where a value found is accepted only
 * when the block's text is the thinking found.
 */
function demotedThinking(content: readonly unknown[]): Alternative<ThinkingBlock[]> | undefined {
  const candidate = content.findIndex((block) => isToolUse(block) || (textOf(block) ?? '').trim() !== '');
  const demoted = candidate < 0 ? undefined : textOf(content[candidate]);
  if (demoted === undefined || !content.some(isToolUse)) return undefined;
  const identity = anthropicTurnIdentity({ content: content.filter((_, i) => i !== candidate) });
  if (identity === undefined) return undefined;
  return {
    identity,
    accept(value) {
      const found = decodeThinking(value);
      return found !== undefined && thinkingTexts(found).has(demoted.trim()) ? found : undefined;
    },
  };
}

/** The turn's content with the remembered blocks first, and no demoted copy or empty thinking left. */
function restore(content: readonly unknown[], found: readonly ThinkingBlock[]): unknown[] {
  const texts = thinkingTexts(found);
  const firstToolUse = content.findIndex(isToolUse);
  const rest = content.filter((block, at) => {
    if (isEmptyThinking(block)) return false;
    const text = textOf(block);
    // Only a copy before the first tool_use is the demoted thinking; a plain turn's text is its own.
    return text === undefined || firstToolUse < 0 || at > firstToolUse || !texts.has(text.trim());
  });
  return [...found.map((block) => ({ ...block })), ...rest];
}

function thinkingTexts(blocks: readonly ThinkingBlock[]): Set<string> {
  const texts = new Set<string>();
  for (const block of blocks) if (block.type === 'thinking') texts.add(block.thinking.trim());
  return texts;
}

/** A message with new content, everything else as it came. */
function withContent(message: unknown, content: unknown[]): unknown {
  return isRecord(message) ? { ...message, content } : message;
}
