/**
 * The fake MiMo's Responses API route, `POST /v1/responses`, mounted by
 * fake-mimo.ts. Stateless, as MiMo's is reported to be: a request with
 * `previous_response_id`, or a tool type it does not serve (`web_search`,
 * `custom`, `image_generation`), gets a 400 `responses_feature_not_supported`.
 *
 * With `enforce` (the default) it applies the rule DeepSeek applies on this
 * surface: in thinking mode every function_call item must have a reasoning
 * item with text (or encrypted content) before it in its run (the items of one
 * output: reasoning, function_call, assistant message), or the answer is a
 * 400 in the Responses error shape, worded as DeepSeek words it ("The
 * `reasoning_text` in the thinking mode must be passed back to the API.") or,
 * with `rejection: 'mimo'`, with MiMo's reasoning_content sentence. A
 * function_call_output whose call_id matches no earlier function_call is
 * refused as OpenAI refuses it, so "strip the calls" fails here too.
 *
 * The script: with k runs with function calls in the input, k < toolRounds
 * answers a reasoning item and `callsPerOutput` function calls; otherwise a
 * reasoning item and an assistant message. Every reasoning text is unique (a
 * random tag). The reasoning item's shape is chosen by `summary`: 'absent'
 * (MiMo's reported shape: id, status, content), 'empty' (`summary: []`) or
 * 'text' (a summary part, streamed with reasoning_summary_text events); with
 * `encrypted`, it also carries encrypted_content.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { bounded, isObject, randomId, splitText as split } from './fake-common.js';

export interface ResponsesEcho {
  /** The call the echo is for. */
  callId: string;
  /** The reasoning item(s) the run carried before the call, as received (but for `status`). */
  received: Record<string, unknown>[];
  /** The reasoning item produced for that call (without status), or undefined for a call this fake never made. */
  produced: Record<string, unknown> | undefined;
  /** One received item equals the produced one, field for field (no field added or missing). */
  exact: boolean;
}

export interface FakeResponsesState {
  /** The reasoning item this route produced for each call_id, as it would come back (no status). */
  produced: Map<string, Record<string, unknown>>;
  echoes: ResponsesEcho[];
}

export interface FakeResponsesOptions {
  toolRounds: number;
  /** Function calls per tool-calling output (default 1). */
  callsPerOutput?: number;
  summary?: 'absent' | 'empty' | 'text';
  encrypted?: boolean;
  /** Default true: enforce the passback rule. */
  enforce?: boolean;
  /** Strict: a reasoning item other than exactly the one produced for that call gets the 400. */
  rejectPlaceholders: boolean;
  /** Whose wording the 400 carries (default 'deepseek'). */
  rejection?: 'deepseek' | 'mimo';
  /** When the request had stream:true, send the 400 as SSE events (an `error` event then `response.failed`). */
  sseFramedErrors: boolean;
  chunkDelayMs: number;
  /** Streamed answers: nothing more is written after this many events until the client goes away. */
  stallAfterEvents?: number | undefined;
  /** Streams: hold the response open this long after its last event before ending it. */
  endDelayMs?: number | undefined;
}

export const DEEPSEEK_RESPONSES_REJECTION = 'The `reasoning_text` in the thinking mode must be passed back to the API.';
export const MIMO_RESPONSES_REJECTION = 'The reasoning_content in the thinking mode must be passed back to the API.';

/** The 400 in the Responses error shape. */
export function responsesError(message: string, code: string, param: string | null = null): string {
  return JSON.stringify({ error: { message, type: 'invalid_request_error', param, code } });
}

const TOOL_NAMES = ['shell', 'read_file', 'apply_patch'] as const;
const UNSUPPORTED_TOOLS = new Set(['web_search', 'web_search_preview', 'custom', 'image_generation', 'file_search', 'code_interpreter']);
const MAX_TOOL_ROUNDS = 10_000;
const MAX_CALLS = 16;
const MAX_DELAY_MS = 60_000;

function itemType(item: unknown): string {
  if (!isObject(item)) return '';
  if (typeof item.type === 'string') return item.type;
  return item.type === undefined && typeof item.role === 'string' ? 'message' : '';
}

function inRun(item: unknown): boolean {
  const type = itemType(item);
  return type === 'reasoning' || type === 'function_call' || (type === 'message' && isObject(item) && item.role === 'assistant');
}

/** The fields of a reasoning item that identify what it carries, as it came back. */
function keptOf(item: Record<string, any>): Record<string, unknown> {
  const kept: Record<string, unknown> = {};
  for (const field of ['type', 'id', 'summary', 'content', 'encrypted_content']) if (item[field] !== undefined) kept[field] = item[field];
  return kept;
}

function carries(item: Record<string, any>): boolean {
  const texts = [...(Array.isArray(item.content) ? item.content : []), ...(Array.isArray(item.summary) ? item.summary : [])]
    .map((part: unknown) => (isObject(part) && typeof part.text === 'string' ? part.text : ''))
    .join('');
  return texts.trim() !== '' || (typeof item.encrypted_content === 'string' && item.encrypted_content !== '');
}

/** Same fields, same values: what came back is what was produced, nothing added (a client's `encrypted_content: null` aside). */
function sameItem(received: Record<string, unknown>, produced: Record<string, unknown>): boolean {
  const fields = new Set([...Object.keys(received), ...Object.keys(produced)]);
  for (const field of fields) {
    if (field === 'encrypted_content' && produced[field] === undefined && received[field] === null) continue;
    if (JSON.stringify(received[field]) !== JSON.stringify(produced[field])) return false;
  }
  return true;
}

type Verdict = { status: number; body: string } | undefined;

/** Walks the input: records echoes, and returns the first rule the request breaks, if any. */
function check(body: Record<string, any>, state: FakeResponsesState, options: FakeResponsesOptions): Verdict {
  if (body.previous_response_id !== undefined && body.previous_response_id !== null) {
    return { status: 400, body: responsesError('previous_response_id is not supported: send the whole conversation in input.', 'responses_feature_not_supported', 'previous_response_id') };
  }
  for (const tool of Array.isArray(body.tools) ? body.tools : []) {
    if (isObject(tool) && UNSUPPORTED_TOOLS.has(tool.type)) {
      return { status: 400, body: responsesError(`Tool type '${tool.type}' is not supported.`, 'responses_feature_not_supported', 'tools') };
    }
  }
  const input: unknown[] = typeof body.input === 'string' ? [{ role: 'user', content: body.input }] : body.input;
  const thinking = !(isObject(body.thinking) && body.thinking.type === 'disabled');
  const knownCalls = new Set<string>();
  let run: Record<string, any>[] = [];
  let verdict: Verdict;
  for (const item of input) {
    if (!inRun(item)) run = [];
    const type = itemType(item);
    if (type === 'reasoning') run.push(item as Record<string, any>);
    if (type === 'function_call') {
      const callId = typeof (item as any).call_id === 'string' ? ((item as any).call_id as string) : '';
      knownCalls.add(callId);
      // As received, but for status (a field of the output's lifecycle, which clients may send back).
      const received = run.map(({ status: _status, ...rest }) => rest);
      const produced = state.produced.get(callId);
      const exact = produced !== undefined && received.some((r) => sameItem(r, produced));
      state.echoes.push({ callId, received, produced, exact });
      if (!thinking || verdict || options.enforce === false) continue;
      const missing = !run.some(carries);
      const wrong = options.rejectPlaceholders && produced !== undefined && !exact;
      if (missing || wrong) {
        const message = options.rejection === 'mimo' ? MIMO_RESPONSES_REJECTION : DEEPSEEK_RESPONSES_REJECTION;
        verdict = { status: 400, body: responsesError(message, 'invalid_request_error', 'input') };
      }
    }
    if (type === 'function_call_output' && !verdict) {
      const callId = (item as any).call_id;
      if (typeof callId !== 'string' || !knownCalls.has(callId)) {
        verdict = { status: 400, body: responsesError(`No tool call found for function call output with call_id ${String(callId)}.`, 'invalid_request_error', 'input') };
      }
    }
  }
  return verdict;
}

/** Runs with function calls in the input: the round the script is at. */
function roundOf(input: unknown[]): number {
  let rounds = 0;
  let counted = false;
  for (const item of input) {
    if (!inRun(item)) counted = false;
    else if (itemType(item) === 'function_call' && !counted) {
      rounds++;
      counted = true;
    }
  }
  return rounds;
}

interface Output {
  items: Record<string, any>[];
  reasoning: Record<string, any>;
}

function makeOutput(round: number, options: FakeResponsesOptions): Output {
  const tag = randomId(12);
  const tool = round < options.toolRounds;
  const text = tool ? `第${round + 1}步：先调用工具看看仓库里有什么。(${tag})` : `所有结果都有了，可以回答了。(${tag})`;
  const reasoning: Record<string, any> = { id: `rs_${randomId(16)}`, type: 'reasoning' };
  if (options.summary === 'empty') reasoning.summary = [];
  if (options.summary === 'text') reasoning.summary = [{ type: 'summary_text', text: `**Step ${round + 1}** (${tag})` }];
  reasoning.content = [{ type: 'reasoning_text', text }];
  if (options.encrypted) reasoning.encrypted_content = `gAAAAB${randomId(40)}`;
  reasoning.status = 'completed';
  const items: Record<string, any>[] = [reasoning];
  if (tool) {
    const calls = bounded(options.callsPerOutput ?? 1, 1, MAX_CALLS);
    for (let i = 0; i < calls; i++) {
      const name = TOOL_NAMES[(round + i) % TOOL_NAMES.length]!;
      items.push({ id: `fc_${randomId(16)}`, type: 'function_call', status: 'completed', arguments: JSON.stringify({ path: `src/第${round + 1}轮/${i}.ts`, round }), call_id: `call_${randomId(20)}`, name });
    }
  } else {
    items.push({ id: `msg_${randomId(16)}`, type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: `仓库里有三个文件。Done. (${tag})`, annotations: [] }] });
  }
  return { items, reasoning };
}

/** The response object around an output. */
export function responseObject(id: string, model: string, status: string, output: unknown[]): Record<string, unknown> {
  return {
    id,
    object: 'response',
    created_at: Math.floor(Date.now() / 1000),
    status,
    error: null,
    incomplete_details: null,
    model,
    output,
    usage: status === 'completed' ? { input_tokens: 42, output_tokens: 64, output_tokens_details: { reasoning_tokens: 32 }, total_tokens: 106 } : null,
  };
}

/** The SSE events of one streamed response (each `event: TYPE\ndata: JSON\n\n`), as OpenAI's server sends them. */
export function responseEvents(id: string, model: string, output: readonly Record<string, any>[]): string[] {
  const events: string[] = [];
  let sequence = 0;
  const emit = (type: string, data: Record<string, unknown>): void => {
    events.push(`event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence++, ...data })}\n\n`);
  };
  emit('response.created', { response: responseObject(id, model, 'in_progress', []) });
  emit('response.in_progress', { response: responseObject(id, model, 'in_progress', []) });
  output.forEach((item, output_index) => {
    const item_id = item.id;
    if (item.type === 'reasoning') {
      const added: Record<string, unknown> = { id: item_id, type: 'reasoning' };
      if (item.summary !== undefined) added.summary = [];
      added.content = [];
      if (item.encrypted_content !== undefined) added.encrypted_content = null;
      added.status = 'in_progress';
      emit('response.output_item.added', { output_index, item: added });
      (Array.isArray(item.summary) ? item.summary : []).forEach((part: any, summary_index: number) => {
        emit('response.reasoning_summary_part.added', { item_id, output_index, summary_index, part: { type: 'summary_text', text: '' } });
        for (const delta of split(part.text, 4)) emit('response.reasoning_summary_text.delta', { item_id, output_index, summary_index, delta });
        emit('response.reasoning_summary_text.done', { item_id, output_index, summary_index, text: part.text });
        emit('response.reasoning_summary_part.done', { item_id, output_index, summary_index, part });
      });
      item.content.forEach((part: any, content_index: number) => {
        for (const delta of split(part.text, 12)) emit('response.reasoning_text.delta', { item_id, output_index, content_index, delta });
        emit('response.reasoning_text.done', { item_id, output_index, content_index, text: part.text });
      });
    } else if (item.type === 'function_call') {
      emit('response.output_item.added', { output_index, item: { ...item, arguments: '', status: 'in_progress' } });
      for (const delta of split(item.arguments, 3)) emit('response.function_call_arguments.delta', { item_id, output_index, delta });
      emit('response.function_call_arguments.done', { item_id, output_index, arguments: item.arguments });
    } else if (item.type === 'message') {
      emit('response.output_item.added', { output_index, item: { ...item, content: [], status: 'in_progress' } });
      item.content.forEach((part: any, content_index: number) => {
        emit('response.content_part.added', { item_id, output_index, content_index, part: { type: 'output_text', text: '', annotations: [] } });
        for (const delta of split(part.text, 6)) emit('response.output_text.delta', { item_id, output_index, content_index, delta, logprobs: [] });
        emit('response.output_text.done', { item_id, output_index, content_index, text: part.text, logprobs: [] });
        emit('response.content_part.done', { item_id, output_index, content_index, part });
      });
    }
    emit('response.output_item.done', { output_index, item });
  });
  emit('response.completed', { response: responseObject(id, model, 'completed', [...output]) });
  return events;
}

export async function handleResponses(req: IncomingMessage, res: ServerResponse, body: unknown, state: FakeResponsesState, options: FakeResponsesOptions, record: { status: number }): Promise<void> {
  void req;
  const stream = isObject(body) && body.stream === true;
  const sendError = (status: number, payload: string): void => {
    record.status = status;
    if (stream && options.sseFramedErrors) {
      const error = JSON.parse(payload).error as Record<string, unknown>;
      const text =
        `event: error\ndata: ${JSON.stringify({ type: 'error', sequence_number: 0, ...error })}\n\n` +
        `event: response.failed\ndata: ${JSON.stringify({ type: 'response.failed', sequence_number: 1, response: { ...responseObject(`resp_${randomId(20)}`, 'mimo-v2.6-pro', 'failed', []), error } })}\n\n`;
      res.writeHead(status, { 'content-type': 'text/event-stream', 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
    res.end(payload);
  };
  if (!isObject(body) || (typeof body.input !== 'string' && !Array.isArray(body.input))) {
    sendError(400, responsesError("Invalid request: 'input' must be a string or a list of items.", 'invalid_request_error', 'input'));
    return;
  }
  const verdict = check(body, state, options);
  if (verdict) {
    sendError(verdict.status, verdict.body);
    return;
  }
  const input: unknown[] = typeof body.input === 'string' ? [] : body.input;
  const { items, reasoning } = makeOutput(roundOf(input), { ...options, toolRounds: bounded(options.toolRounds, 0, MAX_TOOL_ROUNDS) });
  for (const item of items) if (item.type === 'function_call') state.produced.set(item.call_id, keptOf(reasoning));
  const id = `resp_${randomId(24)}`;
  const model = typeof body.model === 'string' ? body.model : 'mimo-v2.6-pro';
  record.status = 200;
  if (!stream) {
    const payload = JSON.stringify(responseObject(id, model, 'completed', items));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
    res.end(payload);
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const delay = bounded(options.chunkDelayMs, 0, MAX_DELAY_MS);
  for (const [index, event] of responseEvents(id, model, items).entries()) {
    if (res.destroyed || res.writableEnded) return;
    if (options.stallAfterEvents !== undefined && index >= options.stallAfterEvents) {
      await new Promise((resolve) => res.once('close', resolve));
      return;
    }
    res.write(event);
    await new Promise((resolve) => (delay > 0 ? setTimeout(resolve, delay) : setImmediate(resolve)));
  }
  const linger = bounded(options.endDelayMs ?? 0, 0, 60_000);
  if (linger > 0 && !res.destroyed) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, linger);
      res.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  if (!res.destroyed) res.end();
}
