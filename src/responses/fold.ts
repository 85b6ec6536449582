/**
 * The read-only taps on Responses API answers, the counterparts of
 * ../chat/fold.ts:
 *
 *   streamed  the shared SSE plumbing (../reasoning/tap/sse.ts) feeds each
 *             parsed event to a fold into the output's items, by output_index:
 *               response.output_item.added        an item begins (its id, type;
 *                                                 a call's call_id and name);
 *               response.reasoning_text.delta/done          its content text;
 *               response.reasoning_summary_text.delta/done  its summary text;
 *               response.function_call_arguments.delta/done a call's arguments;
 *               response.output_text.delta/done             a message's text;
 *               response.output_item.done         the whole item (it wins over
 *                                                 the pieces, which only fill
 *                                                 what it left empty);
 *               response.completed                the answer is complete; its
 *                                                 `response.output` stands in
 *                                                 for items never streamed.
 *             response.failed, response.incomplete and error events store nothing.
 *   JSON      a whole response object: its `output`, when its status is
 *             `completed` (or not given).
 *
 * The output's reasoning, function_call and assistant message items are one
 * turn (rewrite.ts finds it again as one run of a later request's input); its
 * reasoning items are learned under the turn's identity (its calls' call_ids
 * and its digest, fingerprint.ts) as types.ts encodes them. Complete only with
 * response.completed (streamed) or a whole completed response (JSON); anything
 * else stores nothing. Never throws.
 */
import type { ResponseTap } from '../reasoning/dialect.js';
import { isRecord } from '../reasoning/json.js';
import type { TurnReasoning } from '../reasoning/match.js';
import { createBodyTap, successBody } from '../reasoning/tap/body.js';
import { createFoldingSseTap, DEFAULT_MAX_FOLDED_CHARS, type SseTapOptions } from '../reasoning/tap/sse.js';
import { runIdentity } from './fingerprint.js';
import { carriesReasoning, encodeReasoning, isAssistantMessage, isFunctionCall, isReasoningItem, isRunItem, messageText, reasoningOfRun } from './types.js';

/** More output items than this in one answer is not an answer we know. */
export const MAX_ITEMS = 1024;
/** More parts than this in one item's content or summary is not an item we know. */
const MAX_PARTS = 256;

interface ItemState {
  /** The item as output_item.added gave it. */
  added: Record<string, unknown> | undefined;
  /** The item as output_item.done gave it. */
  done: Record<string, unknown> | undefined;
  id: string;
  content: string[];
  summary: string[];
  text: string[];
  arguments: string;
}

export interface ResponsesFold {
  /** One parsed event. Returns false when it poisons the fold (failed, error, not an object, over a bound). */
  add(event: unknown): boolean;
  /** True once response.completed was seen. */
  completed(): boolean;
  /** The output items: each streamed item whole, in output_index order. */
  output(): Record<string, unknown>[];
}

export function createResponsesFold(options: { maxFoldedChars?: number } = {}): ResponsesFold {
  const maxChars = options.maxFoldedChars ?? DEFAULT_MAX_FOLDED_CHARS;
  const states = new Map<number, ItemState>();
  /** The items by id, so an event that names its item only by item_id costs no scan of them all. */
  const byId = new Map<string, ItemState>();
  let completedOutput: unknown[] = [];
  let completed = false;
  let chars = 0;

  const stateAt = (index: number): ItemState | undefined => {
    let state = states.get(index);
    if (state) return state;
    if (states.size >= MAX_ITEMS) return undefined;
    state = { added: undefined, done: undefined, id: '', content: [], summary: [], text: [], arguments: '' };
    states.set(index, state);
    return state;
  };

  /** The item an event is about: by output_index, else by item_id among the items seen. */
  const stateFor = (event: Record<string, unknown>): ItemState | undefined => {
    const index = event['output_index'];
    if (typeof index === 'number' && Number.isInteger(index) && index >= 0) return stateAt(index);
    const id = event['item_id'];
    if (typeof id === 'string') {
      const state = byId.get(id);
      if (state) return state;
    }
    return stateAt(states.size);
  };

  /** Appends (or with `whole`, sets) the text of part `index` of a list. */
  const setPart = (list: string[], event: Record<string, unknown>, indexField: string, piece: unknown, whole: boolean): boolean => {
    if (typeof piece !== 'string') return true;
    const at = event[indexField];
    const index = typeof at === 'number' && Number.isInteger(at) && at >= 0 ? at : 0;
    if (index >= MAX_PARTS) return false;
    while (list.length <= index) list.push('');
    list[index] = whole ? piece : list[index] + piece;
    chars += piece.length;
    return true;
  };

  const dispatch = (event: Record<string, unknown>): boolean => {
    const type = event['type'];
    switch (type) {
      case 'error':
      case 'response.failed':
      case 'response.incomplete':
        return false;
      case 'response.output_item.added':
      case 'response.output_item.done': {
        const item = event['item'];
        if (!isRecord(item)) return true;
        const state = stateFor(event);
        if (!state) return false;
        if (type === 'response.output_item.added') state.added = item;
        else state.done = item;
        if (typeof item['id'] === 'string' && item['id'] !== state.id) {
          if (byId.get(state.id) === state) byId.delete(state.id);
          state.id = item['id'];
          if (!byId.has(state.id)) byId.set(state.id, state);
        }
        chars += JSON.stringify(item).length;
        return true;
      }
      case 'response.reasoning_text.delta':
      case 'response.reasoning_text.done':
      case 'response.reasoning_summary_text.delta':
      case 'response.reasoning_summary_text.done':
      case 'response.output_text.delta':
      case 'response.output_text.done': {
        const state = stateFor(event);
        if (!state) return false;
        const whole = type.endsWith('.done');
        const piece = whole ? event['text'] : event['delta'];
        if (type.startsWith('response.reasoning_text')) return setPart(state.content, event, 'content_index', piece, whole);
        if (type.startsWith('response.reasoning_summary')) return setPart(state.summary, event, 'summary_index', piece, whole);
        return setPart(state.text, event, 'content_index', piece, whole);
      }
      case 'response.function_call_arguments.delta':
      case 'response.function_call_arguments.done': {
        const state = stateFor(event);
        if (!state) return false;
        const whole = type.endsWith('.done');
        const piece = whole ? event['arguments'] : event['delta'];
        if (typeof piece !== 'string') return true;
        state.arguments = whole ? piece : state.arguments + piece;
        chars += piece.length;
        return true;
      }
      case 'response.completed': {
        completed = true;
        const response = event['response'];
        if (isRecord(response) && Array.isArray(response['output'])) completedOutput = response['output'].slice(0, MAX_ITEMS);
        return true;
      }
      default:
        return true;
    }
  };

  return {
    add(event) {
      if (!isRecord(event)) return false;
      if (event['error'] !== undefined && event['error'] !== null) return false;
      if (!dispatch(event)) return false;
      return chars <= maxChars;
    },
    completed: () => completed,
    output() {
      // The indexes seen, not a range up to the largest: an upstream's output_index may be anything.
      const indexes = [...new Set([...completedOutput.keys(), ...states.keys()])].sort((a, b) => a - b);
      const items: Record<string, unknown>[] = [];
      for (const i of indexes) {
        const state = states.get(i);
        const item = state ? wholeItem(state, completedOutput[i]) : completedOutput[i];
        if (isRecord(item)) items.push(item);
      }
      return items;
    },
  };
}

/** The item from its done event (else the completed output's, else its added event), with streamed pieces filling what it left empty. */
function wholeItem(state: ItemState, fromCompleted: unknown): Record<string, unknown> | undefined {
  const base = state.done ?? (isRecord(fromCompleted) ? fromCompleted : state.added);
  if (!base) return undefined;
  const item = { ...base };
  if (isReasoningItem(item) && !carriesReasoning(item)) {
    if (state.content.some((text) => text !== '')) item['content'] = state.content.map((text) => ({ type: 'reasoning_text', text }));
    if (state.summary.some((text) => text !== '')) item['summary'] = state.summary.map((text) => ({ type: 'summary_text', text }));
  } else if (isFunctionCall(item) && (typeof item['arguments'] !== 'string' || item['arguments'] === '') && state.arguments !== '') {
    item['arguments'] = state.arguments;
  } else if (isAssistantMessage(item) && messageText(item['content']).trim() === '' && state.text.some((text) => text !== '')) {
    item['content'] = state.text.map((text) => ({ type: 'output_text', text }));
  }
  return item;
}

/** What to remember for one complete output: its reasoning items, under its run's identity. */
export function learnedFromOutput(output: readonly unknown[]): TurnReasoning[] {
  const run = output.filter(isRunItem);
  const reasoning = reasoningOfRun(run);
  if (reasoning.length === 0) return [];
  const identity = runIdentity(run);
  return identity ? [{ identity, reasoning: encodeReasoning(reasoning) }] : [];
}

export function createResponsesSseTap(options: SseTapOptions = {}): ResponseTap {
  const fold = createResponsesFold({ maxFoldedChars: options.maxFoldedChars });
  return createFoldingSseTap(
    {
      add: (data) => fold.add(data),
      // Not a Responses terminator: completion is response.completed.
      sawDone: () => undefined,
      stopped: () => fold.completed(),
      finish: () => (fold.completed() ? learnedFromOutput(fold.output()) : undefined),
    },
    options,
  );
}

export function createResponsesJsonTap(options: { maxBytes?: number } = {}): ResponseTap {
  return createBodyTap(learnedFromResponseBody, options.maxBytes);
}

/** Learned entries from a whole response object; undefined when it is not a completed response (error, invalid JSON). */
export function learnedFromResponseBody(body: Uint8Array): TurnReasoning[] | undefined {
  const parsed = successBody(body);
  if (!parsed || !Array.isArray(parsed['output'])) return undefined;
  const status = parsed['status'];
  if (status !== undefined && status !== 'completed') return undefined;
  return learnedFromOutput(parsed['output']);
}
