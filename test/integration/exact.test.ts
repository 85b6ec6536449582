/**
 * Exact per conversation, and lossless: through the real proxy against the
 * fake MiMo, a put-back is only ever the reasoning of the same turn in the
 * same conversation, and a rewritten body changes nothing but the fields the
 * rewrite had to change. The fake's script makes every conversation's first
 * step the same turn (no text, get_weather({"city":"北京","round":0})) with a
 * different reasoning each time: the case where a fingerprint alone would
 * cross conversations.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAnthropicConversation, sendMessages, type Block, type Turn } from '../support/anthropic-conversation.js';
import { sendChat, type ChatMessage } from '../support/conversation.js';
import { startRig, stopRig, type Rig } from '../support/harness.js';
import { request } from '../support/proxy-client.js';
import { sendResponses, type Item } from '../support/responses-conversation.js';
import { parseJson } from '../../src/reasoning/json.js';

const CHAT = 'https://api.xiaomimimo.com/v1/chat/completions';
const MESSAGES = 'https://api.xiaomimimo.com/anthropic/v1/messages';
const RESPONSES = 'https://api.xiaomimimo.com/v1/responses';

type Json = Record<string, unknown>;

describe('a put-back is for the same turn of the same conversation', () => {
  let rig: Rig;
  const ca = (): string => rig.h.proxy.ca.caPem;

  beforeAll(async () => {
    rig = await startRig({ toolRounds: 3 }, ['--no-persist']);
  });
  afterAll(() => stopRig(rig));

  /** One round of a forgetful chat client: the first step of a conversation, as the client keeps it. */
  async function firstStep(key: string, question: string, stream = false): Promise<{ history: ChatMessage[]; reasoning: string; id: string }> {
    const history: ChatMessage[] = [{ role: 'system', content: 'You are a weather agent.' }, { role: 'user', content: question }];
    const turn = await sendChat({ url: CHAT, agent: rig.agent, ca: ca(), key, stream }, history);
    expect(turn.response.status).toBe(200);
    const call = turn.message!.tool_calls![0]!;
    history.push({ role: 'assistant', content: turn.message!.content ?? '', tool_calls: turn.message!.tool_calls ?? null });
    history.push({ role: 'tool', tool_call_id: call.id, content: '{"weather":"晴"}' });
    return { history, reasoning: rig.fake.produced.get(call.id)!, id: call.id };
  }

  /** The history with every tool call id replaced by the client's own numbering. */
  function renumbered(history: ChatMessage[]): ChatMessage[] {
    const ids = new Map<string, string>();
    const own = (id: string): string => {
      if (!ids.has(id)) ids.set(id, `call_${ids.size}`);
      return ids.get(id)!;
    };
    return history.map((m) => ({
      ...m,
      ...(m.tool_calls ? { tool_calls: m.tool_calls.map((c) => ({ ...c, id: own(c.id) })) } : {}),
      ...(m.tool_call_id ? { tool_call_id: own(m.tool_call_id) } : {}),
    }));
  }

  /** Send the next request of a conversation; what the upstream received for its assistant turns. */
  async function resume(key: string, history: ChatMessage[]): Promise<unknown[]> {
    const before = rig.fake.requests.length;
    const turn = await sendChat({ url: CHAT, agent: rig.agent, ca: ca(), key, stream: false }, history);
    expect(turn.response.status).toBe(200);
    const received = rig.fake.requests[before]!.json as { messages: ChatMessage[] };
    return received.messages.filter((m) => m.role === 'assistant').map((m) => m.reasoning_content);
  }

  for (const stream of [false, true]) {
    it(`two conversations with the same first step each get their own reasoning back after the client renumbered the ids (${stream ? 'streamed' : 'JSON'})`, async () => {
      const key = `sk-two-convs-${stream}`;
      const a = await firstStep(key, '北京今天天气怎么样？', stream);
      const b = await firstStep(key, '明天要带伞吗？', stream);
      expect(a.reasoning).not.toBe(b.reasoning);
      // A resumes after B was learned: a fingerprint alone would find B's (the newest).
      expect(await resume(key, renumbered(a.history))).toEqual([a.reasoning]);
      expect(await resume(key, renumbered(b.history))).toEqual([b.reasoning]);
    });
  }

  it('two conversations that nothing tells apart get a placeholder, never a guess; kept ids still tell them apart', async () => {
    const key = 'sk-twins';
    const a = await firstStep(key, '同一个问题');
    const b = await firstStep(key, '同一个问题');
    expect(a.reasoning).not.toBe(b.reasoning);
    for (const history of [renumbered(a.history), renumbered(b.history)]) {
      const [sent] = await resume(key, history);
      expect(sent).toMatch(/^Reasoning for step 1 was not kept; this step called get_weather\.$/);
    }
    // The ids the upstream issued are unique: a client that keeps them gets each its own.
    expect(await resume(key, a.history)).toEqual([a.reasoning]);
    expect(await resume(key, b.history)).toEqual([b.reasoning]);
  });

  it('an id that another turn used is no match: a client numbering its calls per conversation gets a placeholder, not the other conversation’s reasoning', async () => {
    const key = 'sk-numbered';
    // Conversation A sends call_0 with its own reasoning (the proxy learns it from the request).
    const own = '甲对话自己的思考：先查北京。';
    const historyA: ChatMessage[] = [
      { role: 'user', content: '甲' },
      { role: 'assistant', content: '', reasoning_content: own, tool_calls: [{ id: 'call_0', type: 'function', function: { name: 'read_file', arguments: '{"path":"README.md"}' } }] },
      { role: 'tool', tool_call_id: 'call_0', content: '# readme' },
    ];
    expect((await resume(key, historyA))[0]).toBe(own);
    // Conversation B (another text, another call) reuses call_0 without reasoning.
    const historyB: ChatMessage[] = [
      { role: 'user', content: '乙' },
      { role: 'assistant', content: '我看看配置。', tool_calls: [{ id: 'call_0', type: 'function', function: { name: 'read_file', arguments: '{"path":"config.json"}' } }] },
      { role: 'tool', tool_call_id: 'call_0', content: '{}' },
    ];
    const [sent] = await resume(key, historyB);
    expect(sent).not.toBe(own);
    expect(sent).toMatch(/^Reasoning for step 1 was not kept/);
    // A itself, forgetful now, still gets its own back (same turn, same conversation).
    const forgetfulA = historyA.map(({ reasoning_content: _, ...m }) => m);
    expect(await resume(key, forgetfulA)).toEqual([own]);
  });

  it('still matches when the client rewrites its system prompt and trims turns older than the window', async () => {
    const key = 'sk-trimmer';
    let history: ChatMessage[] = [{ role: 'system', content: 'v1' }, { role: 'user', content: '查八次天气' }];
    const produced: string[] = [];
    rig.fake.options.toolRounds = 8;
    try {
      for (let round = 0; round < 8; round++) {
        const turn = await sendChat({ url: CHAT, agent: rig.agent, ca: ca(), key, stream: false }, history);
        expect(turn.response.status).toBe(200);
        const call = turn.message!.tool_calls![0]!;
        produced.push(rig.fake.produced.get(call.id)!);
        history = [...history, { role: 'assistant', content: turn.message!.content ?? '', tool_calls: turn.message!.tool_calls ?? null }, { role: 'tool', tool_call_id: call.id, content: `第${round}次：晴` }];
      }
      // A new system prompt; the question and the first step dropped.
      const trimmed = [{ role: 'system', content: 'v2: today is Monday' }, ...history.slice(4)];
      // Ids kept: every remaining step (2..8) is found by its ids and turn.
      expect(await resume(key, trimmed)).toEqual(produced.slice(1));
      // Ids renumbered too: steps 6..8 still have the 8 messages before them intact and match
      // by their conversation; steps 2..5 lost part of theirs, so they degrade (never a guess).
      const sent = await resume(key, renumbered(trimmed));
      expect(sent.slice(4)).toEqual(produced.slice(5));
      for (const placeholder of sent.slice(0, 4)) expect(placeholder).toMatch(/^Reasoning for step \d was not kept/);
    } finally {
      rig.fake.options.toolRounds = 3;
    }
  });

  describe('on the Anthropic surface', () => {
    const renumber = (history: Turn[]): Turn[] =>
      history.map((t) => ({
        ...t,
        content:
          typeof t.content === 'string'
            ? t.content
            : t.content.map((blk): Block => (blk.type === 'tool_use' ? { ...blk, id: 'toolu_0' } : blk.type === 'tool_result' ? { ...blk, tool_use_id: 'toolu_0' } : blk)),
      }));
    async function first(key: string, question: string): Promise<{ history: Turn[]; thinking: string }> {
      const { history, turns } = await runAnthropicConversation({ url: MESSAGES, agent: rig.agent, ca: ca(), key, stream: true, maxRounds: 1, history: [{ role: 'user', content: question }] });
      const use = turns[0]!.content!.find((b) => b.type === 'tool_use')!;
      return { history, thinking: rig.fake.anthropic.produced.get(use.id!)! };
    }
    async function thinkingSent(key: string, history: Turn[]): Promise<unknown[]> {
      const before = rig.fake.requests.length;
      const res = await sendMessages({ url: MESSAGES, agent: rig.agent, ca: ca(), key, stream: false }, history);
      expect(res.response.status).toBe(200);
      const sent = (rig.fake.requests[before]!.json as { messages: { role: string; content: Block[] }[] }).messages[1]!.content;
      return sent.filter((blk) => blk.type === 'thinking').map((blk) => blk.thinking);
    }

    it('two conversations with the same first step, ids renumbered, each get their own thinking', async () => {
      const key = 'sk-anth-two';
      const a = await first(key, '北京天气？');
      const b = await first(key, '上海天气？');
      expect(a.thinking).not.toBe(b.thinking);
      expect(await thinkingSent(key, renumber(a.history))).toEqual([a.thinking]);
      expect(await thinkingSent(key, renumber(b.history))).toEqual([b.thinking]);
    });

    it('two conversations that nothing tells apart get a placeholder; kept ids find each its own', async () => {
      const key = 'sk-anth-twins';
      const a = await first(key, '同一个问题');
      const b = await first(key, '同一个问题');
      for (const history of [renumber(a.history), renumber(b.history)]) {
        expect(await thinkingSent(key, history)).toEqual([expect.stringMatching(/^Reasoning for step 1 was not kept/)]);
      }
      expect(await thinkingSent(key, a.history)).toEqual([a.thinking]);
      expect(await thinkingSent(key, b.history)).toEqual([b.thinking]);
    });
  });

  describe('on the Responses surface', () => {
    /** The first step of a forgetful Responses client: its question, the call (no reasoning item), its output. */
    async function first(key: string, question: string, stream: boolean): Promise<{ history: Item[]; reasoning: Item }> {
      const history: Item[] = [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: question }] }];
      const turn = await sendResponses({ url: RESPONSES, agent: rig.agent, ca: ca(), key, stream }, history);
      expect(turn.response.status).toBe(200);
      const call = turn.output!.find((item) => item.type === 'function_call')!;
      const { status: _status, ...kept } = call;
      history.push(kept, { type: 'function_call_output', call_id: call.call_id, output: '{"files":["README.md"]}' });
      return { history, reasoning: rig.fake.responses.produced.get(call.call_id)! };
    }
    const renumber = (history: Item[]): Item[] => history.map((item) => (item.call_id === undefined ? item : { ...item, call_id: 'call_0' }));
    /** The reasoning items the upstream received for the history. */
    async function reasoningSent(key: string, history: Item[]): Promise<Item[]> {
      const before = rig.fake.requests.length;
      const turn = await sendResponses({ url: RESPONSES, agent: rig.agent, ca: ca(), key, stream: false }, history);
      expect(turn.response.status).toBe(200);
      return ((rig.fake.requests[before]!.json as { input: Item[] }).input).filter((item) => item.type === 'reasoning');
    }

    for (const stream of [false, true]) {
      it(`two conversations with the same first call, call_ids renumbered, each get their own reasoning item (${stream ? 'streamed' : 'JSON'})`, async () => {
        const key = `sk-resp-two-${stream}`;
        const a = await first(key, '仓库里有什么？', stream);
        const b = await first(key, '看看 src 目录。', stream);
        expect(a.reasoning).not.toEqual(b.reasoning);
        // The same call in both: a fingerprint alone would find B's (the newest) for A.
        expect(a.history[1]!.arguments).toBe(b.history[1]!.arguments);
        expect(await reasoningSent(key, renumber(a.history))).toEqual([a.reasoning]);
        expect(await reasoningSent(key, renumber(b.history))).toEqual([b.reasoning]);
      });
    }

    it('two conversations that nothing tells apart get a placeholder item; kept call_ids find each its own', async () => {
      const key = 'sk-resp-twins';
      const a = await first(key, '同一个问题', true);
      const b = await first(key, '同一个问题', false);
      for (const history of [renumber(a.history), renumber(b.history)]) {
        const sent = await reasoningSent(key, history);
        expect(sent).toHaveLength(1);
        expect(sent[0]!.id).toBeUndefined();
        expect(sent[0]!.content[0].text).toMatch(/^Reasoning for step 1 was not kept/);
      }
      expect(await reasoningSent(key, a.history)).toEqual([a.reasoning]);
      expect(await reasoningSent(key, b.history)).toEqual([b.reasoning]);
    });

    it('a call_id another conversation used is no match: its reasoning never reaches a different call', async () => {
      const key = 'sk-resp-reused';
      const a = await first(key, '甲', false);
      // Conversation B sends A's call_id on a call of its own (another path), without reasoning.
      const history: Item[] = [
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: '乙' }] },
        { type: 'function_call', call_id: a.history[1]!.call_id, name: a.history[1]!.name, arguments: '{"path":"config.json"}' },
        { type: 'function_call_output', call_id: a.history[1]!.call_id, output: '{}' },
      ];
      const sent = await reasoningSent(key, history);
      expect(sent).toHaveLength(1);
      expect(sent[0]).not.toEqual(a.reasoning);
      expect(sent[0]!.content[0].text).toMatch(/^Reasoning for step 1 was not kept/);
    });
  });
});

describe('a rewritten body changes nothing but the fields the rewrite changed', () => {
  let rig: Rig;
  beforeAll(async () => {
    rig = await startRig({ toolRounds: 3 }, ['--no-persist']);
  });
  afterAll(() => stopRig(rig));

  it('keeps big, huge, negative-zero and trailing-zero numbers exactly as sent (chat)', async () => {
    const body =
      '{"model":"mimo-v2.6-pro","seed":12345678901234567890,"max_tokens":1e400,"temperature":-0,"top_p":1.0,"frequency_penalty":0.0000001,' +
      '"tools":[{"type":"function","function":{"name":"read_file","parameters":{"type":"object","properties":{"n":{"type":"number","maximum":1E+999,"minimum":-0.0}}}}}],' +
      '"messages":[{"role":"user","content":"读一下"},{"role":"assistant","content":"","tool_calls":[{"id":"call_x","type":"function","function":{"name":"read_file","arguments":"{\\"n\\":12345678901234567890}"}}],"metadata":{"cost":1.50,"big":98765432109876543210}},' +
      '{"role":"tool","tool_call_id":"call_x","content":"ok"}]}';
    const before = rig.fake.requests.length;
    const res = await request(CHAT, { agent: rig.agent, ca: rig.h.proxy.ca.caPem, headers: { authorization: 'Bearer sk-numbers' }, body });
    expect(res.status).toBe(200);
    const received = rig.fake.requests[before]!.body.toString('utf8');
    const sent = parseJson(body) as Json;
    const got = parseJson(received) as Json;
    // The one change: the placeholder put into the assistant turn.
    const turn = (got['messages'] as Json[])[1]!;
    expect(turn['reasoning_content']).toMatch(/^Reasoning for step 1 was not kept/);
    delete turn['reasoning_content'];
    expect(JSON.stringify(got)).toBe(JSON.stringify(sent));
    for (const text of ['12345678901234567890', '1e400', '"temperature":-0', '"top_p":1.0', '0.0000001', '1E+999', '-0.0', '1.50', '98765432109876543210']) {
      expect(received).toContain(text);
    }
  });

  it('keeps the numbers of Anthropic tool inputs and request fields exactly as sent', async () => {
    const body =
      '{"model":"mimo-v2.6-pro","max_tokens":1024,"temperature":-0,"metadata":{"seed":12345678901234567890},' +
      '"messages":[{"role":"user","content":"算一下"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_n","name":"calc","input":{"n":1e999,"m":-0,"big":12345678901234567890,"f":2.50}}]},' +
      '{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_n","content":"∞"}]}]}';
    const before = rig.fake.requests.length;
    const res = await request(MESSAGES, { agent: rig.agent, ca: rig.h.proxy.ca.caPem, headers: { 'x-api-key': 'sk-anth-numbers', 'anthropic-version': '2023-06-01' }, body });
    expect(res.status).toBe(200);
    const received = rig.fake.requests[before]!.body.toString('utf8');
    const got = parseJson(received) as Json;
    const turn = (got['messages'] as Json[])[1]!;
    const content = turn['content'] as Json[];
    expect(content[0]!['type']).toBe('thinking');
    turn['content'] = content.slice(1);
    expect(JSON.stringify(got)).toBe(JSON.stringify(parseJson(body)));
    expect(received).toContain('"input":{"n":1e999,"m":-0,"big":12345678901234567890,"f":2.50}');
  });
});
