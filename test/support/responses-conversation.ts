/**
 * A forgetful Responses API agent (Codex as it behaves with a reasoning item
 * that has no `summary`): runs a multi-step tool conversation on
 * `/v1/responses` and sends back every output item but the reasoning items:
 * its function_call items (and assistant messages) stay, followed by a
 * function_call_output per call. With `forgetful: false` it keeps the
 * reasoning items too, as Codex does when they carry a `summary`.
 */
import type http from 'node:http';
import zlib from 'node:zlib';
import { request, type ClientResponse } from './proxy-client.js';

export type Item = Record<string, any>;

/** The output items of a Responses SSE stream, from its output_item.done events (test-side, independent of src/responses). */
export function foldResponsesSse(text: string): Item[] {
  const items: Item[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (!line.startsWith('data:')) continue;
    const event = JSON.parse(line.slice(5).trim());
    if (event.type === 'error' || event.type === 'response.failed') throw new Error(`stream error: ${JSON.stringify(event)}`);
    if (event.type === 'response.output_item.done') items[event.output_index] = event.item;
  }
  return items;
}

export interface ResponsesTurnResult {
  response: ClientResponse;
  output: Item[] | undefined;
}

export interface ResponsesOptions {
  url: string;
  agent: http.Agent;
  ca?: string;
  key: string;
  stream: boolean;
  forgetful?: boolean;
  maxRounds?: number;
  history?: Item[];
  /** Extra fields of every request (tools, instructions, ...). */
  extra?: Record<string, unknown>;
}

export async function sendResponses(options: ResponsesOptions, input: Item[] | string): Promise<ResponsesTurnResult> {
  const body = JSON.stringify({ model: 'mimo-v2.6-pro', instructions: 'You are a coding agent.', stream: options.stream, input, ...options.extra });
  const response = await request(options.url, { agent: options.agent, ca: options.ca, headers: { authorization: `Bearer ${options.key}` }, body });
  if (response.status !== 200) return { response, output: undefined };
  const text = decoded(response).toString('utf8');
  const output = options.stream ? foldResponsesSse(text) : (JSON.parse(text).output as Item[]);
  return { response, output };
}

/** The body decoded as its Content-Encoding says (an upstream may compress whatever was asked). */
function decoded(response: ClientResponse): Buffer {
  const coding = String(response.headers['content-encoding'] ?? 'identity').toLowerCase();
  if (coding === 'gzip') return zlib.gunzipSync(response.body);
  if (coding === 'br') return zlib.brotliDecompressSync(response.body);
  if (coding === 'deflate') return zlib.inflateSync(response.body);
  if (coding === 'zstd') return zlib.zstdDecompressSync(response.body);
  return response.body;
}

/** An output item as a client sends it back: without its `status`. */
function asInput(item: Item): Item {
  const { status: _status, ...rest } = item;
  return rest;
}

export async function runResponsesConversation(options: ResponsesOptions): Promise<{ turns: ResponsesTurnResult[]; history: Item[] }> {
  const history: Item[] = options.history ? [...options.history] : [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: '仓库里有什么？一步一步看。' }] }];
  const turns: ResponsesTurnResult[] = [];
  for (let round = 0; round < (options.maxRounds ?? 8); round++) {
    const turn = await sendResponses(options, history);
    turns.push(turn);
    if (!turn.output) break;
    const kept = turn.output.filter((item) => options.forgetful === false || item.type !== 'reasoning').map(asInput);
    history.push(...kept);
    const calls = turn.output.filter((item) => item.type === 'function_call');
    if (calls.length === 0) break;
    for (const call of calls) history.push({ type: 'function_call_output', call_id: call.call_id, output: `ok: ${call.name} 读到 3 个文件` });
  }
  return { turns, history };
}
