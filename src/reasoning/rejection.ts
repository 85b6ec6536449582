/**
 * Recognises MiMo's answer to a request whose tool-call history lacks
 * reasoning (MIMO-API.md, "The rule that breaks clients"):
 *   HTTP 400 {"error":{"code":"400","message":"Param Incorrect",
 *     "param":"The reasoning_content in the thinking mode must be passed back to the API.","type":""}}
 * as plain JSON or SSE-framed (`data: {...}` events, maybe then `data: [DONE]`)
 * when the request was streamed. DeepSeek's wording (same sentence with
 * backticks) and Kimi's ("reasoning_content is missing in assistant tool
 * call message at index N") match too, and so does the Responses API's shape
 * of it: the same `error` object, an SSE `error` event (message at the top)
 * or a `response.failed` event (`response.error`). A provider may give its
 * own exact texts instead (../providers.ts), as patterns over the error's
 * texts. Pure; never throws.
 */
import { createParser } from 'eventsource-parser';
import { ANY_REASONING_REJECTION } from './upstream.js';

export { ANY_REASONING_REJECTION } from './upstream.js';

/**
 * The rejection is a short JSON object: an error body larger than this is not it, so only
 * this much of one is read (and the rest of the answer is passed on untouched).
 */
export const MAX_REJECTION_BYTES = 64 * 1024;

/** Whether a 400's body is the reasoning rejection: any of `patterns` matches its error texts. */
export function isReasoningRejection(status: number, body: Buffer, patterns: readonly RegExp[] = [ANY_REASONING_REJECTION]): boolean {
  try {
    if (status !== 400) return false;
    const text = body.subarray(0, MAX_REJECTION_BYTES).toString('utf8').trim();
    for (const payload of payloads(text)) {
      // Joined: MiMo puts "Param Incorrect" in message and the sentence in param.
      const said = errorTexts(payload).join(' ');
      if (patterns.some((pattern) => pattern.test(said))) return true;
    }
    return false;
  } catch {
    return false;
  }
}

/** The JSON values in a body: the whole body, or each SSE event's data (its `data:` lines joined). */
function payloads(text: string): unknown[] {
  const whole = parse(text);
  if (whole !== undefined) return [whole];
  const found: unknown[] = [];
  const parser = createParser({
    onEvent: (event) => {
      const data = event.data.trim();
      if (data === '' || data === '[DONE]') return;
      const value = parse(data);
      if (value !== undefined) found.push(value);
    },
  });
  // The end of the body ends its last event too, blank line or not.
  parser.feed(`${text}\n\n`);
  return found;
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The human-readable strings of an error payload: `error` (object or string), or a top-level message. */
function errorTexts(payload: unknown): string[] {
  if (Array.isArray(payload)) return payload.slice(0, 8).flatMap(errorTexts);
  if (typeof payload !== 'object' || payload === null) return [];
  const record = payload as Record<string, unknown>;
  const texts: string[] = [];
  const error = record['error'];
  if (typeof error === 'string') texts.push(error);
  else if (typeof error === 'object' && error !== null) {
    const inner = error as Record<string, unknown>;
    for (const field of ['message', 'param', 'detail', 'type', 'code']) {
      const value = inner[field];
      if (typeof value === 'string') texts.push(value);
    }
  }
  for (const field of ['message', 'detail']) {
    const value = record[field];
    if (typeof value === 'string') texts.push(value);
  }
  // A Responses stream's `response.failed` event: {"type":"response.failed","response":{"error":{...}}}.
  const response = record['response'];
  if (typeof response === 'object' && response !== null && !Array.isArray(response)) texts.push(...errorTexts({ error: (response as Record<string, unknown>)['error'] }));
  return texts;
}
