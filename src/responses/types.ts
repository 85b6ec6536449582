/**
 * The minimal OpenAI Responses API shapes (`POST /v1/responses`) this proxy
 * reads and writes, and the codec of what it remembers per assistant turn.
 * Loose on purpose, like ../chat/types.ts: every field may be missing or of
 * the wrong type, and items or fields we do not know are kept as they came.
 *
 * A request's `input` is a list of typed items: `message` (with a role; the
 * `type` may be left out), `reasoning`, `function_call`,
 * `function_call_output`, and others. One response's output is a run of
 * `reasoning`, assistant `message` and `function_call` items; in a later
 * request that run comes back as one assistant turn (rewrite.ts groups it).
 *
 * The cache stores strings (one per turn). A turn's reasoning is one or more
 * reasoning items, each with where it stood among the run's other items, so
 * the stored string is the JSON
 *   {"responses_reasoning":[{"at":0,"item":{"type":"reasoning","id":…,"content":[…]}}, ...]}
 * where `item` keeps only what the upstream sent of `type`, `id`, `summary`,
 * `content` and `encrypted_content` (never a field it did not send; `status`,
 * a field of the output's lifecycle, and a null `encrypted_content` are left
 * out), so it is put back as the upstream produced it. Values stored by the other dialects never reach this
 * one: the cache scopes them apart.
 */
import { argumentsText, isRecord } from '../reasoning/json.js';
import { hasReasoning } from '../reasoning/match.js';

/** A reasoning item as remembered, and `at`: how many of the run's other items came before it. */
export interface StoredReasoning {
  at: number;
  item: Record<string, unknown>;
}

/** The field that marks an encoded value as ours (see the header). */
const CODEC_FIELD = 'responses_reasoning';
/** More reasoning items than this in one turn is not a turn we know: the rest are dropped. */
export const MAX_REASONING_ITEMS = 256;
/** The fields of a reasoning item that are remembered and put back. */
const KEPT_FIELDS = ['type', 'id', 'summary', 'content', 'encrypted_content'] as const;

/** The item's `type`; a message may leave it out (an "easy" input message: just role and content). */
export function itemType(item: unknown): string {
  if (!isRecord(item)) return '';
  const type = item['type'];
  if (typeof type === 'string') return type;
  return type === undefined && typeof item['role'] === 'string' ? 'message' : '';
}

export function isReasoningItem(item: unknown): item is Record<string, unknown> {
  return itemType(item) === 'reasoning';
}

export function isFunctionCall(item: unknown): item is Record<string, unknown> {
  return itemType(item) === 'function_call';
}

export function isAssistantMessage(item: unknown): item is Record<string, unknown> {
  return itemType(item) === 'message' && isRecord(item) && item['role'] === 'assistant';
}

/** An item one response's output puts in a run: reasoning, an assistant message, a function call. */
export function isRunItem(item: unknown): boolean {
  return isReasoningItem(item) || isFunctionCall(item) || isAssistantMessage(item);
}

/** A string field of an item, or '' when absent or not a string. */
export function stringField(item: unknown, field: string): string {
  if (!isRecord(item)) return '';
  const value = item[field];
  return typeof value === 'string' ? value : '';
}

/** A function call's name, trimmed ('' for an unnamed one). */
export function callName(item: unknown): string {
  return stringField(item, 'name').trim();
}

/** A function call's arguments as sent (a JSON string per the API; an object's JSON when a client sent one). */
export function callArguments(item: unknown): string {
  return isRecord(item) ? argumentsText(item['arguments']) : '';
}

/**
 * The text of a message's content: a string as is; parts -> their `text`
 * joined by "\n" (input_text, output_text; strings in the list count as text);
 * anything else -> ''.
 */
export function messageText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  const texts: string[] = [];
  for (const part of content) {
    if (typeof part === 'string') texts.push(part);
    else if (isRecord(part) && typeof part['text'] === 'string') texts.push(part['text']);
  }
  return texts.join('\n');
}

/** The texts of a reasoning item's `content` and `summary` parts. */
function partTexts(parts: unknown): string[] {
  if (!Array.isArray(parts)) return [];
  return parts.filter(isRecord).map((part) => part['text']).filter((text): text is string => typeof text === 'string');
}

/** A reasoning item's readable text: its content parts, else its summary parts (joined by "\n"). */
export function reasoningText(item: unknown): string {
  if (!isRecord(item)) return '';
  const content = partTexts(item['content']).join('\n');
  return hasReasoning(content) ? content : partTexts(item['summary']).join('\n');
}

/**
 * A reasoning item worth keeping or counting as passed back: it has text
 * (content or summary) besides whitespace, or encrypted content. An item with
 * neither counts as absent, as `reasoning_content: ''` does on the chat surface.
 */
export function carriesReasoning(item: unknown): boolean {
  if (!isReasoningItem(item)) return false;
  const encrypted = item['encrypted_content'];
  return hasReasoning(reasoningText(item)) || (typeof encrypted === 'string' && encrypted !== '');
}

/**
 * The remembered part of a reasoning item: only the fields it has of KEPT_FIELDS, in that
 * order (`encrypted_content: null`, which clients add, counts as absent), so the same item
 * learned from an answer and from a request is the same string.
 */
export function keptReasoning(item: Record<string, unknown>): Record<string, unknown> {
  const kept: Record<string, unknown> = {};
  for (const field of KEPT_FIELDS) if (item[field] !== undefined && item[field] !== null) kept[field] = item[field];
  return kept;
}

/** The reasoning items of a run that carry reasoning, each with its place among the other items (bounded). */
export function reasoningOfRun(items: readonly unknown[]): StoredReasoning[] {
  const found: StoredReasoning[] = [];
  let others = 0;
  for (const item of items) {
    if (!isReasoningItem(item)) {
      others++;
      continue;
    }
    if (carriesReasoning(item) && found.length < MAX_REASONING_ITEMS) found.push({ at: others, item: keptReasoning(item) });
  }
  return found;
}

/** The string the cache stores for a turn's reasoning items. */
export function encodeReasoning(stored: readonly StoredReasoning[]): string {
  return JSON.stringify({ [CODEC_FIELD]: stored.slice(0, MAX_REASONING_ITEMS).map(({ at, item }) => ({ at, item })) });
}

/**
 * The reasoning items a stored string stands for, or undefined when it holds
 * none worth putting back. Only this dialect's encoding is read.
 */
export function decodeReasoning(value: string): StoredReasoning[] | undefined {
  if (typeof value !== 'string' || !value.startsWith(`{"${CODEC_FIELD}":`)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return undefined;
  }
  const list = isRecord(parsed) ? parsed[CODEC_FIELD] : undefined;
  if (!Array.isArray(list)) return undefined;
  const found: StoredReasoning[] = [];
  for (const entry of list.slice(0, MAX_REASONING_ITEMS)) {
    if (!isRecord(entry) || !isRecord(entry['item']) || !carriesReasoning(entry['item'])) continue;
    const at = entry['at'];
    found.push({ at: typeof at === 'number' && Number.isInteger(at) && at >= 0 ? at : 0, item: keptReasoning(entry['item']) });
  }
  return found.length > 0 ? found : undefined;
}

/**
 * One entry of the list the turn loop walks (rewrite.ts): a run of one
 * output's items (role 'assistant'), or one other item: a message under its
 * role, a function_call_output as 'tool', anything else as 'item'.
 */
export interface InputEntry {
  role: string;
  items: unknown[];
}
