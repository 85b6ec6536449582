/**
 * What to put in place of reasoning that was not kept, for a Responses
 * assistant turn (a run of one output's items) the upstream would otherwise
 * refuse; the counterpart of ../chat/degrade.ts, with the wording of
 * ../reasoning/degrade.ts:
 *
 *   placeholder  a reasoning item `{type: 'reasoning', summary: [], content:
 *                [{type: 'reasoning_text', text}]}` (the shape Codex sends
 *                back; no id, since no upstream issued one) first in the run,
 *                with a text specific to its turn.
 *   flatten      the run keeps its assistant messages (and nothing else) and
 *                its function_call_output items, up to the next run, become
 *                one user message naming each call, its arguments and its
 *                result. No function_call_output is left without its call.
 * Pure: functions over the parsed request's plain objects.
 */
import { flattenedExchangeText, flattenedPlaceholder } from '../reasoning/degrade.js';
import { isRecord } from '../reasoning/json.js';
import { callArguments, callName, carriesReasoning, isAssistantMessage, isFunctionCall, isReasoningItem, messageText, stringField, type InputEntry } from './types.js';

/** A placeholder reasoning item (see the header). */
export function placeholderReasoning(text: string): Record<string, unknown> {
  return { type: 'reasoning', summary: [], content: [{ type: 'reasoning_text', text }] };
}

/** A run's items without reasoning items that carry nothing (they would be sent next to the real ones). */
export function withoutEmptyReasoning(items: readonly unknown[]): unknown[] {
  return items.filter((item) => !isReasoningItem(item) || carriesReasoning(item));
}

export interface FlattenedRun {
  /** What replaces the run: its assistant messages (if any text) and the results as a user message. */
  replacement: InputEntry[];
  /** Indexes of the function_call_output entries folded into the user message (to be removed). */
  consumed: number[];
}

/**
 * Flattens the run at `index` of the entries: its results are the
 * function_call_output entries after it, up to the next run, whose call_id is
 * one of its calls'. `plainTurns`: the kept text also gets a placeholder reasoning.
 */
export function flattenRun(entries: readonly unknown[], index: number, step: number, plainTurns: boolean): FlattenedRun {
  const entry = entries[index];
  const items = isRecord(entry) && Array.isArray(entry['items']) ? (entry['items'] as unknown[]) : [];
  const calls = items.filter(isFunctionCall);
  // Every id, '' included: a result that names an empty id belongs to that call and must go with it.
  const ids = new Set(calls.map((call) => stringField(call, 'call_id')));

  const results = new Map<string, unknown[]>();
  const consumed: number[] = [];
  for (let i = index + 1; i < entries.length; i++) {
    const next = entries[i];
    if (!isRecord(next)) continue;
    if (next['role'] === 'assistant') break;
    if (next['role'] !== 'tool' || !Array.isArray(next['items'])) continue;
    const output = next['items'][0];
    if (!isRecord(output) || typeof output['call_id'] !== 'string' || !ids.has(output['call_id'])) continue;
    consumed.push(i);
    const list = results.get(output['call_id']) ?? [];
    list.push(output['output']);
    results.set(output['call_id'], list);
  }

  const replacement: InputEntry[] = [];
  const kept = items.filter((item) => isAssistantMessage(item) || (isReasoningItem(item) && carriesReasoning(item)));
  if (kept.some((item) => isAssistantMessage(item) && messageText(item['content']).trim() !== '')) {
    if (plainTurns && !kept.some(isReasoningItem)) kept.unshift(placeholderReasoning(flattenedPlaceholder(step, calls.map(callName))));
    replacement.push({ role: 'assistant', items: kept });
  }

  const described = calls.map((call) => ({ name: callName(call), args: callArguments(call), id: stringField(call, 'call_id') }));
  const text = flattenedExchangeText(step, described, results);
  replacement.push({ role: 'user', items: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text }] }] });
  return { replacement, consumed };
}
