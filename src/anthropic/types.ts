/**
 * The minimal Anthropic Messages shapes (`POST /anthropic/v1/messages`) this
 * proxy reads and writes, and the codec of what it remembers per assistant
 * turn. Loose on purpose, like chat/types.ts: every field may be missing or
 * of the wrong type, and unknown fields are kept as they came.
 *
 * The cache stores strings (one per turn). A turn's thinking is one or more
 * blocks, each with a signature (MiMo's is empty or absent; a real one must
 * survive), so the stored string is the JSON
 *   {"anthropic_thinking":[{"type":"thinking","thinking":"…","signature":"…"}, ...]}
 * holding the turn's thinking and redacted_thinking blocks in order, exactly as
 * they are put back. Values stored by the chat dialect never reach this one:
 * the cache scopes the two apart.
 */
import { isRecord } from '../reasoning/json.js';
import { hasReasoning } from '../reasoning/match.js';

/** One block of an array-form `content` (text, thinking, tool_use, tool_result, image, ...). */
export interface ContentBlock {
  type?: unknown;
  [field: string]: unknown;
}

export interface AnthropicMessage {
  role?: unknown;
  /** A string (text only) or an array of blocks. */
  content?: unknown;
  [field: string]: unknown;
}

/** A thinking block as remembered and put back. */
export type ThinkingBlock = { type: 'thinking'; thinking: string; signature: string } | { type: 'redacted_thinking'; data: string };

/** The field that marks an encoded value as ours (see the header). */
const CODEC_FIELD = 'anthropic_thinking';
/** More thinking blocks than this in one turn is not a turn we know: the rest are dropped. */
export const MAX_THINKING_BLOCKS = 256;

/** The blocks of a turn's content, or [] when the content is a string or anything else. */
export function blocksOf(turn: unknown): unknown[] {
  if (!isRecord(turn)) return [];
  const content = turn['content'];
  return Array.isArray(content) ? content : [];
}

export function isBlockOfType(block: unknown, type: string): block is ContentBlock {
  return isRecord(block) && block['type'] === type;
}

export function isToolUse(block: unknown): block is ContentBlock {
  return isBlockOfType(block, 'tool_use');
}

/** A tool_use block's id, or '' when it has none. */
export function toolUseId(block: unknown): string {
  if (!isRecord(block)) return '';
  const id = block['id'];
  return typeof id === 'string' ? id : '';
}

/** A tool_use block's name, trimmed, or '' when it has none. */
export function toolUseName(block: unknown): string {
  if (!isRecord(block)) return '';
  const name = block['name'];
  return typeof name === 'string' ? name.trim() : '';
}

/** A text block's text, or undefined when the block is not a text block with a string text. */
export function textOf(block: unknown): string | undefined {
  if (!isBlockOfType(block, 'text')) return undefined;
  const text = block['text'];
  return typeof text === 'string' ? text : undefined;
}

/**
 * A thinking block worth keeping, normalised (signature '' when absent), or
 * undefined: a thinking block whose text is only whitespace counts as absent,
 * as `reasoning_content: ''` does on the chat surface; a redacted_thinking
 * block counts when its data is non-empty.
 */
export function thinkingOf(block: unknown): ThinkingBlock | undefined {
  if (!isRecord(block)) return undefined;
  if (block['type'] === 'thinking') {
    const thinking = block['thinking'];
    if (!hasReasoning(thinking)) return undefined;
    const signature = block['signature'];
    return { type: 'thinking', thinking, signature: typeof signature === 'string' ? signature : '' };
  }
  if (block['type'] === 'redacted_thinking') {
    const data = block['data'];
    if (typeof data !== 'string' || data === '') return undefined;
    return { type: 'redacted_thinking', data };
  }
  return undefined;
}

/** The thinking blocks worth keeping in a list of blocks, in order (bounded). */
export function thinkingBlocksOf(blocks: readonly unknown[]): ThinkingBlock[] {
  const found: ThinkingBlock[] = [];
  for (const block of blocks) {
    const thinking = thinkingOf(block);
    if (thinking) found.push(thinking);
    if (found.length >= MAX_THINKING_BLOCKS) break;
  }
  return found;
}

/** True when the blocks carry thinking of their own (what the client sent is then never touched). */
export function hasOwnThinking(blocks: readonly unknown[]): boolean {
  return blocks.some((block) => thinkingOf(block) !== undefined);
}

/** The string the cache stores for a turn's thinking blocks. */
export function encodeThinking(blocks: readonly ThinkingBlock[]): string {
  const kept = blocks.slice(0, MAX_THINKING_BLOCKS).map((block) =>
    block.type === 'thinking' ? { type: 'thinking', thinking: block.thinking, signature: block.signature } : { type: 'redacted_thinking', data: block.data },
  );
  return JSON.stringify({ [CODEC_FIELD]: kept });
}

/**
 * The thinking blocks a stored string stands for, or undefined when it holds
 * none worth putting back. Only this dialect's encoding is read: the cache
 * scopes the two dialects apart (../reasoning/exchange.ts), so a string that
 * is not our encoding is not thinking this dialect learned.
 */
export function decodeThinking(value: string): ThinkingBlock[] | undefined {
  if (typeof value !== 'string') return undefined;
  const encoded = parseEncoded(value);
  if (encoded === undefined) return undefined;
  const blocks = thinkingBlocksOf(encoded);
  return blocks.length > 0 ? blocks : undefined;
}

/** The block list of an encoded value, or undefined when the string is not our encoding. */
function parseEncoded(value: string): unknown[] | undefined {
  if (!value.startsWith(`{"${CODEC_FIELD}":`)) return undefined;
  try {
    const parsed: unknown = JSON.parse(value);
    if (!isRecord(parsed)) return undefined;
    const list = parsed[CODEC_FIELD];
    return Array.isArray(list) ? list : undefined;
  } catch {
    return undefined;
  }
}
