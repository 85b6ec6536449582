import { describe, expect, it } from 'vitest';
import { body, memory, prng, randomSplit, type Entry, type Json } from '../support/unit.js';
import { responseEvents, responseObject } from '../support/fake-responses.js';
import { learnKeys, type TurnReasoning } from '../../src/reasoning/match.js';
import { isReasoningRejection } from '../../src/reasoning/rejection.js';
import type { RewriteOutcome, RewritePolicy } from '../../src/reasoning/rewrite.js';
import { createResponsesFold, createResponsesJsonTap, createResponsesSseTap, MAX_ITEMS } from '../../src/responses/fold.js';
import { rewriteResponsesRequest } from '../../src/responses/rewrite.js';
import { rewriteMessagesRequest } from '../../src/anthropic/rewrite.js';
import { rewriteChatRequest } from '../../src/chat/rewrite.js';
import { decodeReasoning } from '../../src/responses/types.js';

const PLACEHOLDER: RewritePolicy = { degrade: 'placeholder' };
const FLATTEN: RewritePolicy = { degrade: 'flatten' };

const user = (text: string): Json => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text }] });
const call = (callId: string, name: string, args: string): Json => ({ type: 'function_call', id: `fc_${callId}`, call_id: callId, name, arguments: args });
const output = (callId: string, text: string): Json => ({ type: 'function_call_output', call_id: callId, output: text });
const reasoning = (id: string, text: string, extra: Json = {}): Json => ({ type: 'reasoning', id, ...extra, content: [{ type: 'reasoning_text', text }] });

const R1 = reasoning('rs_1', '先列出文件。');
const R2 = reasoning('rs_2', '再读 README，然后看 src/主.ts。😀', { summary: [{ type: 'summary_text', text: 'Reading files' }], encrypted_content: 'gAAAAB-enc' });
const FIRST = [R1, call('call_a', 'shell', '{"cmd": "ls"}')];
const SECOND = [R2, { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: '我看两个文件。' }] }, call('call_b', 'read_file', '{"path":"README.md"}'), call('call_c', 'read_file', '{"path":"src/主.ts"}')];

/** The conversation as the upstream saw it, and what a forgetful client sends (reasoning items dropped). */
const start = [user('仓库里有什么？')];
const afterFirst = [...start, ...FIRST, output('call_a', 'README.md src')];
const afterSecond = [...afterFirst, ...SECOND, output('call_b', '# demo'), output('call_c', 'export {}')];
const forget = (items: Json[]): Json[] => items.filter((item) => item.type !== 'reasoning');

/** What the proxy learns as it relays `input` and the upstream answers with `out` (exchange.ts, without the I/O). */
function learn(input: Json[], out: Json[], entries: Entry[], stream = true): TurnReasoning[] {
  const outcome = rewriteResponsesRequest(body({ model: 'm', input }), memory(entries).lookup, PLACEHOLDER);
  if (outcome.kind === 'skipped') throw new Error(outcome.reason);
  const tap = stream ? createResponsesSseTap() : createResponsesJsonTap();
  const bytes = Buffer.from(stream ? responseEvents('resp_1', 'm', out).join('') : JSON.stringify(responseObject('resp_1', 'm', 'completed', out)));
  for (const piece of randomSplit(bytes, prng(bytes.length), 40)) tap.feed(piece);
  const turns = tap.end() ?? [];
  for (const turn of turns) entries.push({ keys: learnKeys({ ...turn, context: outcome.context, upstreamIds: true }), reasoning: turn.reasoning });
  return turns;
}

function inputOf(outcome: RewriteOutcome): Json[] {
  if (outcome.kind !== 'rewritten') throw new Error(`expected a rewrite, got ${outcome.kind}`);
  return JSON.parse(outcome.body.toString('utf8')).input as Json[];
}

describe('the Responses dialect', () => {
  for (const stream of [true, false]) {
    it(`learns each output's reasoning items ${stream ? 'from the stream' : 'from the JSON body'} and puts them back exactly where they stood`, () => {
      const entries: Entry[] = [];
      expect(learn(start, FIRST, entries, stream)).toHaveLength(1);
      expect(learn(forget(afterFirst), SECOND, entries, stream)).toHaveLength(1);
      const outcome = rewriteResponsesRequest(body({ model: 'm', input: forget(afterSecond) }), memory(entries).lookup, PLACEHOLDER);
      expect(inputOf(outcome)).toEqual(afterSecond);
      expect(outcome.kind === 'rewritten' && outcome.changes).toEqual({ injected: 2, placeholders: 0, flattened: 0, missing: 0 });
    });
  }

  it('finds a turn by its call ids even after pruned history, by its context when the client renumbers them, and not in another conversation', () => {
    const entries: Entry[] = [];
    learn(start, FIRST, entries);
    const renumbered = forget(afterFirst).map((item) => (item.call_id ? { ...item, call_id: 'call_zz', id: undefined } : item));
    const found = inputOf(rewriteResponsesRequest(body({ input: renumbered }), memory(entries).lookup, PLACEHOLDER));
    expect(found[1]).toEqual(R1);
    // The upstream's call ids are unique: the turn is found by them when the history before it changed.
    const pruned = [user('(compacted)'), ...forget(afterFirst).slice(1)];
    expect(inputOf(rewriteResponsesRequest(body({ input: pruned }), memory(entries).lookup, PLACEHOLDER))[1]).toEqual(R1);
    // The same call under other ids after another question: another conversation's turn, not this one's.
    const other = [user('别的问题'), ...renumbered.slice(1)];
    const miss = inputOf(rewriteResponsesRequest(body({ input: other }), memory(entries).lookup, PLACEHOLDER));
    expect(miss[1]!.content[0].text).toBe('Reasoning for step 1 was not kept; this step called shell.');
  });

  it('leaves a request alone that carries its reasoning, or holds previous_response_id or a conversation, or has no input list', () => {
    const kept = body({ model: 'm', input: afterSecond });
    const outcome = rewriteResponsesRequest(kept, memory().lookup, PLACEHOLDER);
    expect(outcome.kind).toBe('unchanged');
    expect(outcome.kind === 'unchanged' && outcome.body).toBe(kept);
    // What it carried is learned (from a request: under the context key only).
    expect(outcome.kind === 'unchanged' && outcome.learned.map((l) => [decodeReasoning(l.reasoning)?.map((s) => s.item), l.upstreamIds])).toEqual([
      [[R1], false],
      [[R2], false],
    ]);
    expect(rewriteResponsesRequest(body({ previous_response_id: 'resp_1', input: forget(afterSecond) }), memory().lookup, PLACEHOLDER)).toEqual({ kind: 'skipped', reason: 'stateful' });
    // The Conversations API's `conversation` (an id, or {id}) is stateful the same way: the upstream holds the items.
    for (const conversation of ['conv_1', { id: 'conv_1' }]) {
      expect(rewriteResponsesRequest(body({ conversation, input: forget(afterSecond) }), memory().lookup, PLACEHOLDER)).toEqual({ kind: 'skipped', reason: 'stateful' });
    }
    expect(rewriteResponsesRequest(body({ conversation: null, previous_response_id: null, input: forget(afterSecond) }), memory().lookup, PLACEHOLDER).kind).toBe('rewritten');
    expect(rewriteResponsesRequest(body({ input: { type: 'message' } }), memory().lookup, PLACEHOLDER)).toEqual({ kind: 'skipped', reason: 'no-messages' });
    expect(rewriteResponsesRequest(body({ input: 'hello' }), memory().lookup, PLACEHOLDER).kind).toBe('unchanged');
  });

  it('a string input and the same text as a message item are the same context', () => {
    const entries: Entry[] = [];
    const outcome = rewriteResponsesRequest(body({ input: '仓库里有什么？' }), memory().lookup, PLACEHOLDER);
    const tap = createResponsesJsonTap();
    tap.feed(Buffer.from(JSON.stringify(responseObject('r', 'm', 'completed', FIRST))));
    for (const turn of tap.end()!) entries.push({ keys: learnKeys({ ...turn, context: outcome.kind !== 'skipped' ? outcome.context : '', upstreamIds: false }), reasoning: turn.reasoning });
    expect(inputOf(rewriteResponsesRequest(body({ input: forget(afterFirst) }), memory(entries).lookup, PLACEHOLDER))[1]).toEqual(R1);
  });

  it('flattens a run it cannot put back: no function_call_output is left without its call, messages stay', () => {
    const flat = inputOf(rewriteResponsesRequest(body({ input: forget(afterSecond) }), memory().lookup, FLATTEN));
    expect(flat.map((item) => [item.type, item.role])).toEqual([
      ['message', 'user'],
      ['message', 'user'],
      ['message', 'assistant'],
      ['message', 'user'],
    ]);
    expect(flat[1]!.content[0].text).toContain('The tool shell was called with arguments {"cmd": "ls"}.\nResult:\nREADME.md src');
    expect(flat[3]!.content[0].text).toContain('The tool read_file was called with arguments {"path":"src/主.ts"}.\nResult:\nexport {}');
    // The retry after flatten: the kept assistant text gets a placeholder reasoning too.
    const retry = inputOf(rewriteResponsesRequest(body({ input: forget(afterSecond) }), memory().lookup, { degrade: 'flatten', plainTurns: true }));
    expect(retry[2]!.type).toBe('reasoning');
    expect(retry[2]!.content[0].text).toBe('Reasoning for step 2 was not kept; the results of read_file (2 calls) follow as text.');
  });

  it('flattens a call with an empty call_id together with its result, and the result is in the text', () => {
    const input = [user('q'), call('', 'read_file', '{}'), output('', 'the file'), user('next')];
    const flat = inputOf(rewriteResponsesRequest(body({ input }), memory().lookup, FLATTEN));
    expect(flat.some((item) => item.type === 'function_call_output')).toBe(false);
    expect(JSON.stringify(flat)).toContain('Result:\\nthe file');
  });

  it('turns thinking off: nothing written, the miss counted', () => {
    const outcome = rewriteResponsesRequest(body({ thinking: { type: 'disabled' }, input: forget(afterSecond) }), memory().lookup, PLACEHOLDER);
    expect(outcome.kind).toBe('unchanged');
    expect(outcome.kind === 'unchanged' && outcome.changes.missing).toBe(2);
  });

  it('keeps unknown items verbatim and out of the context: a client that drops them still finds its reasoning', () => {
    const entries: Entry[] = [];
    const withRef = [start[0]!, { type: 'item_reference', id: 'msg_old' }];
    learn(withRef as Json[], FIRST, entries);
    const sent = [...withRef, ...forget(FIRST), output('call_a', 'ok')];
    expect(inputOf(rewriteResponsesRequest(body({ input: sent }), memory(entries).lookup, PLACEHOLDER))).toEqual([...withRef, ...FIRST, output('call_a', 'ok')]);
    const dropped = [start[0]!, ...forget(FIRST), output('call_a', 'ok')];
    expect(inputOf(rewriteResponsesRequest(body({ input: dropped }), memory(entries).lookup, PLACEHOLDER))[1]).toEqual(R1);
  });

  it('learns nothing from a cut-off stream, a failed or incomplete response, or an error event', () => {
    const events = responseEvents('resp_1', 'm', FIRST);
    const tapOf = (text: string): TurnReasoning[] | undefined => {
      const tap = createResponsesSseTap();
      tap.feed(Buffer.from(text));
      return tap.end();
    };
    expect(tapOf(events.join(''))).toHaveLength(1);
    expect(tapOf(events.slice(0, -1).join(''))).toBeUndefined();
    expect(tapOf(`${events.slice(0, -1).join('')}event: response.failed\ndata: {"type":"response.failed","response":{"error":{"message":"x"}}}\n\n`)).toBeUndefined();
    expect(tapOf(`${events.slice(0, -1).join('')}event: response.incomplete\ndata: {"type":"response.incomplete"}\n\n`)).toBeUndefined();
    expect(tapOf(`${events.slice(0, 3).join('')}event: error\ndata: {"type":"error","message":"boom"}\n\n${events.at(-1)}`)).toBeUndefined();
    const json = (value: unknown): TurnReasoning[] | undefined => {
      const tap = createResponsesJsonTap();
      tap.feed(Buffer.from(JSON.stringify(value)));
      return tap.end();
    };
    expect(json(responseObject('r', 'm', 'incomplete', FIRST))).toBeUndefined();
    expect(json({ error: { message: 'bad' } })).toBeUndefined();
    expect(json(responseObject('r', 'm', 'completed', [call('call_x', 'shell', '{}')]))).toEqual([]);
  });

  it('survives a hostile stream: wrong types everywhere, huge indexes, items without ids; never throws', () => {
    const junk = [
      { type: 'response.output_item.added', output_index: 1e9, item: { type: 'reasoning' } },
      { type: 'response.reasoning_text.delta', output_index: -1, content_index: 1e9, delta: 'x' },
      { type: 'response.reasoning_text.delta', item_id: 5, delta: 7 },
      { type: 'response.output_item.done', item: 'nope' },
      { type: 'response.function_call_arguments.delta', output_index: 'a', delta: null },
      { type: 'response.completed', response: { output: 'not a list' } },
    ];
    const tap = createResponsesSseTap();
    tap.feed(Buffer.from(junk.map((event) => `data: ${JSON.stringify(event)}\n\n`).join('')));
    expect(() => tap.end()).not.toThrow();
    // Indexes far apart cost nothing: only the items seen are folded, in index order.
    const sparse = createResponsesSseTap();
    const far = [
      { type: 'response.output_item.done', output_index: 2 ** 40, item: call('call_far', 'shell', '{}') },
      { type: 'response.output_item.done', output_index: 7, item: R1 },
      { type: 'response.completed', response: { output: [] } },
    ];
    sparse.feed(Buffer.from(far.map((event) => `data: ${JSON.stringify(event)}\n\n`).join('')));
    const started = performance.now();
    const sparseLearned = sparse.end()!;
    expect(performance.now() - started).toBeLessThan(200);
    expect(sparseLearned.map((l) => [l.identity.ids, decodeReasoning(l.reasoning)?.[0]?.item])).toEqual([[['call_far'], R1]]);
    // A stream with reasoning pieces but items that never finish: learned from the pieces, nothing invented.
    const pieces = createResponsesSseTap();
    const events = [
      { type: 'response.output_item.added', output_index: 0, item: { id: 'rs_p', type: 'reasoning', content: [] } },
      { type: 'response.reasoning_text.delta', output_index: 0, content_index: 0, delta: '想' },
      { type: 'response.reasoning_text.delta', output_index: 0, content_index: 0, delta: '一想' },
      { type: 'response.output_item.added', output_index: 1, item: { id: 'fc_p', type: 'function_call', call_id: 'call_p', name: 'shell', arguments: '' } },
      { type: 'response.function_call_arguments.delta', output_index: 1, delta: '{"cmd":"ls"}' },
      { type: 'response.completed', response: { output: [] } },
    ];
    pieces.feed(Buffer.from(events.map((event) => `data: ${JSON.stringify(event)}\n\n`).join('')));
    const learned = pieces.end()!;
    expect(learned).toHaveLength(1);
    expect(decodeReasoning(learned[0]!.reasoning)).toEqual([{ at: 0, item: { id: 'rs_p', type: 'reasoning', content: [{ type: 'reasoning_text', text: '想一想' }] } }]);
    expect(learned[0]!.identity.ids).toEqual(['call_p']);
  });

  it('never throws on hostile input, and leaves invalid bodies alone', () => {
    const random = prng(7);
    const values: unknown[] = [null, 0, -0, 'x', [], {}, { type: 'reasoning' }, { type: 'function_call', arguments: [1] }, { role: 'assistant' }, { type: 'function_call_output', call_id: {} }];
    for (let i = 0; i < 300; i++) {
      const input = Array.from({ length: Math.floor(random() * 8) }, () => values[Math.floor(random() * values.length)]);
      for (const policy of [PLACEHOLDER, FLATTEN, { degrade: 'flatten' as const, plainTurns: true }]) {
        const outcome = rewriteResponsesRequest(body({ input }), memory().lookup, policy);
        expect(outcome.kind).not.toBe('skipped');
      }
    }
    expect(rewriteResponsesRequest(Buffer.from('{"input":['), memory().lookup, PLACEHOLDER)).toEqual({ kind: 'skipped', reason: 'invalid-json' });
    expect(decodeReasoning('{"responses_reasoning":[{"at":-3,"item":{"type":"reasoning","content":[{"text":"t"}]}},5,{"item":{"type":"reasoning"}}]}')).toEqual([{ at: 0, item: { type: 'reasoning', content: [{ text: 't' }] } }]);
    expect(decodeReasoning('{"anthropic_thinking":[]}')).toBeUndefined();
  });

  it('finds the item an event names by item_id without a scan of every item (a hostile stream of 1,024 items and empty deltas)', () => {
    const fold = createResponsesFold();
    const id = (i: number): string => `rs_${'x'.repeat(40)}${i}`;
    for (let i = 0; i < MAX_ITEMS; i++) expect(fold.add({ type: 'response.output_item.added', output_index: i, item: { type: 'reasoning', id: id(i) } })).toBe(true);
    // Empty deltas add no text, so no bound stops them: each one cost a scan of every item (~7 µs).
    const started = performance.now();
    for (let i = 0; i < 100_000; i++) fold.add({ type: 'response.reasoning_text.delta', item_id: id(MAX_ITEMS - 1), delta: '' });
    expect(performance.now() - started).toBeLessThan(250);
    expect(fold.add({ type: 'response.reasoning_text.delta', item_id: id(3), delta: 'three' })).toBe(true);
    expect(fold.add({ type: 'response.output_item.done', output_index: 3, item: { type: 'reasoning', id: id(3) } })).toBe(true);
    expect(fold.add({ type: 'response.completed', response: {} })).toBe(true);
    expect(fold.output()[3]).toEqual({ type: 'reasoning', id: id(3), content: [{ type: 'reasoning_text', text: 'three' }] });
  });

  it('learns the same from a stream cut in two at every byte boundary, and byte by byte (CRLF framing too)', () => {
    for (const crlf of [false, true]) {
      let text = responseEvents('resp_1', 'm', SECOND).join('');
      if (crlf) text = text.replaceAll('\n', '\r\n');
      const bytes = Buffer.from(text);
      const fed = (pieces: Buffer[]): unknown => {
        const tap = createResponsesSseTap();
        for (const piece of pieces) tap.feed(piece);
        return tap.end();
      };
      const whole = fed([bytes]) as TurnReasoning[];
      expect(whole).toHaveLength(1);
      for (let at = 1; at < bytes.length; at++) expect(fed([bytes.subarray(0, at), bytes.subarray(at)]), `cut at ${at}`).toEqual(whole);
      expect(fed([...bytes].map((byte) => Buffer.from([byte])))).toEqual(whole);
      // Cut short anywhere: nothing learned.
      for (let at = 0; at < bytes.length - (crlf ? 4 : 2); at += 97) expect(fed([bytes.subarray(0, at)]), `short at ${at}`).toBeUndefined();
    }
  });

  it('takes time linear in the calls of one turn: 60,000 calls in one turn (any dialect) do not hold the thread for seconds', () => {
    // A turn's call ids were collected with a list scan per call: 60,000 calls cost ~2 s of a
    // blocked event loop (a 1 MB body ~150 ms), in the worker 10 s for 150,000 (then the original went up).
    const n = 60_000;
    const ids = Array.from({ length: n }, (_, i) => `c${i}`);
    const bodies: [string, () => RewriteOutcome][] = [
      ['responses', () => rewriteResponsesRequest(body({ input: ids.map((id) => ({ type: 'function_call', call_id: id, name: 'f', arguments: '{}' })) }), memory().lookup, PLACEHOLDER)],
      ['chat', () => rewriteChatRequest(body({ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: '', tool_calls: ids.map((id) => ({ id, type: 'function', function: { name: 'f', arguments: '{}' } })) }] }), memory().lookup, PLACEHOLDER)],
      ['anthropic', () => rewriteMessagesRequest(body({ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: ids.map((id) => ({ type: 'tool_use', id, name: 'f', input: {} })) }] }), memory().lookup, PLACEHOLDER)],
    ];
    for (const [dialect, rewrite] of bodies) {
      const started = performance.now();
      const outcome = rewrite();
      const ms = performance.now() - started;
      expect(outcome.kind, dialect).toBe('rewritten');
      expect(ms, dialect).toBeLessThan(1000);
    }
  });
});

describe('the reasoning 400 on the Responses surface', () => {
  it("is recognised in the Responses error shape, DeepSeek's and MiMo's wording, plain and as SSE events", () => {
    const error = (message: string) => ({ message, type: 'invalid_request_error', param: 'input', code: 'invalid_request_error' });
    const deepseek = 'The `reasoning_text` in the thinking mode must be passed back to the API.';
    const mimo = 'The reasoning_content in the thinking mode must be passed back to the API.';
    for (const message of [deepseek, mimo]) {
      expect(isReasoningRejection(400, Buffer.from(JSON.stringify({ error: error(message) })))).toBe(true);
      expect(isReasoningRejection(400, Buffer.from(`event: error\ndata: ${JSON.stringify({ sequence_number: 0, ...error(message), type: 'error' })}\n\n`))).toBe(true);
      expect(isReasoningRejection(400, Buffer.from(`event: response.failed\ndata: ${JSON.stringify({ type: 'response.failed', response: { status: 'failed', error: error(message) } })}\n\n`))).toBe(true);
      expect(isReasoningRejection(500, Buffer.from(JSON.stringify({ error: error(message) })))).toBe(false);
    }
    expect(isReasoningRejection(400, Buffer.from(JSON.stringify({ error: error("Tool type 'web_search' is not supported.") })))).toBe(false);
    expect(isReasoningRejection(400, Buffer.from(JSON.stringify({ error: error('reasoning_text is not supported by this model') })))).toBe(false);
  });
});

describe('what the Responses dialect remembers', () => {
  it('is the same string for an item learned from an answer and from a request that kept it (status and a null encrypted_content left out)', () => {
    const tap = createResponsesJsonTap();
    tap.feed(Buffer.from(JSON.stringify(responseObject('r', 'm', 'completed', [{ ...R1, status: 'completed' }, FIRST[1]]))));
    const fromAnswer = tap.end()![0]!.reasoning;
    const kept = [...start, { ...R1, encrypted_content: null }, FIRST[1], output('call_a', 'ok')];
    const outcome = rewriteResponsesRequest(body({ input: kept }), memory().lookup, PLACEHOLDER);
    expect(outcome.kind === 'unchanged' && outcome.learned[0]!.reasoning).toBe(fromAnswer);
  });
});
