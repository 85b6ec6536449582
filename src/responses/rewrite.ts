/**
 * The request side of the Responses dialect (`POST /v1/responses`): its
 * `input` items as turns for the turn loop (../reasoning/turns.ts), which
 * puts remembered reasoning items back before the function calls of a turn
 * that lacks them, and degrades (degrade.ts) those whose reasoning is not
 * remembered, so an upstream that enforces the rule does not answer its 400.
 *
 * The list the loop walks (the `conversation` hook): the input items grouped
 * into entries (types.ts InputEntry). A maximal run of reasoning,
 * function_call and assistant message items is one assistant turn (one
 * response's output comes back as such a run); every other item is an entry
 * of its own (a message under its role, a function_call_output as 'tool',
 * an item type this proxy does not know as 'item', kept verbatim). A string
 * `input` is one user message. Written back, the entries' items are the new
 * `input`, in order.
 *
 * A turn counts as carrying its reasoning when one of its reasoning items has
 * text or encrypted content: such a turn is never touched, and is reported in
 * `learned`. Put back = the remembered items, in the shape the upstream
 * produced, each where it stood among the run's other items (reasoning items
 * that carry nothing are dropped). Left alone: a request with
 * `previous_response_id` or `conversation` (the upstream holds the
 * conversation), and one without `input`.
 */
import { isRecord } from '../reasoning/json.js';
import type { ReasoningLookup, RewriteOutcome, RewritePolicy, SkipReason } from '../reasoning/rewrite.js';
import { rewriteTurns, type Conversation, type Edits, type TurnDialect } from '../reasoning/turns.js';
import { flattenRun, placeholderReasoning, withoutEmptyReasoning } from './degrade.js';
import { responsesContextForm, runIdentity } from './fingerprint.js';
import { callName, decodeReasoning, encodeReasoning, isFunctionCall, isReasoningItem, isRunItem, itemType, reasoningOfRun, type InputEntry, type StoredReasoning } from './types.js';

/** A turn is a run of one output's items. */
export interface ResponsesTurn {
  items: unknown[];
}

export const responsesTurns: TurnDialect<ResponsesTurn, StoredReasoning[]> = {
  contextForm: responsesContextForm,
  turn: (entry) => (Array.isArray(entry['items']) ? { items: entry['items'] as unknown[] } : undefined),
  ownReasoning: ({ items }) => {
    const own = reasoningOfRun(items);
    return own.length > 0 ? encodeReasoning(own) : undefined;
  },
  identity: ({ items }) => runIdentity(items),
  toolNames: ({ items }) => items.filter(isFunctionCall).map(callName),
  decode: decodeReasoning,
  putBack: ({ items }, found) => ({ role: 'assistant', items: restore(items, found) }),
  withPlaceholder: ({ items }, text) => ({ role: 'assistant', items: [placeholderReasoning(text), ...withoutEmptyReasoning(items)] }),
  flatten(entries, index, step, plainTurns) {
    const { replacement, consumed } = flattenRun(entries, index, step, plainTurns);
    const edits: Edits = new Map(consumed.map((at) => [at, []]));
    edits.set(index, replacement);
    return edits;
  },
  conversation: inputConversation,
};

export function rewriteResponsesRequest(body: Buffer, lookup: ReasoningLookup, policy: RewritePolicy): RewriteOutcome {
  return rewriteTurns(body, lookup, policy, responsesTurns);
}

/** The request's `input` as entries (see the header), or why it is left alone. */
export function inputConversation(request: Record<string, unknown>): Conversation | SkipReason {
  // The upstream holds the conversation: by the previous response, or by the Conversations API's `conversation`.
  for (const field of ['previous_response_id', 'conversation']) if (request[field] !== undefined && request[field] !== null) return 'stateful';
  const input = request['input'];
  const write = (entries: unknown[]): void => {
    request['input'] = entries.flatMap((entry) => (isRecord(entry) && Array.isArray(entry['items']) ? (entry['items'] as unknown[]) : []));
  };
  if (typeof input === 'string') return { messages: [{ role: 'user', items: [{ role: 'user', content: input }] }], write };
  if (!Array.isArray(input)) return 'no-messages';
  return { messages: groupItems(input), write };
}

/** The input items grouped into entries: runs of one output's items, every other item alone. */
export function groupItems(items: readonly unknown[]): InputEntry[] {
  const entries: InputEntry[] = [];
  let run: InputEntry | undefined;
  for (const item of items) {
    if (isRunItem(item)) {
      if (!run) {
        run = { role: 'assistant', items: [] };
        entries.push(run);
      }
      run.items.push(item);
      continue;
    }
    run = undefined;
    entries.push({ role: entryRole(item), items: [item] });
  }
  return entries;
}

function entryRole(item: unknown): string {
  const type = itemType(item);
  if (type === 'function_call_output') return 'tool';
  if (type === 'message' && isRecord(item) && typeof item['role'] === 'string' && item['role'] !== 'assistant') return item['role'];
  return 'item';
}

/** The run with the remembered items each where it stood among the other items, and no empty reasoning left. */
function restore(items: readonly unknown[], found: readonly StoredReasoning[]): unknown[] {
  const others = items.filter((item) => !isReasoningItem(item));
  const out: unknown[] = [];
  for (let k = 0; k <= others.length; k++) {
    for (const stored of found) if (stored.at === k || (k === others.length && stored.at > k)) out.push({ ...stored.item });
    if (k < others.length) out.push(others[k]);
  }
  return out;
}
