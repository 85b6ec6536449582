import { describe, expect, it } from 'vitest';
import { fixture, prng, randomSplit } from '../support/unit.js';
import type { TurnReasoning } from '../../src/reasoning/match.js';
import { anthropicTurnIdentity } from '../../src/anthropic/fingerprint.js';
import { createAnthropicFold, createAnthropicJsonTap, createAnthropicSseTap, learnedFromMessageBody } from '../../src/anthropic/fold.js';
import { decodeThinking, encodeThinking } from '../../src/anthropic/types.js';


function tapAll(chunks: readonly Uint8Array[], options?: { maxLineBytes?: number; maxFoldedChars?: number }): TurnReasoning[] | undefined {
  const tap = createAnthropicSseTap(options);
  for (const chunk of chunks) tap.feed(chunk);
  return tap.end();
}



const ZH_THINKING = '用户想知道入口文件里的配置是怎么加载的。我应该先读 src/主.ts，再用 grep 找 loadConfig 的调用点。😀 两个工具可以并行调用。';

/** The turn of anthropic-tool-use-zh.sse as a client sends it back: thinking dropped, input re-serialised, text trimmed. */
const zhTurnSentBack = {
  role: 'assistant',
  content: [
    { type: 'text', text: '我先看一下入口文件，再搜索调用点。' },
    { type: 'tool_use', id: 'toolu_01A7f2c0a9e41', name: 'read_file', input: { limit: 200, path: 'src/主.ts' } },
    { type: 'tool_use', id: 'toolu_01B81d33e0c5', name: 'grep_search', input: { path: 'src', pattern: 'loadConfig' } },
  ],
};

/** What a fold should learn for `turn` (as a client sends it back) with `reasoning`. */
function learnedAs(turn: unknown, reasoning: string): TurnReasoning {
  const identity = anthropicTurnIdentity(turn);
  if (!identity) throw new Error('the expected turn has no identity');
  return { identity, reasoning };
}

const ZH_LEARNED: TurnReasoning = learnedAs(zhTurnSentBack, encodeThinking([{ type: 'thinking', thinking: ZH_THINKING, signature: '' }]));

const SIGNED_LEARNED: TurnReasoning = learnedAs(
  { content: [{ type: 'tool_use', id: 'toolu_weather_01', name: 'get_weather', input: { city: '北京' } }] },
  encodeThinking([
    { type: 'thinking', thinking: '先思考一下：天气查询需要城市名。', signature: 'EqQBCkgIAxABGAIiQL3/签名+Ab==' },
    { type: 'thinking', thinking: '城市是北京，直接查。', signature: 'ErUBCkYIBRgCIkC2second-piece' },
  ]),
);

const COMPLETE = ['anthropic-tool-use-zh.sse', 'anthropic-signed-crlf.sse', 'anthropic-reasoning-content.sse'];

describe('the Anthropic SSE tap', () => {
  it('folds Chinese thinking, text and two tool_use blocks with input in pieces into one learned turn', () => {
    expect(tapAll([fixture('anthropic-tool-use-zh.sse')])).toEqual([ZH_LEARNED]);
  });

  it('keeps several thinking blocks with their signature_delta pieces, in order, from a CRLF stream', () => {
    const bytes = fixture('anthropic-signed-crlf.sse');
    // Guards the fixture itself: a checkout that normalised line endings would test nothing.
    expect(bytes.includes('\r\n')).toBe(true);
    expect(bytes.includes('\n\n')).toBe(false);
    expect(tapAll([bytes])).toEqual([SIGNED_LEARNED]);
  });

  it('learns OpenAI-style reasoning_content deltas when the turn has no thinking block', () => {
    const learned = tapAll([fixture('anthropic-reasoning-content.sse')]);
    const turn = { content: [{ type: 'text', text: '我来查一下。' }, { type: 'tool_use', id: 'toolu_oai_01', name: 'get_weather', input: { city: '上海' } }] };
    expect(learned).toHaveLength(1);
    expect(learned?.[0]?.identity).toEqual(anthropicTurnIdentity(turn));
    expect(decodeThinking(learned?.[0]?.reasoning ?? '')).toEqual([{ type: 'thinking', thinking: '要查天气，先调用 get_weather。', signature: '' }]);
  });

  it('prefers the thinking blocks over reasoning_content pieces in the same stream', () => {
    const full = fixture('anthropic-tool-use-zh.sse').toString('utf8');
    const mixed = full.replace('event: ping', `data: {"choices":[{"index":0,"delta":{"reasoning_content":"别的"}}]}\n\nevent: ping`);
    expect(mixed).not.toBe(full);
    expect(tapAll([Buffer.from(mixed, 'utf8')])).toEqual([ZH_LEARNED]);
  });

  for (const name of COMPLETE) {
    it(`gives the same result for ${name} split in two at every byte offset`, () => {
      const bytes = fixture(name);
      const whole = tapAll([bytes]);
      expect(whole?.length).toBe(1);
      for (let cut = 0; cut <= bytes.length; cut++) {
        expect(tapAll([bytes.subarray(0, cut), bytes.subarray(cut)]), `cut at ${cut}`).toEqual(whole);
      }
    });

    it(`gives the same result for ${name} split at random points`, () => {
      const bytes = fixture(name);
      const whole = tapAll([bytes]);
      const random = prng(0xa17 + name.length);
      for (let run = 0; run < 300; run++) expect(tapAll(randomSplit(bytes, random, 40)), `run ${run}`).toEqual(whole);
    });
  }

  it('gives the same result with the LF fixture rewritten to CRLF and to bare CR', () => {
    const lf = fixture('anthropic-tool-use-zh.sse');
    for (const ending of ['\r\n', '\r']) {
      const other = Buffer.from(lf.toString('utf8').replaceAll('\n', ending), 'utf8');
      expect(tapAll([other])).toEqual([ZH_LEARNED]);
      const random = prng(11);
      for (let run = 0; run < 50; run++) expect(tapAll(randomSplit(other, random, 20))).toEqual([ZH_LEARNED]);
    }
  });

  it('decodes Chinese text split in the middle of a character, one byte per chunk', () => {
    const bytes = fixture('anthropic-tool-use-zh.sse');
    // Guards the test: the fixture has multibyte characters, so single bytes split them.
    expect(bytes.length).toBeGreaterThan(bytes.toString('utf8').length);
    const singles: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; i++) singles.push(bytes.subarray(i, i + 1));
    expect(tapAll(singles)).toEqual([ZH_LEARNED]);
  });

  it('stores nothing from a stream cut off before message_stop', () => {
    const cut = fixture('anthropic-cut-off.sse');
    expect(cut.includes('message_stop')).toBe(false);
    expect(tapAll([cut])).toBeUndefined();
    // Cut anywhere before message_stop in the complete stream: never a result.
    const full = fixture('anthropic-tool-use-zh.sse');
    const stop = full.indexOf('event: message_stop');
    expect(stop).toBeGreaterThan(0);
    for (let at = 0; at < stop; at += 61) expect(tapAll([full.subarray(0, at)]), `cut at ${at}`).toBeUndefined();
    // Up to its last byte: message_stop whole but its blank line missing still counts.
    expect(tapAll([Buffer.from(full.toString('utf8').replace(/\n\n$/, ''), 'utf8')])).toEqual([ZH_LEARNED]);
  });

  it('stores nothing from a stream with an error event, before or in place of message_stop', () => {
    expect(tapAll([fixture('anthropic-error.sse')])).toBeUndefined();
    const full = fixture('anthropic-tool-use-zh.sse').toString('utf8');
    const errorEvent = 'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n';
    expect(tapAll([Buffer.from(full.replace('event: message_stop', `${errorEvent}event: message_stop`), 'utf8')])).toBeUndefined();
    // An error object without the event name poisons too.
    expect(tapAll([Buffer.from(full.replace('event: message_stop', `data: {"type":"error","error":{"type":"api_error"}}\n\nevent: message_stop`), 'utf8')])).toBeUndefined();
  });

  it('stores nothing when a data line is not JSON, or a second message starts', () => {
    const full = fixture('anthropic-tool-use-zh.sse').toString('utf8');
    expect(tapAll([Buffer.from(full.replace('data: {"type":"ping"}', 'data: {"type":"ping"'), 'utf8')])).toBeUndefined();
    const start = full.slice(0, full.indexOf('\n\n') + 2);
    expect(tapAll([Buffer.from(full.replace('event: message_stop', `${start}event: message_stop`), 'utf8')])).toBeUndefined();
  });

  it('ignores events after message_stop and calls to feed after end', () => {
    const tap = createAnthropicSseTap();
    tap.feed(fixture('anthropic-tool-use-zh.sse'));
    tap.feed(Buffer.from('event: error\ndata: not json\n\n'));
    expect(tap.end()).toEqual([ZH_LEARNED]);
    tap.feed(Buffer.from('data: {}\n\n'));
    expect(tap.end()).toBeUndefined();
  });

  it('learns a final answer with thinking under its text alone (no ids)', () => {
    const events = [
      { type: 'message_start', message: { role: 'assistant', content: [] } },
      { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '可以直接回答。', signature: '' } },
      { type: 'content_block_start', index: 1, content_block: { type: 'text', text: '' } },
      { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: '北京今天晴。' } },
      { type: 'message_delta', delta: { stop_reason: 'end_turn' } },
      { type: 'message_stop' },
    ];
    const learned = tapAll([Buffer.from(events.map((e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`).join(''), 'utf8')]);
    expect(learned).toEqual([learnedAs({ content: '北京今天晴。' }, encodeThinking([{ type: 'thinking', thinking: '可以直接回答。', signature: '' }]))]);
    expect(learned?.[0]?.identity.ids).toEqual([]);
  });

  it('stores nothing for a complete turn without thinking, and an empty list is not a failure', () => {
    const full = fixture('anthropic-tool-use-zh.sse').toString('utf8');
    const noThinking = full.replace(/event: content_block_delta\ndata: \{"type":"content_block_delta","index":0,"delta":\{"type":"thinking_delta"[^\n]*\n\n/g, '');
    expect(noThinking.length).toBeLessThan(full.length);
    expect(tapAll([Buffer.from(noThinking, 'utf8')])).toEqual([]);
  });

  it('is poisoned by a line longer than maxLineBytes or text past maxFoldedChars', () => {
    const full = fixture('anthropic-tool-use-zh.sse');
    const huge = Buffer.from(`event: ping\ndata: {"type":"ping","pad":"${'x'.repeat(5000)}"}\n\n`);
    const stream = Buffer.concat([huge, full]);
    expect(tapAll([stream], { maxLineBytes: 4096 })).toBeUndefined();
    const pieces: Buffer[] = [];
    for (let i = 0; i < stream.length; i += 100) pieces.push(stream.subarray(i, i + 100));
    expect(tapAll(pieces, { maxLineBytes: 4096 })).toBeUndefined();
    expect(tapAll([stream])).toEqual([ZH_LEARNED]);
    expect(tapAll([full], { maxFoldedChars: 40 })).toBeUndefined();
  });

  it('never throws on random bytes and learns nothing from them', () => {
    const random = prng(42);
    for (let run = 0; run < 200; run++) {
      const bytes = Buffer.alloc(1 + Math.floor(random() * 400));
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
      const result = tapAll(randomSplit(bytes, random, 5), { maxLineBytes: 128 });
      expect(result === undefined || result.length === 0).toBe(true);
    }
  });

  it('keeps feeding cheap: a whole stream of small events folds in well under a millisecond per event', () => {
    const events = fixture('anthropic-tool-use-zh.sse').toString('utf8').split('\n\n').filter(Boolean).map((e) => Buffer.from(`${e}\n\n`, 'utf8'));
    const start = performance.now();
    for (let round = 0; round < 200; round++) {
      const tap = createAnthropicSseTap();
      for (const event of events) tap.feed(event);
      expect(tap.end()).toEqual([ZH_LEARNED]);
    }
    const perEvent = (performance.now() - start) / (200 * events.length);
    console.log(`anthropic SSE tap: ${(perEvent * 1000).toFixed(1)} µs per event`);
    // Generous bound: this machine does it in microseconds; a regression to milliseconds would show.
    expect(perEvent).toBeLessThan(1);
  });
});

describe('the Anthropic event fold', () => {
  it('takes deltas for a block that never had a content_block_start, typed by what they carry', () => {
    const fold = createAnthropicFold();
    expect(fold.add({ type: 'message_start', message: { role: 'assistant', content: [] } })).toBe(true);
    fold.add({ type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: '想' } });
    fold.add({ type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"a":1}' } });
    fold.add({ type: 'message_stop' });
    expect(fold.stopped()).toBe(true);
    expect(fold.turn()['content']).toEqual([
      { type: 'thinking', thinking: '想', signature: '' },
      { type: 'tool_use', id: '', name: '', input: { a: 1 } },
    ]);
  });

  it('keeps an input that never parses as its raw text, and refuses non-objects', () => {
    const fold = createAnthropicFold();
    fold.add({ type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: 't', name: 'ls', input: {} } });
    fold.add({ type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '{"path": "' } });
    expect(fold.turn()['content']).toEqual([{ type: 'tool_use', id: 't', name: 'ls', input: '{"path": "' }]);
    expect(fold.add('x')).toBe(false);
    expect(fold.add(null)).toBe(false);
  });
});

describe('the Anthropic JSON tap', () => {
  const message = {
    id: 'msg_01',
    type: 'message',
    role: 'assistant',
    model: 'mimo-v2.6-pro',
    content: [
      { type: 'thinking', thinking: ZH_THINKING, signature: '' },
      { type: 'text', text: '我先看一下入口文件，再搜索调用点。' },
      { type: 'tool_use', id: 'toolu_01A7f2c0a9e41', name: 'read_file', input: { path: 'src/主.ts', limit: 200 } },
      { type: 'tool_use', id: 'toolu_01B81d33e0c5', name: 'grep_search', input: { pattern: 'loadConfig', path: 'src' } },
    ],
    stop_reason: 'tool_use',
    usage: { input_tokens: 1, output_tokens: 2 },
  };

  it('learns the same as the stream from a whole message, in any chunking', () => {
    const bytes = Buffer.from(JSON.stringify(message), 'utf8');
    const random = prng(3);
    for (let run = 0; run < 50; run++) {
      const tap = createAnthropicJsonTap();
      for (const piece of randomSplit(bytes, random, 10)) tap.feed(piece);
      expect(tap.end()).toEqual([ZH_LEARNED]);
    }
  });

  it('learns a top-level reasoning_content when the message has no thinking block', () => {
    const oai = { ...message, content: message.content.slice(1), reasoning_content: '先读文件。' };
    const learned = learnedFromMessageBody(Buffer.from(JSON.stringify(oai)));
    expect(decodeThinking(learned?.[0]?.reasoning ?? '')).toEqual([{ type: 'thinking', thinking: '先读文件。', signature: '' }]);
  });

  it('stores nothing from an error body, invalid JSON, a body past maxBytes or another shape', () => {
    const error = '{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}';
    for (const body of [error, ANTHROPIC_400, '{"content": [', '[1]', '{"choices":[]}']) {
      expect(learnedFromMessageBody(Buffer.from(body)), body).toBeUndefined();
    }
    const tap = createAnthropicJsonTap({ maxBytes: 100 });
    tap.feed(Buffer.from(JSON.stringify(message)));
    expect(tap.end()).toBeUndefined();
    expect(tap.end()).toBeUndefined();
  });
});

const ANTHROPIC_400 = '{"error":{"code":"400","message":"Param Incorrect","param":"The reasoning_content in the thinking mode must be passed back to the API.","type":""}}';
