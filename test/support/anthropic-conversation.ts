/**
 * A forgetful Anthropic-protocol agent: runs a multi-step tool conversation on
 * `/anthropic/v1/messages` and, like the clients that break on MiMo, drops the
 * `thinking` blocks from the assistant turns it sends back (keeping text and
 * tool_use), or, with `demote`, sends the thinking back as a plain text block.
 */
import type http from 'node:http';
import { request, type ClientResponse } from './proxy-client.js';

export interface Block {
  type: string;
  text?: string;
  thinking?: string;
  signature?: string;
  id?: string;
  name?: string;
  input?: unknown;
  tool_use_id?: string;
  content?: unknown;
}

export interface Turn {
  role: 'user' | 'assistant';
  content: string | Block[];
}

/** Fold an Anthropic SSE stream into the assistant's content blocks (test-side, independent of src/anthropic). */
export function foldAnthropicSse(text: string): Block[] {
  const blocks: Block[] = [];
  const json: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (!line.startsWith('data:')) continue;
    const event = JSON.parse(line.slice(5).trim());
    if (event.type === 'error') throw new Error(`stream error: ${JSON.stringify(event.error)}`);
    if (event.type === 'content_block_start') {
      blocks[event.index] = { ...event.content_block };
      json[event.index] = '';
    } else if (event.type === 'content_block_delta') {
      const block = blocks[event.index]!;
      const d = event.delta;
      if (d.type === 'thinking_delta') block.thinking = (block.thinking ?? '') + d.thinking;
      if (d.type === 'signature_delta') block.signature = (block.signature ?? '') + d.signature;
      if (d.type === 'text_delta') block.text = (block.text ?? '') + d.text;
      if (d.type === 'input_json_delta') json[event.index] += d.partial_json;
    } else if (event.type === 'content_block_stop') {
      const block = blocks[event.index]!;
      if (block.type === 'tool_use') block.input = json[event.index] ? JSON.parse(json[event.index]!) : {};
    }
  }
  return blocks;
}

export interface AnthropicTurnResult {
  response: ClientResponse;
  content: Block[] | undefined;
}

export interface AnthropicOptions {
  url: string;
  agent: http.Agent;
  ca?: string;
  key: string;
  stream: boolean;
  forgetful?: boolean;
  demote?: boolean;
  maxRounds?: number;
  history?: Turn[];
}

export async function sendMessages(options: AnthropicOptions, messages: Turn[]): Promise<AnthropicTurnResult> {
  const body = JSON.stringify({ model: 'mimo-v2.6-pro', max_tokens: 1024, stream: options.stream, messages });
  const response = await request(options.url, { agent: options.agent, ca: options.ca, headers: { 'x-api-key': options.key, 'anthropic-version': '2023-06-01' }, body });
  if (response.status !== 200) return { response, content: undefined };
  const content = options.stream ? foldAnthropicSse(response.text) : (response.json().content as Block[]);
  return { response, content };
}

export async function runAnthropicConversation(options: AnthropicOptions): Promise<{ turns: AnthropicTurnResult[]; history: Turn[] }> {
  const history: Turn[] = options.history ? [...options.history] : [{ role: 'user', content: '北京今天天气怎么样？' }];
  const turns: AnthropicTurnResult[] = [];
  for (let round = 0; round < (options.maxRounds ?? 8); round++) {
    const turn = await sendMessages(options, history);
    turns.push(turn);
    if (!turn.content) break;
    let kept: Block[];
    if (options.forgetful === false) kept = turn.content;
    else if (options.demote) kept = turn.content.map((b) => (b.type === 'thinking' ? { type: 'text', text: b.thinking ?? '' } : b));
    else kept = turn.content.filter((b) => b.type !== 'thinking');
    history.push({ role: 'assistant', content: kept });
    const uses = turn.content.filter((b) => b.type === 'tool_use');
    if (uses.length === 0) break;
    history.push({ role: 'user', content: uses.map((u) => ({ type: 'tool_result', tool_use_id: u.id, content: '晴，25°C' })) });
  }
  return { turns, history };
}
