/**
 * The minimal OpenAI chat-completions shapes this proxy reads and writes.
 * Loose on purpose: bodies come from many clients, every field may be
 * missing or of the wrong type, and fields we do not know are kept as they
 * came (the index signatures), so a rewrite never drops what a client sent.
 */
import { argumentsText, isRecord } from '../reasoning/json.js';

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

export interface AssistantMessage {
  role?: 'assistant' | unknown;
  content?: string | ContentPart[] | null | unknown;
  reasoning_content?: string | null | unknown;
  tool_calls?: ToolCall[] | null | unknown;
  [field: string]: unknown;
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

/** The tool names of an assistant message's calls, in order ('' for an unnamed one). */
export function toolCallNames(message: Record<string, unknown>): string[] {
  return toolCallsOf(message).map(toolCallName);
}

/** A tool call's arguments as sent (a JSON string per the API), or '' when absent. */
export function toolCallArguments(call: unknown): string {
  if (!isRecord(call)) return '';
  const fn = call['function'];
  return isRecord(fn) ? argumentsText(fn['arguments']) : '';
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
