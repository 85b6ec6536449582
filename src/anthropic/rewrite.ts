/**
 * The request side of the Anthropic surface (`POST /anthropic/v1/messages`):
 * puts remembered thinking blocks back into assistant turns that have
 * tool_use blocks but no thinking, and degrades (degrade.ts) those whose
 * thinking is not remembered, so MiMo does not answer its 400 "The
 * reasoning_content in the thinking mode must be passed back". The
 * counterpart of ../rewrite.ts, with the same policy and outcome types.
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
 *
 * No change -> the very Buffer it was given. Pure, and never throws.
 */
import { plainPlaceholder, toolCallPlaceholder } from '../reasoning/degrade.js';
import { isRecord } from '../reasoning/json.js';
import { ContextWindows, lookupKeys, type Learned } from '../reasoning/match.js';
import { neverThrowing, parseMessages, thinkingDisabled, type ReasoningLookup, type RewriteChanges, type RewriteOutcome, type RewritePolicy } from '../reasoning/rewrite.js';
import { flattenToolUse, isEmptyThinking, thinkingBlock, withoutEmptyThinking } from './degrade.js';
import { anthropicContextForm, anthropicTurnIdentity } from './fingerprint.js';
import { decodeThinking, encodeThinking, hasOwnThinking, isToolUse, textOf, thinkingBlocksOf, toolUseName, type ThinkingBlock } from './types.js';

export function rewriteMessagesRequest(body: Buffer, lookup: ReasoningLookup, policy: RewritePolicy): RewriteOutcome {
  return neverThrowing(() => rewrite(body, lookup, policy));
}

function rewrite(body: Buffer, lookup: ReasoningLookup, policy: RewritePolicy): RewriteOutcome {
  const parsed = parseMessages(body);
  if ('kind' in parsed) return parsed;
  const { request, messages } = parsed;
  const windows = new ContextWindows(messages, anthropicContextForm);

  const disabled = thinkingDisabled(request);
  const plainTurns = policy.plainTurns === true;
  const changes: RewriteChanges = { injected: 0, placeholders: 0, flattened: 0, missing: 0 };
  const learned: Learned[] = [];
  /** User turns appended after a flattened turn that had no user turn after it: index -> turn. */
  const appended = new Map<number, Record<string, unknown>>();
  let step = 0;

  for (let i = 0; i < messages.length; i++) {
    const message: unknown = messages[i];
    if (!isRecord(message) || message['role'] !== 'assistant') continue;
    step++;
    const original = message['content'];
    let content: unknown[];
    if (Array.isArray(original)) content = original;
    else if (plainTurns && typeof original === 'string' && original.trim() !== '') content = [{ type: 'text', text: original }];
    else continue;

    if (hasOwnThinking(content)) {
      const identity = anthropicTurnIdentity(message);
      if (identity) learned.push({ identity, reasoning: encodeThinking(thinkingBlocksOf(content)), context: windows.before(i), upstreamIds: false });
      continue;
    }

    // A plain turn is looked up only when the retry asks for plain turns: its fingerprint is
    // its text alone, and a short reply would find another conversation's thinking.
    const toolUses = content.filter(isToolUse);
    if (toolUses.length === 0 && !plainTurns) continue;

    const found = find(content, lookup, () => windows.before(i));
    // Later turns' contexts are the messages as the client sent them, not as changed here.
    windows.keep(i);
    if (found !== undefined) {
      message['content'] = restore(content, found);
      changes.injected++;
      continue;
    }

    changes.missing++;
    if (disabled) continue;
    if (toolUses.length === 0) {
      message['content'] = [thinkingBlock(plainPlaceholder(step)), ...withoutEmptyThinking(content)];
      changes.placeholders++;
    } else if (policy.degrade === 'placeholder') {
      message['content'] = [thinkingBlock(toolCallPlaceholder(step, toolUses.map(toolUseName))), ...withoutEmptyThinking(content)];
      changes.placeholders++;
    } else {
      const flat = flattenToolUse(messages, i, step, plainTurns);
      message['content'] = flat.assistant;
      for (const [index, blocks] of flat.users) {
        const user = messages[index];
        windows.keep(index);
        if (isRecord(user)) user['content'] = blocks;
      }
      if (flat.trailing) appended.set(i, flat.trailing);
      changes.flattened++;
    }
  }

  const context = windows.end();
  if (changes.injected + changes.placeholders + changes.flattened === 0) {
    return { kind: 'unchanged', body, learned, context, changes };
  }
  if (appended.size > 0) {
    const next: unknown[] = [];
    for (let i = 0; i < messages.length; i++) {
      next.push(messages[i]);
      const extra = appended.get(i);
      if (extra) next.push(extra);
    }
    request['messages'] = next;
  }
  return { kind: 'rewritten', body: Buffer.from(JSON.stringify(request), 'utf8'), learned, context, changes };
}

/**
 * The remembered thinking of a turn in its conversation (../match.ts), then,
 * in case its first text block before the tool_use is the thinking demoted,
 * that of the turn without the block (accepted only when the block's text is
 * the thinking found).
 */
function find(content: unknown[], lookup: ReasoningLookup, context: () => string): ThinkingBlock[] | undefined {
  const identity = anthropicTurnIdentity({ content });
  if (identity === undefined) return undefined;
  const found = safeLookup(lookup, lookupKeys(identity, context));
  if (found !== undefined) return found;
  const candidate = content.findIndex((block) => isToolUse(block) || (textOf(block) ?? '').trim() !== '');
  const demoted = candidate < 0 ? undefined : textOf(content[candidate]);
  if (demoted === undefined || !content.some(isToolUse)) return undefined;
  const rest = anthropicTurnIdentity({ content: content.filter((_, i) => i !== candidate) });
  if (rest === undefined) return undefined;
  const restored = safeLookup(lookup, lookupKeys(rest, context));
  return restored !== undefined && thinkingTexts(restored).has(demoted.trim()) ? restored : undefined;
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

function safeLookup(lookup: ReasoningLookup, keys: Iterable<string>): ThinkingBlock[] | undefined {
  try {
    const value = lookup(keys);
    return typeof value === 'string' ? decodeThinking(value) : undefined;
  } catch {
    return undefined;
  }
}
