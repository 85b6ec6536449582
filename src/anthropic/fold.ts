/**
 * The read-only taps on Anthropic Messages responses, the counterparts of
 * ../chat/fold.ts:
 *
 *   streamed  the shared SSE plumbing (../reasoning/tap/sse.ts) feeds each
 *             parsed event to a fold into the one assistant turn:
 *               message_start           the turn begins (content usually []);
 *               content_block_start     a block at `index`: thinking | text |
 *                                       tool_use (id, name, input) | redacted_thinking;
 *               content_block_delta     thinking_delta (delta.thinking),
 *                                       signature_delta (delta.signature),
 *                                       text_delta (delta.text), input_json_delta
 *                                       (delta.partial_json, appended);
 *               message_delta           stop_reason;
 *               message_stop            the turn is complete.
 *             MiMo has at times streamed OpenAI-style reasoning instead of
 *             thinking blocks: `delta.reasoning_content` in a content_block_delta,
 *             or a `choices[].delta.reasoning_content` data line. Those pieces are
 *             kept too and used when the turn has no thinking block of its own.
 *   JSON      `{type: 'message', role: 'assistant', content: [blocks], stop_reason}`.
 *
 * Complete only with message_stop (streamed) or a whole message body (JSON);
 * anything else stores nothing: a cut-off stream, an `error` event or object,
 * data that is not JSON, a line or body past its bound. Never throws.
 */
import type { ResponseTap } from '../reasoning/dialect.js';
import { isRecord } from '../reasoning/json.js';
import { hasReasoning, type TurnReasoning } from '../reasoning/match.js';
import { createBodyTap, successBody } from '../reasoning/tap/body.js';
import { createFoldingSseTap, DEFAULT_MAX_FOLDED_CHARS, type SseTapOptions } from '../reasoning/tap/sse.js';
import { anthropicTurnIdentity } from './fingerprint.js';
import { thinkingBlocksOf, encodeThinking, type AnthropicMessage, type ThinkingBlock } from './types.js';

/** More content blocks than this in one turn is not a turn we know. */
export const MAX_BLOCKS = 1024;

interface BlockState {
  type: string;
  text: string;
  thinking: string;
  signature: string;
  data: string;
  id: string;
  name: string;
  /** The input given in content_block_start (usually {}), used when no partial JSON came. */
  input: unknown;
  partialJson: string;
}

export interface AnthropicFold {
  /** One parsed event's data. Returns false when it poisons the fold (error, not an object, a second message, over a bound). */
  add(event: unknown): boolean;
  /** True once message_stop was seen. */
  stopped(): boolean;
  /** The folded turn: content blocks in index order. */
  turn(): AnthropicMessage;
  /** OpenAI-style reasoning_content pieces seen, joined. */
  looseReasoning(): string;
}

export function createAnthropicFold(options: { maxFoldedChars?: number } = {}): AnthropicFold {
  const maxChars = options.maxFoldedChars ?? DEFAULT_MAX_FOLDED_CHARS;
  const blocks = new Map<number, BlockState>();
  let role = 'assistant';
  let started = false;
  let stop = false;
  let stopReason: string | undefined;
  let loose = '';
  let chars = 0;

  const newBlock = (type: string): BlockState => ({ type, text: '', thinking: '', signature: '', data: '', id: '', name: '', input: undefined, partialJson: '' });

  /** Sets the block at index from a whole block (content_block_start, or message_start content). */
  const startBlock = (index: number, source: Record<string, unknown>): boolean => {
    if (!blocks.has(index) && blocks.size >= MAX_BLOCKS) return false;
    const type = typeof source['type'] === 'string' ? source['type'] : '';
    const block = newBlock(type);
    const str = (field: string): string => {
      const value = source[field];
      if (typeof value !== 'string') return '';
      chars += value.length;
      return value;
    };
    block.text = str('text');
    block.thinking = str('thinking');
    block.signature = str('signature');
    block.data = str('data');
    block.id = str('id');
    block.name = str('name');
    block.input = source['input'];
    blocks.set(index, block);
    return true;
  };

  /** The block a delta without a content_block_start goes to, typed by what the delta carries. */
  const blockFor = (index: number, delta: Record<string, unknown>): BlockState | undefined => {
    const known = blocks.get(index);
    if (known) return known;
    if (blocks.size >= MAX_BLOCKS) return undefined;
    const type =
      typeof delta['thinking'] === 'string' || typeof delta['signature'] === 'string'
        ? 'thinking'
        : typeof delta['partial_json'] === 'string'
          ? 'tool_use'
          : 'text';
    const block = newBlock(type);
    blocks.set(index, block);
    return block;
  };

  const addDelta = (index: number, delta: Record<string, unknown>): boolean => {
    const reasoning = delta['reasoning_content'];
    if (typeof reasoning === 'string') {
      loose += reasoning;
      chars += reasoning.length;
    }
    const pieces: [string, 'thinking' | 'signature' | 'text' | 'partialJson'][] = [
      ['thinking', 'thinking'],
      ['signature', 'signature'],
      ['text', 'text'],
      ['partial_json', 'partialJson'],
    ];
    if (!pieces.some(([field]) => typeof delta[field] === 'string')) return true;
    const block = blockFor(index, delta);
    if (!block) return false;
    for (const [field, into] of pieces) {
      const piece = delta[field];
      if (typeof piece !== 'string') continue;
      block[into] += piece;
      chars += piece.length;
    }
    return true;
  };

  /** An OpenAI-style chunk: only its reasoning is taken (the turn's shape comes from the Anthropic events). */
  const addChoices = (choices: unknown[]): void => {
    for (const choice of choices) {
      if (!isRecord(choice)) continue;
      const delta = isRecord(choice['delta']) ? choice['delta'] : isRecord(choice['message']) ? choice['message'] : undefined;
      const reasoning = delta?.['reasoning_content'];
      if (typeof reasoning === 'string') {
        loose += reasoning;
        chars += reasoning.length;
      }
    }
  };

  const indexOf = (event: Record<string, unknown>): number => {
    const index = event['index'];
    return typeof index === 'number' && Number.isInteger(index) && index >= 0 ? index : blocks.size;
  };

  const dispatch = (event: Record<string, unknown>): boolean => {
    if (event['error'] !== undefined && event['error'] !== null) return false;
    const choices = event['choices'];
    if (Array.isArray(choices)) {
      addChoices(choices);
      return true;
    }
    switch (event['type']) {
      case 'error':
        return false;
      case 'message_start': {
        // One response is one message: a second start is not a stream we know.
        if (started) return false;
        started = true;
        const message = event['message'];
        if (!isRecord(message)) return true;
        if (typeof message['role'] === 'string') role = message['role'];
        const content = message['content'];
        if (Array.isArray(content)) {
          for (let i = 0; i < content.length; i++) {
            const block = content[i];
            if (isRecord(block) && !startBlock(i, block)) return false;
          }
        }
        return true;
      }
      case 'content_block_start': {
        const block = event['content_block'];
        return isRecord(block) ? startBlock(indexOf(event), block) : true;
      }
      case 'content_block_delta': {
        const delta = event['delta'];
        return isRecord(delta) ? addDelta(indexOf(event), delta) : true;
      }
      case 'message_delta': {
        const delta = event['delta'];
        if (isRecord(delta) && typeof delta['stop_reason'] === 'string') stopReason = delta['stop_reason'];
        return true;
      }
      case 'message_stop':
        stop = true;
        return true;
      default:
        // ping, content_block_stop, and event types added later: nothing to fold.
        return true;
    }
  };

  return {
    add(event) {
      if (!isRecord(event)) return false;
      return dispatch(event) && chars <= maxChars;
    },
    stopped: () => stop,
    turn() {
      const content = [...blocks.entries()].sort((a, b) => a[0] - b[0]).map(([, block]) => toBlock(block));
      const turn: AnthropicMessage = { role, content };
      if (stopReason !== undefined) turn['stop_reason'] = stopReason;
      return turn;
    },
    looseReasoning: () => loose,
  };
}

function toBlock(block: BlockState): Record<string, unknown> {
  switch (block.type) {
    case 'thinking':
      return { type: 'thinking', thinking: block.thinking, signature: block.signature };
    case 'redacted_thinking':
      return { type: 'redacted_thinking', data: block.data };
    case 'text':
      return { type: 'text', text: block.text };
    case 'tool_use':
      return { type: 'tool_use', id: block.id, name: block.name, input: toolInput(block) };
    default:
      return { type: block.type };
  }
}

/** The streamed input: the partial JSON parsed; none -> the start's input (usually {}); unparseable -> the raw string. */
function toolInput(block: BlockState): unknown {
  if (block.partialJson.trim() === '') return isRecord(block.input) ? block.input : {};
  try {
    return JSON.parse(block.partialJson) as unknown;
  } catch {
    return block.partialJson;
  }
}

/**
 * What to remember for one complete assistant turn: its thinking blocks, or
 * when it has none the OpenAI-style reasoning it came with (one unsigned block).
 * Undefined when it has no thinking or no key of its own.
 */
export function learnedFromTurn(turn: AnthropicMessage, looseReasoning = ''): TurnReasoning | undefined {
  const identity = isRecord(turn) ? anthropicTurnIdentity(turn) : undefined;
  if (identity === undefined) return undefined;
  const content = Array.isArray(turn['content']) ? turn['content'] : [];
  let thinking: ThinkingBlock[] = thinkingBlocksOf(content);
  if (thinking.length === 0 && hasReasoning(looseReasoning)) thinking = [{ type: 'thinking', thinking: looseReasoning, signature: '' }];
  if (thinking.length === 0) return undefined;
  return { identity, reasoning: encodeThinking(thinking) };
}

export function createAnthropicSseTap(options: SseTapOptions = {}): ResponseTap {
  const fold = createAnthropicFold({ maxFoldedChars: options.maxFoldedChars });
  return createFoldingSseTap(
    {
      add: (data) => fold.add(data),
      // An OpenAI-style terminator in a mixed stream says nothing about the Anthropic message.
      sawDone: () => undefined,
      stopped: () => fold.stopped(),
      finish: () => {
        if (!fold.stopped()) return undefined;
        const entry = learnedFromTurn(fold.turn(), fold.looseReasoning());
        return entry ? [entry] : [];
      },
    },
    options,
  );
}

export function createAnthropicJsonTap(options: { maxBytes?: number } = {}): ResponseTap {
  return createBodyTap(learnedFromMessageBody, options.maxBytes);
}

/** Learned entries from a whole Messages response body; undefined when it is not a message (error, invalid JSON). */
export function learnedFromMessageBody(body: Uint8Array): TurnReasoning[] | undefined {
  const parsed = successBody(body);
  if (!parsed) return undefined;
  if (!Array.isArray(parsed['content'])) return undefined;
  if (parsed['role'] !== undefined && parsed['role'] !== 'assistant') return undefined;
  const loose = typeof parsed['reasoning_content'] === 'string' ? parsed['reasoning_content'] : '';
  const entry = learnedFromTurn(parsed, loose);
  return entry ? [entry] : [];
}
