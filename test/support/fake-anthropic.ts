/**
 * The fake MiMo's Anthropic-compatible route, `POST /anthropic/v1/messages`,
 * mounted by fake-mimo.ts. It enforces the same rule as the chat route (see
 * /work/shared/MIMO-API.md, "The other two surfaces"): in thinking mode every
 * assistant turn with tool_use blocks must carry a non-empty thinking block,
 * or the answer is MiMo's OpenAI-style 400. A text block holding the thinking
 * does not count. A tool_result whose tool_use_id matches no earlier tool_use
 * is refused as Anthropic refuses it, so "strip the tool_use" fails here too.
 *
 * The script: with k assistant turns with tool_use in the request, k <
 * toolRounds answers a thinking block, on odd rounds a short text block, and
 * one tool_use; otherwise a final text answer after a thinking block. Every
 * thinking text is unique (a random tag), and its signature is '' as MiMo's.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Echo } from './fake-mimo.js';
import { bounded, isObject, randomId, splitText as split } from './fake-common.js';

export interface FakeAnthropicState {
  /** The thinking this route produced, by tool_use id. */
  produced: Map<string, string>;
  /** For every assistant turn with tool_use received: the thinking that came back vs what was produced. */
  echoes: Echo[];
}

export interface FakeAnthropicOptions {
  toolRounds: number;
  /** Strict: a thinking other than exactly what was produced for that tool_use id gets the reasoning 400. */
  rejectPlaceholders: boolean;
  /** Delay between SSE events (0: one write per event, a setImmediate between them). */
  chunkDelayMs: number;
  /** When the request had stream:true, send error bodies as `data: {...}\n\n` (status still 400). */
  sseFramedErrors: boolean;
  /** The reasoning 400's body (default MiMo's: ANTHROPIC_REASONING_ERROR_BODY); DeepSeek has its own. */
  reasoningErrorBody?: string;
}

/** The body MiMo answers on this surface too when a tool_use turn lacks its thinking (same as the chat route). */
export const ANTHROPIC_REASONING_ERROR_BODY =
  '{"error":{"code":"400","message":"Param Incorrect","param":"The reasoning_content in the thinking mode must be passed back to the API.","type":""}}';

/** Anthropic's answer to a tool_result with no matching tool_use. */
export function orphanToolResultBody(messageIndex: number, blockIndex: number, id: string): string {
  return JSON.stringify({
    type: 'error',
    error: {
      type: 'invalid_request_error',
      message: `messages.${messageIndex}.content.${blockIndex}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${id}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`,
    },
  });
}

const TOOL_NAMES = ['get_weather', 'read_file', 'search_web'] as const;
const THINKING_PIECES = 20;
const ANSWER_PIECES = 8;
const INPUT_PIECES = 3;
/** Bounds on what a test can ask for, so a runaway test cannot hang or eat memory. */
const MAX_TOOL_ROUNDS = 10_000;
const MAX_DELAY_MS = 60_000;

type Verdict = { status: number; body: string } | undefined;

function blocksOf(message: Record<string, any>): unknown[] {
  return Array.isArray(message.content) ? message.content : [];
}

function toolUses(message: Record<string, any>): Record<string, any>[] {
  return blocksOf(message).filter((b): b is Record<string, any> => isObject(b) && b.type === 'tool_use');
}

/** Walks the history: records echoes, and returns the first rule the request breaks, if any. */
function check(body: Record<string, any>, state: FakeAnthropicState, options: FakeAnthropicOptions): Verdict {
  const messages: unknown[] = body.messages;
  const thinkingOn = !(isObject(body.thinking) && body.thinking.type === 'disabled');
  const known = new Set<string>();
  let verdict: Verdict;
  for (const [m, message] of messages.entries()) {
    if (!isObject(message)) continue;
    if (message.role === 'assistant') {
      const uses = toolUses(message);
      if (uses.length === 0) continue;
      const ids = uses.map((u) => (typeof u.id === 'string' ? u.id : ''));
      for (const id of ids) known.add(id);
      const thinking = blocksOf(message).filter((b): b is Record<string, any> => isObject(b) && b.type === 'thinking' && typeof b.thinking === 'string');
      const received = thinking.length === 0 ? undefined : thinking.map((b) => b.thinking as string).join('');
      const toolCallId = ids.find((id) => state.produced.has(id)) ?? ids[0] ?? '';
      const produced = state.produced.get(toolCallId);
      state.echoes.push({ toolCallId, received, produced, exact: produced !== undefined && received === produced });
      if (!thinkingOn || verdict) continue;
      const missing = received === undefined || received === '';
      const wrong = options.rejectPlaceholders && produced !== undefined && received !== produced;
      if (missing || wrong) verdict = { status: 400, body: options.reasoningErrorBody ?? ANTHROPIC_REASONING_ERROR_BODY };
    } else if (message.role === 'user' && !verdict) {
      for (const [b, block] of blocksOf(message).entries()) {
        if (!isObject(block) || block.type !== 'tool_result') continue;
        const id = typeof block.tool_use_id === 'string' ? block.tool_use_id : '';
        if (!known.has(id)) {
          verdict = { status: 400, body: orphanToolResultBody(m, b, id) };
          break;
        }
      }
    }
  }
  return verdict;
}

interface Turn {
  thinking: string;
  text: string;
  tool: { id: string; name: string; input: Record<string, unknown> } | undefined;
}

function makeTurn(round: number, toolRounds: number): Turn {
  const tag = randomId(12);
  if (round < toolRounds) {
    const name = TOOL_NAMES[round % TOOL_NAMES.length] ?? 'get_weather';
    return {
      thinking: `第${round + 1}步：我需要调用 ${name} 查询北京的天气。(${tag})`,
      text: round % 2 === 1 ? `好的，我再查一次（第${round + 1}次）。` : '',
      tool: { id: `toolu_${randomId(20)}`, name, input: { city: '北京', round } },
    };
  }
  return {
    thinking: `好的，${round} 个工具的结果都拿到了，现在可以回答用户：北京今天晴。(${tag})`,
    text: `北京今天晴，气温 12 到 20 度。Beijing is sunny today. (${tag})`,
    tool: undefined,
  };
}

/** The content blocks of a turn as a whole (the JSON answer). */
function contentOf(turn: Turn): Record<string, unknown>[] {
  const content: Record<string, unknown>[] = [{ type: 'thinking', thinking: turn.thinking, signature: '' }];
  if (turn.text !== '') content.push({ type: 'text', text: turn.text });
  if (turn.tool) content.push({ type: 'tool_use', id: turn.tool.id, name: turn.tool.name, input: turn.tool.input });
  return content;
}

/** The SSE events of a turn, each `event:` + `data:` + blank line. */
function eventsOf(turn: Turn, id: string, model: string): string[] {
  const ev = (type: string, data: Record<string, unknown>): string => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  const events = [
    ev('message_start', { message: { id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 42, output_tokens: 1 } } }),
    ev('ping', {}),
  ];
  let index = 0;
  events.push(ev('content_block_start', { index, content_block: { type: 'thinking', thinking: '', signature: '' } }));
  for (const piece of split(turn.thinking, THINKING_PIECES)) events.push(ev('content_block_delta', { index, delta: { type: 'thinking_delta', thinking: piece } }));
  events.push(ev('content_block_delta', { index, delta: { type: 'signature_delta', signature: '' } }));
  events.push(ev('content_block_stop', { index }));
  if (turn.text !== '') {
    index++;
    events.push(ev('content_block_start', { index, content_block: { type: 'text', text: '' } }));
    for (const piece of split(turn.text, ANSWER_PIECES)) events.push(ev('content_block_delta', { index, delta: { type: 'text_delta', text: piece } }));
    events.push(ev('content_block_stop', { index }));
  }
  if (turn.tool) {
    index++;
    events.push(ev('content_block_start', { index, content_block: { type: 'tool_use', id: turn.tool.id, name: turn.tool.name, input: {} } }));
    for (const piece of split(JSON.stringify(turn.tool.input), INPUT_PIECES)) events.push(ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: piece } }));
    events.push(ev('content_block_stop', { index }));
  }
  const output = Array.from(turn.thinking).length + Array.from(turn.text).length;
  events.push(ev('message_delta', { delta: { stop_reason: turn.tool ? 'tool_use' : 'end_turn', stop_sequence: null }, usage: { output_tokens: output } }));
  events.push(ev('message_stop', {}));
  return events;
}

/** Waits `ms` (0: one turn of the event loop), cut short when the response closes. */
function pause(res: ServerResponse, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = ms > 0 ? setTimeout(done, ms) : undefined;
    const immediate = ms > 0 ? undefined : setImmediate(done);
    res.once('close', done);
    function done(): void {
      if (timer) clearTimeout(timer);
      if (immediate) clearImmediate(immediate);
      res.off('close', done);
      resolve();
    }
  });
}

function send(res: ServerResponse, status: number, body: string, sse: boolean): void {
  const payload = sse ? `data: ${body}\n\n` : body;
  res.writeHead(status, { 'content-type': sse ? 'text/event-stream' : 'application/json', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}

export async function handleAnthropic(
  _req: IncomingMessage,
  res: ServerResponse,
  json: any,
  state: FakeAnthropicState,
  options: FakeAnthropicOptions,
): Promise<void> {
  if (!isObject(json) || !Array.isArray(json.messages)) {
    send(res, 400, JSON.stringify({ type: 'error', error: { type: 'invalid_request_error', message: 'messages: Field required' } }), false);
    return;
  }
  const stream = json.stream === true;
  const verdict = check(json, state, options);
  if (verdict) {
    send(res, verdict.status, verdict.body, stream && options.sseFramedErrors);
    return;
  }
  const round = json.messages.filter((m: unknown) => isObject(m) && m.role === 'assistant' && toolUses(m).length > 0).length;
  const turn = makeTurn(round, bounded(options.toolRounds, 0, MAX_TOOL_ROUNDS));
  if (turn.tool) state.produced.set(turn.tool.id, turn.thinking);
  const id = `msg_${randomId(24)}`;
  const model = typeof json.model === 'string' ? json.model : 'mimo-v2.6-pro';
  if (!stream) {
    const output = Array.from(turn.thinking).length + Array.from(turn.text).length;
    const message = { id, type: 'message', role: 'assistant', model, content: contentOf(turn), stop_reason: turn.tool ? 'tool_use' : 'end_turn', stop_sequence: null, usage: { input_tokens: 42, output_tokens: output } };
    send(res, 200, JSON.stringify(message), false);
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const delay = bounded(options.chunkDelayMs, 0, MAX_DELAY_MS);
  for (const event of eventsOf(turn, id, model)) {
    if (res.destroyed || res.writableEnded) return;
    res.write(event);
    // A separate turn of the event loop per event, so events leave in separate TCP segments.
    await pause(res, delay);
  }
  if (!res.destroyed) res.end();
}
