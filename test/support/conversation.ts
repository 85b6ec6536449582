/**
 * A forgetful agent: runs a multi-step tool conversation and, like the
 * clients that break on MiMo, drops `reasoning_content` from the assistant
 * messages it sends back while keeping their `tool_calls`.
 */
import type http from 'node:http';
import { request, type ClientResponse } from './proxy-client.js';

export interface ChatMessage {
  role: string;
  content?: unknown;
  reasoning_content?: string | null;
  tool_calls?: Array<{ id: string; type: string; function: { name: string; arguments: string } }> | null;
  tool_call_id?: string;
}

/** Fold an SSE chat stream into the assistant message (test-side, independent of src/tap). */
export function foldSse(text: string): ChatMessage {
  const message: ChatMessage = { role: 'assistant', content: '', reasoning_content: '' };
  const calls: Array<{ id: string; type: string; function: { name: string; arguments: string } }> = [];
  for (const line of text.split(/\r?\n/)) {
    if (!line.startsWith('data:')) continue;
    const data = line.slice(5).trim();
    if (data === '[DONE]' || data === '') continue;
    const event = JSON.parse(data);
    if (event.error) throw new Error(`stream error: ${JSON.stringify(event.error)}`);
    const delta = event.choices?.[0]?.delta;
    if (!delta) continue;
    if (delta.reasoning_content) message.reasoning_content += delta.reasoning_content;
    if (delta.content) message.content += delta.content;
    for (const piece of delta.tool_calls ?? []) {
      const call = (calls[piece.index] ??= { id: '', type: 'function', function: { name: '', arguments: '' } });
      if (piece.id) call.id = piece.id;
      if (piece.type) call.type = piece.type;
      if (piece.function?.name) call.function.name += piece.function.name;
      if (piece.function?.arguments) call.function.arguments += piece.function.arguments;
    }
  }
  message.tool_calls = calls.length > 0 ? calls : null;
  return message;
}

export interface Turn {
  response: ClientResponse;
  message: ChatMessage | undefined;
}

export interface ConversationOptions {
  url: string;
  agent: http.Agent;
  ca?: string;
  key: string;
  stream: boolean;
  /** false: a client that keeps its reasoning (the proxy must leave it alone) */
  forgetful?: boolean;
  maxRounds?: number;
  history?: ChatMessage[];
  /** Declared in every request (DeepSeek then wants every earlier turn's reasoning). */
  tools?: unknown[];
  /** Default mimo-v2.6-pro. */
  model?: string;
}

export async function sendChat(options: ConversationOptions, messages: ChatMessage[]): Promise<Turn> {
  const body = JSON.stringify({ model: options.model ?? 'mimo-v2.6-pro', stream: options.stream, messages, ...(options.tools ? { tools: options.tools } : {}) });
  const response = await request(options.url, { agent: options.agent, ca: options.ca, headers: { authorization: `Bearer ${options.key}` }, body });
  if (response.status !== 200) return { response, message: undefined };
  const message = options.stream ? foldSse(response.text) : (response.json().choices[0].message as ChatMessage);
  return { response, message };
}

/** Run rounds until a final answer; returns every turn and the history as the client kept it. */
export async function runConversation(options: ConversationOptions): Promise<{ turns: Turn[]; history: ChatMessage[] }> {
  const history: ChatMessage[] = options.history ? [...options.history] : [{ role: 'user', content: '北京今天天气怎么样？请一步一步查。' }];
  const turns: Turn[] = [];
  for (let round = 0; round < (options.maxRounds ?? 8); round++) {
    const turn = await sendChat(options, history);
    turns.push(turn);
    if (!turn.message) break;
    const kept: ChatMessage = { role: 'assistant', content: turn.message.content ?? '', tool_calls: turn.message.tool_calls ?? null };
    if (options.forgetful === false) kept.reasoning_content = turn.message.reasoning_content ?? null;
    history.push(kept);
    const calls = turn.message.tool_calls ?? [];
    if (calls.length === 0) break;
    for (const call of calls) history.push({ role: 'tool', tool_call_id: call.id, content: `{"result":"晴，25°C","call":"${call.function.name}"}` });
  }
  return { turns, history };
}
