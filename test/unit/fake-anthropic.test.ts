/**
 * The fake MiMo's Anthropic route, mounted on a plain local HTTP server:
 * integration tests lean on it to enforce MiMo's rule on this surface, so it must.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createAnthropicJsonTap, createAnthropicSseTap } from '../../src/anthropic/fold.js';
import { rewriteMessagesRequest } from '../../src/anthropic/rewrite.js';
import { learnKeys } from '../../src/reasoning/match.js';
import { isReasoningRejection } from '../../src/reasoning/rejection.js';
import { ANTHROPIC_REASONING_ERROR_BODY, handleAnthropic, type FakeAnthropicOptions, type FakeAnthropicState } from '../support/fake-anthropic.js';

interface Reply {
  status: number;
  type: string;
  text: string;
}

let server: http.Server;
let port = 0;
const state: FakeAnthropicState = { produced: new Map(), echoes: [] };
const options: FakeAnthropicOptions = { toolRounds: 2, rejectPlaceholders: false, chunkDelayMs: 0, sseFramedErrors: false };

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let json: unknown;
      try {
        json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        json = undefined;
      }
      handleAnthropic(req, res, json, state, { ...options }).catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  state.produced.clear();
  state.echoes.length = 0;
  Object.assign(options, { toolRounds: 2, rejectPlaceholders: false, chunkDelayMs: 0, sseFramedErrors: false });
});

function post(payload: unknown, raw?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/anthropic/v1/messages', agent: false, headers: { 'content-type': 'application/json', 'x-api-key': 'sk-test' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(raw ?? JSON.stringify(payload));
  });
}

interface Event {
  event: string;
  data: any;
}

/** Splits an SSE body into events; every event here must have an `event:` line matching its data's type. */
function events(text: string): Event[] {
  const out: Event[] = [];
  for (const block of text.split('\n\n')) {
    if (block === '') continue;
    const lines = block.split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]?.startsWith('event: ')).toBe(true);
    expect(lines[1]?.startsWith('data: ')).toBe(true);
    const event = { event: lines[0]!.slice(7), data: JSON.parse(lines[1]!.slice(6)) };
    expect(event.data.type).toBe(event.event);
    out.push(event);
  }
  return out;
}

/** Folds the SSE events into the message's content blocks, independently of src/. */
function blocks(list: Event[]): { content: any[]; stopReason: string | undefined } {
  const content: any[] = [];
  let stopReason: string | undefined;
  for (const { data } of list) {
    if (data.type === 'content_block_start') content[data.index] = { ...data.content_block, partial: '' };
    if (data.type === 'content_block_delta') {
      const block = content[data.index];
      if (data.delta.type === 'thinking_delta') block.thinking += data.delta.thinking;
      if (data.delta.type === 'signature_delta') block.signature += data.delta.signature;
      if (data.delta.type === 'text_delta') block.text += data.delta.text;
      if (data.delta.type === 'input_json_delta') block.partial += data.delta.partial_json;
    }
    if (data.type === 'message_delta') stopReason = data.delta.stop_reason;
  }
  return {
    content: content.map(({ partial, ...block }) => (block.type === 'tool_use' ? { ...block, input: JSON.parse(partial) } : block)),
    stopReason,
  };
}

const user = (text: string) => ({ role: 'user', content: text });
const toolResult = (id: string, content: string) => ({ role: 'user', content: [{ type: 'tool_result', tool_use_id: id, content }] });

describe('the fake Anthropic route', () => {
  it('streams a tool_use turn as Anthropic SSE events, thinking in many pieces, signature empty', async () => {
    const reply = await post({ model: 'mimo-v2.6-pro', max_tokens: 1024, stream: true, messages: [user('北京天气？')] });
    expect(reply.status).toBe(200);
    expect(reply.type).toBe('text/event-stream');
    const list = events(reply.text);
    expect(list[0]?.event).toBe('message_start');
    expect(list.at(-1)?.event).toBe('message_stop');
    expect(list.filter((e) => e.data.delta?.type === 'thinking_delta').length).toBeGreaterThan(5);
    expect(list.filter((e) => e.data.delta?.type === 'input_json_delta').length).toBeGreaterThan(1);
    const { content, stopReason } = blocks(list);
    expect(stopReason).toBe('tool_use');
    expect(content.map((b) => b.type)).toEqual(['thinking', 'tool_use']);
    expect(content[0].thinking).toMatch(/第1步.*get_weather.*\([A-Za-z0-9]{12}\)/);
    expect(content[0].signature).toBe('');
    expect(content[1]).toEqual({ type: 'tool_use', id: expect.stringMatching(/^toolu_[A-Za-z0-9]{20}$/), name: 'get_weather', input: { city: '北京', round: 0 } });
    expect(state.produced.get(content[1].id)).toBe(content[0].thinking);
  });

  it('answers the whole message as JSON when not streamed, with a text block on odd rounds', async () => {
    const first = JSON.parse((await post({ messages: [user('q')] })).text);
    const use = first.content.find((b: any) => b.type === 'tool_use');
    const history = [user('q'), { role: 'assistant', content: first.content }, toolResult(use.id, '晴')];
    const reply = await post({ messages: history });
    expect(reply.type).toBe('application/json');
    const second = JSON.parse(reply.text);
    expect(second).toMatchObject({ type: 'message', role: 'assistant', stop_reason: 'tool_use' });
    expect(second.content.map((b: any) => b.type)).toEqual(['thinking', 'text', 'tool_use']);
    expect(second.content[2]).toMatchObject({ name: 'read_file', input: { city: '北京', round: 1 } });
  });

  it('gives a final answer after toolRounds tool turns and records exact echoes', async () => {
    const history: unknown[] = [user('北京天气？')];
    for (let round = 0; round < 2; round++) {
      const reply = JSON.parse((await post({ messages: history })).text);
      const use = reply.content.find((b: any) => b.type === 'tool_use');
      history.push({ role: 'assistant', content: reply.content }, toolResult(use.id, `第${round}轮结果`));
    }
    const final = await post({ stream: true, messages: history });
    const { content, stopReason } = blocks(events(final.text));
    expect(stopReason).toBe('end_turn');
    expect(content.map((b) => b.type)).toEqual(['thinking', 'text']);
    expect(content[1].text).toContain('北京今天晴');
    expect(state.echoes.filter((e) => e.exact)).toHaveLength(1 + 2);
  });

  it("refuses a tool_use turn without thinking, or with it demoted to text, with MiMo's exact 400", async () => {
    const first = JSON.parse((await post({ messages: [user('q')] })).text);
    const [thinking, use] = first.content;
    for (const turn of [[use], [{ type: 'text', text: thinking.thinking }, use], [{ type: 'thinking', thinking: '', signature: '' }, use]]) {
      const reply = await post({ messages: [user('q'), { role: 'assistant', content: turn }, toolResult(use.id, 'x')] });
      expect(reply.status, JSON.stringify(turn)).toBe(400);
      expect(reply.text).toBe(ANTHROPIC_REASONING_ERROR_BODY);
      expect(isReasoningRejection(400, Buffer.from(reply.text))).toBe(true);
    }
    expect(state.echoes.map((e) => e.received)).toEqual([undefined, undefined, '']);
  });

  it('frames errors as SSE when asked and the request streamed', async () => {
    options.sseFramedErrors = true;
    const reply = await post({ stream: true, messages: [user('q'), { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_x', name: 'ls', input: {} }] }, toolResult('toolu_x', 'x')] });
    expect(reply.status).toBe(400);
    expect(reply.type).toBe('text/event-stream');
    expect(reply.text).toBe(`data: ${ANTHROPIC_REASONING_ERROR_BODY}\n\n`);
    expect(isReasoningRejection(400, Buffer.from(reply.text))).toBe(true);
  });

  it('accepts a placeholder unless rejectPlaceholders, and never checks with thinking disabled', async () => {
    const first = JSON.parse((await post({ messages: [user('q')] })).text);
    const use = first.content.find((b: any) => b.type === 'tool_use');
    const placeholder = { role: 'assistant', content: [{ type: 'thinking', thinking: 'Reasoning for step 1 was not kept.', signature: '' }, use] };
    const history = [user('q'), placeholder, toolResult(use.id, 'x')];
    expect((await post({ messages: history })).status).toBe(200);
    options.rejectPlaceholders = true;
    expect((await post({ messages: history })).text).toBe(ANTHROPIC_REASONING_ERROR_BODY);
    expect((await post({ messages: [user('q'), { role: 'assistant', content: first.content }, toolResult(use.id, 'x')] })).status).toBe(200);
    const bare = [user('q'), { role: 'assistant', content: [use] }, toolResult(use.id, 'x')];
    expect((await post({ thinking: { type: 'disabled' }, messages: bare })).status).toBe(200);
  });

  it('refuses a tool_result with no earlier tool_use as invalid_request_error, which is no reasoning rejection', async () => {
    const reply = await post({ messages: [user('q'), { role: 'assistant', content: [{ type: 'text', text: '好的' }] }, toolResult('toolu_gone', 'x')] });
    expect(reply.status).toBe(400);
    const body = JSON.parse(reply.text);
    expect(body.error.type).toBe('invalid_request_error');
    expect(body.error.message).toContain('toolu_gone');
    expect(isReasoningRejection(400, Buffer.from(reply.text))).toBe(false);
  });

  it('refuses a body that is not JSON or has no messages', async () => {
    for (const raw of ['{oops', '{"model":"x"}']) {
      const reply = await post(undefined, raw);
      expect(reply.status).toBe(400);
      expect(JSON.parse(reply.text).error.type).toBe('invalid_request_error');
    }
  });
});

describe('the Anthropic taps and rewrite against the fake', () => {
  it('learn each turn from the answers and put the thinking back for a client that drops or demotes it', async () => {
    options.toolRounds = 4;
    options.rejectPlaceholders = true;
    const cache = new Map<string, string>();
    const lookup = (keys: Iterable<string>): string | undefined => {
      for (const key of keys) {
        const found = cache.get(key);
        if (found !== undefined) return found;
      }
      return undefined;
    };
    const history: unknown[] = [user('北京天气？')];
    let sent: any;
    for (let round = 0; round <= 4; round++) {
      const stream = round % 2 === 0;
      const outcome = rewriteMessagesRequest(Buffer.from(JSON.stringify({ model: 'mimo-v2.6-pro', stream, messages: history })), lookup, { degrade: 'placeholder' });
      expect(outcome.kind).not.toBe('skipped');
      if (outcome.kind === 'skipped') return;
      expect(outcome.changes.missing, `round ${round}`).toBe(0);
      // Learned as the proxy does (reasoning/exchange.ts): turns sent with their thinking, then the answer in the request's context.
      for (const entry of outcome.learned) for (const key of learnKeys(entry)) cache.set(key, entry.reasoning);
      sent = JSON.parse(outcome.body.toString('utf8'));
      const reply = await post(undefined, outcome.body.toString('utf8'));
      expect(reply.status, reply.text).toBe(200);
      const tap = stream ? createAnthropicSseTap() : createAnthropicJsonTap();
      // Hostile chunking: 7-byte pieces split Chinese characters.
      const bytes = Buffer.from(reply.text, 'utf8');
      for (let i = 0; i < bytes.length; i += 7) tap.feed(bytes.subarray(i, i + 7));
      const learned = tap.end();
      expect(learned).toHaveLength(1);
      for (const entry of learned ?? []) for (const key of learnKeys({ ...entry, context: outcome.context, upstreamIds: true })) cache.set(key, entry.reasoning);
      const content = stream ? blocks(events(reply.text)).content : JSON.parse(reply.text).content;
      const use = content.find((b: any) => b.type === 'tool_use');
      if (!use) break;
      // The client keeps its text and tool_use; odd rounds demote the thinking to a text block.
      const kept = content.filter((b: any) => b.type !== 'thinking');
      const thinking = content.find((b: any) => b.type === 'thinking');
      history.push({ role: 'assistant', content: round % 2 === 1 ? [{ type: 'text', text: thinking.thinking }, ...kept] : kept }, toolResult(use.id, `第${round}轮：晴`));
    }
    expect(state.echoes.length).toBe(1 + 2 + 3 + 4);
    // The demoted copies went: no assistant turn sent a text block equal to its thinking.
    const turns = sent.messages.filter((m: any) => m.role === 'assistant');
    expect(turns).toHaveLength(4);
    for (const turn of turns) {
      const thinking = turn.content.find((b: any) => b.type === 'thinking')?.thinking;
      expect(turn.content[0].type).toBe('thinking');
      expect(turn.content.some((b: any) => b.type === 'text' && b.text === thinking)).toBe(false);
    }
    expect(state.echoes.every((e) => e.exact)).toBe(true);
  });
});
