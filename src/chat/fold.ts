/**
 * The read-only taps on chat-completions responses:
 *
 *   streamed  the shared SSE plumbing (../reasoning/tap/sse.ts) feeds each
 *             parsed chunk to a fold into whole assistant messages, one per
 *             choice index:
 *               reasoning_content and content pieces are appended;
 *               tool_calls pieces are merged by their `index`: the first
 *               piece carries id, type and function.name, later ones append
 *               function.arguments (and any name pieces, except a repeat of
 *               the whole name, which some providers send on every piece).
 *             Complete when `data: [DONE]` was seen, or when every choice has
 *             a finish_reason by the time the body ends.
 *   JSON      every `choices[i].message` of a whole completion body.
 *
 * Every complete message with reasoning is learned. Pure and bounded: no
 * I/O; a chunk it cannot trust poisons the fold.
 */
import { isRecord } from '../reasoning/json.js';
import { hasReasoning, type TurnReasoning } from '../reasoning/match.js';
import type { ResponseTap } from '../reasoning/dialect.js';
import { createBodyTap, successBody } from '../reasoning/tap/body.js';
import { createFoldingSseTap, DEFAULT_MAX_FOLDED_CHARS, type SseTapOptions } from '../reasoning/tap/sse.js';
import { chatTurnIdentity } from './fingerprint.js';
import { toolCallId, toolCallName, toolCallsOf, type AssistantMessage, type ToolCall } from './types.js';

/** More choices than this in one stream is not a chat completion we know (n is small). */
export const MAX_CHOICES = 128;
/** More tool calls than this in one message is not one we know. */
export const MAX_TOOL_CALLS = 1024;

interface ToolCallState {
  id: string;
  type: string;
  name: string;
  arguments: string;
}

interface ChoiceState {
  index: number;
  reasoning: string;
  content: string;
  role: string;
  calls: Map<number, ToolCallState>;
  /** Order in which tool call indexes first appeared (usually 0, 1, ...). */
  callOrder: number[];
  finishReason: string | undefined;
}

export interface FoldedChoice {
  index: number;
  message: AssistantMessage;
  finishReason: string | undefined;
}

export interface StreamFold {
  /** One parsed chunk. Returns false when it poisons the fold (error object, not an object, over a bound). */
  add(chunk: unknown): boolean;
  /** True when at least one choice was seen and every choice seen has a finish_reason. */
  allFinished(): boolean;
  /** The folded messages, by choice index. */
  choices(): FoldedChoice[];
}

export function createStreamFold(options: { maxFoldedChars?: number } = {}): StreamFold {
  const maxChars = options.maxFoldedChars ?? DEFAULT_MAX_FOLDED_CHARS;
  const states = new Map<number, ChoiceState>();
  let chars = 0;

  const choiceState = (index: number): ChoiceState | undefined => {
    let state = states.get(index);
    if (state) return state;
    if (states.size >= MAX_CHOICES) return undefined;
    state = { index, reasoning: '', content: '', role: 'assistant', calls: new Map(), callOrder: [], finishReason: undefined };
    states.set(index, state);
    return state;
  };

  const addToolCall = (state: ChoiceState, piece: unknown, position: number): boolean => {
    if (!isRecord(piece)) return true;
    const id = typeof piece['id'] === 'string' ? piece['id'] : '';
    let index: number;
    if (typeof piece['index'] === 'number' && Number.isInteger(piece['index'])) index = piece['index'];
    else {
      // No index (not MiMo, but seen elsewhere): a known id continues its call; otherwise the array position.
      const byId = id === '' ? undefined : state.callOrder.find((i) => state.calls.get(i)?.id === id);
      index = byId ?? position;
    }
    let call = state.calls.get(index);
    if (!call) {
      if (state.calls.size >= MAX_TOOL_CALLS) return false;
      call = { id: '', type: '', name: '', arguments: '' };
      state.calls.set(index, call);
      state.callOrder.push(index);
    }
    if (id !== '' && call.id === '') call.id = id;
    if (typeof piece['type'] === 'string' && call.type === '') call.type = piece['type'];
    const fn = piece['function'];
    if (isRecord(fn)) {
      const name = fn['name'];
      if (typeof name === 'string' && name !== '' && name !== call.name) {
        call.name += name;
        chars += name.length;
      }
      const args = fn['arguments'];
      if (typeof args === 'string') {
        call.arguments += args;
        chars += args.length;
      }
    }
    return true;
  };

  const addChoice = (choice: unknown, position: number): boolean => {
    if (!isRecord(choice)) return true;
    const index = typeof choice['index'] === 'number' && Number.isInteger(choice['index']) ? choice['index'] : position;
    const state = choiceState(index);
    if (!state) return false;
    const delta = choice['delta'];
    if (isRecord(delta)) {
      if (typeof delta['role'] === 'string') state.role = delta['role'];
      const reasoning = delta['reasoning_content'];
      if (typeof reasoning === 'string') {
        state.reasoning += reasoning;
        chars += reasoning.length;
      }
      const content = delta['content'];
      if (typeof content === 'string') {
        state.content += content;
        chars += content.length;
      }
      const calls = delta['tool_calls'];
      if (Array.isArray(calls)) {
        for (let i = 0; i < calls.length; i++) if (!addToolCall(state, calls[i], i)) return false;
      }
    }
    const finish = choice['finish_reason'];
    if (typeof finish === 'string' && finish !== '') state.finishReason = finish;
    return chars <= maxChars;
  };

  return {
    add(chunk) {
      if (!isRecord(chunk)) return false;
      if (chunk['error'] !== undefined && chunk['error'] !== null) return false;
      const choices = chunk['choices'];
      // Usage chunks carry `choices: []`; chunks without choices carry nothing to fold.
      if (!Array.isArray(choices)) return true;
      for (let i = 0; i < choices.length; i++) if (!addChoice(choices[i], i)) return false;
      return true;
    },
    allFinished() {
      if (states.size === 0) return false;
      for (const state of states.values()) if (state.finishReason === undefined) return false;
      return true;
    },
    choices() {
      return [...states.values()]
        .sort((a, b) => a.index - b.index)
        .map((state) => ({ index: state.index, message: toMessage(state), finishReason: state.finishReason }));
    },
  };
}

function toMessage(state: ChoiceState): AssistantMessage {
  const message: AssistantMessage = {
    role: state.role,
    content: state.content === '' ? null : state.content,
    reasoning_content: state.reasoning,
  };
  if (state.callOrder.length > 0) {
    const calls: ToolCall[] = [...state.callOrder]
      .sort((a, b) => a - b)
      .map((index) => {
        const call = state.calls.get(index);
        return { id: call?.id ?? '', type: call?.type || 'function', function: { name: call?.name ?? '', arguments: call?.arguments ?? '' } };
      });
    message.tool_calls = calls;
  }
  return message;
}

/** What to remember for one complete assistant message: undefined when it has no reasoning or no identity of its own. */
export function learnedFrom(message: AssistantMessage): TurnReasoning | undefined {
  if (!isRecord(message)) return undefined;
  const reasoning = message['reasoning_content'];
  if (!hasReasoning(reasoning)) return undefined;
  const identity = chatTurnIdentity(message);
  if (!identity) return undefined;
  const calls = namedCalls(message);
  return calls.length > 0 ? { identity, reasoning, calls } : { identity, reasoning };
}

/** The message's calls that have both an id and a name. */
function namedCalls(message: Record<string, unknown>): { id: string; name: string }[] {
  const calls: { id: string; name: string }[] = [];
  for (const call of toolCallsOf(message)) {
    const id = toolCallId(call);
    const name = toolCallName(call);
    if (id !== '' && name !== '') calls.push({ id, name });
  }
  return calls;
}

/** Learned entries for every folded choice with reasoning, by choice index. */
export function learnedFromChoices(choices: readonly FoldedChoice[]): TurnReasoning[] {
  const learned: TurnReasoning[] = [];
  for (const choice of choices) {
    const entry = learnedFrom(choice.message);
    if (entry) learned.push(entry);
  }
  return learned;
}

export function createChatSseTap(options: SseTapOptions = {}): ResponseTap {
  const fold = createStreamFold({ maxFoldedChars: options.maxFoldedChars });
  let done = false;
  return createFoldingSseTap(
    {
      add: (data) => fold.add(data),
      sawDone: () => {
        done = true;
      },
      stopped: () => done,
      finish: () => (done || fold.allFinished() ? learnedFromChoices(fold.choices()) : undefined),
    },
    options,
  );
}

export function createChatJsonTap(options: { maxBytes?: number } = {}): ResponseTap {
  return createBodyTap(learnedFromBody, options.maxBytes);
}

/** Learned entries from a whole completion body; undefined when it is not one (error, invalid JSON). */
export function learnedFromBody(body: Uint8Array): TurnReasoning[] | undefined {
  const parsed = successBody(body);
  if (!parsed) return undefined;
  const choices = parsed['choices'];
  if (!Array.isArray(choices)) return undefined;
  const learned: TurnReasoning[] = [];
  for (const choice of choices) {
    if (!isRecord(choice)) continue;
    const message = choice['message'];
    if (!isRecord(message)) continue;
    const entry = learnedFrom(message);
    if (entry) learned.push(entry);
  }
  return learned;
}
