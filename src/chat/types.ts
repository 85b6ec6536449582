/**
 * The minimal OpenAI chat-completions shapes this proxy reads and writes.
 * Loose on purpose: bodies come from many clients, every field may be
 * missing or of the wrong type, and fields we do not know are kept as they
 * came (the index signatures), so a rewrite never drops what a client sent.
 */
import { isRawNumber } from '../reasoning/json.js';

export interface FunctionCall {
  name?: unknown;
  arguments?: unknown;
  [field: string]: unknown;
}

export interface ToolCall {
  id?: unknown;
  type?: unknown;
  function?: FunctionCall | null;
  [field: string]: unknown;
}

/** One part of an array-form `content` (`{type: 'text', text}`, images, ...). */
export interface ContentPart {
  type?: unknown;
  text?: unknown;
  [field: string]: unknown;
}

export interface ChatMessage {
  role?: unknown;
  content?: unknown;
  [field: string]: unknown;
}

export interface AssistantMessage extends ChatMessage {
  role?: 'assistant' | unknown;
  content?: string | ContentPart[] | null | unknown;
  reasoning_content?: string | null | unknown;
  tool_calls?: ToolCall[] | null | unknown;
}

export interface ToolMessage extends ChatMessage {
  role: 'tool';
  tool_call_id?: unknown;
}

export interface ChatRequest {
  messages?: unknown;
  thinking?: unknown;
  [field: string]: unknown;
}

/** What a response fold learns about one assistant message: its identity and its reasoning. */
export type { TurnReasoning as Learned } from '../reasoning/match.js';

/** A plain (non-null, non-array) object; a number kept as its source text (../json.ts) is not one. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !isRawNumber(value);
}

/**
 * Reasoning worth keeping or counting as "passed back": a string with
 * something besides whitespace. `''`, `' '`, null and absent all count as
 * absent (DeepSeek rejects `''`; a lone space is a gateway's backfill, not
 * the model's reasoning).
 */
export function hasReasoning(value: unknown): value is string {
  return typeof value === 'string' && value.trim() !== '';
}

/** The tool calls of an assistant message, or [] when there are none (null, not an array, empty). */
export function toolCallsOf(message: Record<string, unknown>): unknown[] {
  const calls = message['tool_calls'];
  return Array.isArray(calls) ? calls : [];
}

/** A tool call's function name, or '' when it has none. */
export function toolCallName(call: unknown): string {
  if (!isRecord(call)) return '';
  const fn = call['function'];
  if (!isRecord(fn)) return '';
  const name = fn['name'];
  return typeof name === 'string' ? name.trim() : '';
}

/** A tool call's arguments as sent (a JSON string per the API), or '' when absent. */
export function toolCallArguments(call: unknown): string {
  if (!isRecord(call)) return '';
  const fn = call['function'];
  if (!isRecord(fn)) return '';
  const args = fn['arguments'];
  if (typeof args === 'string') return args;
  if (args === undefined || args === null) return '';
  // Some clients send an object instead of a JSON string; keep its JSON.
  try {
    return JSON.stringify(args) ?? '';
  } catch {
    return '';
  }
}

/** A tool call's id, or '' when it has none. */
export function toolCallId(call: unknown): string {
  if (!isRecord(call)) return '';
  const id = call['id'];
  return typeof id === 'string' ? id : '';
}

/**
 * The text of a message's content: a string as is; an array of parts ->
 * the concatenated `text` of its parts (strings in the array count as
 * text); anything else -> ''.
 */
export function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let text = '';
  for (const part of content) {
    if (typeof part === 'string') text += part;
    else if (isRecord(part) && typeof part['text'] === 'string') text += part['text'];
  }
  return text;
}
