/**
 * Flattening a chat-completions tool exchange (the wording of placeholders,
 * the same in every dialect, is ../reasoning/degrade.ts): the assistant
 * message keeps only its own text (or goes, when it has none), and its tool
 * results become one user message naming each call, its arguments and its
 * result. Pure: functions over the parsed request's plain objects.
 */
import { flattenedExchangeText, flattenedPlaceholder } from '../reasoning/degrade.js';
import { isRecord } from '../reasoning/json.js';
import { hasReasoning } from '../reasoning/match.js';
import { contentText, toolCallArguments, toolCallId, toolCallName, toolCallNames, toolCallsOf } from './types.js';

export interface Flattened {
  /** What replaces the assistant message: its text alone and the results as a user message. */
  replacement: Record<string, unknown>[];
  /** Indexes of the `role: "tool"` messages folded into the user message (to be removed). */
  consumed: number[];
}

/**
 * Flattens the tool exchange of the assistant message at `index`. Its
 * results are the `role: "tool"` messages after it, up to the next assistant
 * message, whose tool_call_id is one of its call ids.
 * `plainTurns`: the kept assistant text also gets a placeholder reasoning.
 */
export function flattenToolExchange(messages: readonly unknown[], index: number, step: number, plainTurns: boolean): Flattened {
  const message = messages[index];
  const assistant = isRecord(message) ? message : {};
  const calls = toolCallsOf(assistant);
  // Every id, '' included: a result that names an empty id belongs to that call and must go with it.
  const ids = new Set(calls.map(toolCallId));

  const results = new Map<string, unknown[]>();
  const consumed: number[] = [];
  for (let i = index + 1; i < messages.length; i++) {
    const next = messages[i];
    if (!isRecord(next)) continue;
    if (next['role'] === 'assistant') break;
    if (next['role'] !== 'tool') continue;
    const callId = next['tool_call_id'];
    if (typeof callId !== 'string' || !ids.has(callId)) continue;
    consumed.push(i);
    const list = results.get(callId) ?? [];
    list.push(next['content']);
    results.set(callId, list);
  }

  const replacement: Record<string, unknown>[] = [];
  if (contentText(assistant['content']).trim() !== '') {
    const kept: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(assistant)) {
      if (key === 'tool_calls' || key === 'function_call') continue;
      if (key === 'reasoning_content' && !hasReasoning(value)) continue;
      kept[key] = value;
    }
    if (plainTurns && !hasReasoning(kept['reasoning_content'])) kept['reasoning_content'] = flattenedPlaceholder(step, toolCallNames(assistant));
    replacement.push(kept);
  }

  const described = calls.map((call) => ({ name: toolCallName(call), args: toolCallArguments(call), id: toolCallId(call) }));
  replacement.push({ role: 'user', content: flattenedExchangeText(step, described, results) });
  return { replacement, consumed };
}
