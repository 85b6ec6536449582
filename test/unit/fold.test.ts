import { describe, expect, it } from 'vitest';
import { fixture, prng, randomSplit } from '../support/unit.js';
import type { TurnReasoning } from '../../src/reasoning/match.js';
import { chatTurnIdentity } from '../../src/chat/fingerprint.js';
import { createChatJsonTap, createChatSseTap, createStreamFold } from '../../src/chat/fold.js';


/** What a fold should learn for `message` (as a client sends it back) with `reasoning`. */
function learnedAs(message: Parameters<typeof chatTurnIdentity>[0], reasoning: string): TurnReasoning {
  const identity = chatTurnIdentity(message);
  if (!identity) throw new Error('the expected message has no identity');
  // The calls with an id and a name come along (the name repair remembers them by id).
  const calls = ((message as { tool_calls?: { id?: string; function?: { name?: string } }[] }).tool_calls ?? [])
    .filter((call) => call.id && call.function?.name)
    .map((call) => ({ id: call.id as string, name: call.function?.name as string }));
  return calls.length > 0 ? { identity, reasoning, calls } : { identity, reasoning };
}

/** Feeds the chunks to a fresh SSE tap and returns what it learned. */
function tapAll(chunks: readonly Uint8Array[], options?: { maxLineBytes?: number }): TurnReasoning[] | undefined {
  const tap = createChatSseTap(options);
  for (const chunk of chunks) tap.feed(chunk);
  return tap.end();
}



const TOOL_REASONING =
  '用户想知道入口文件里的配置是怎么加载的。我应该先读 src/主.ts，再用 grep 找 loadConfig 的调用点。😀 两个工具可以并行调用。';

/** The assistant message as a client sends it back later: arguments re-serialised, content trimmed. */
const toolTurnAsSentBack = {
  role: 'assistant',
  content: '我先看一下入口文件，再搜索调用点。',
  tool_calls: [
    { id: 'call_7f2c0a9e41', type: 'function', function: { name: 'read_file', arguments: '{"limit":200,"path":"src/主.ts"}' } },
    { id: 'call_b81d33e0c5', type: 'function', function: { name: 'grep_search', arguments: '{"pattern":"loadConfig","path":"src"}' } },
  ],
};

describe('the SSE tap', () => {
  it('folds Chinese reasoning and tool calls arriving in pieces into one learned message', () => {
    const learned = tapAll([fixture('tool-calls-zh.sse')]);
    expect(learned).toEqual([
      learnedAs(toolTurnAsSentBack, TOOL_REASONING),
    ]);
  });

  it('folds n=2 choices with CRLF line endings and ignores the usage chunk', () => {
    const bytes = fixture('n2-usage-crlf.sse');
    // Guards the fixture itself: a checkout that normalised line endings would test nothing.
    expect(bytes.includes('\r\n')).toBe(true);
    expect(bytes.includes('"choices":[]')).toBe(true);
    const learned = tapAll([bytes]);
    expect(learned).toEqual([
      learnedAs({ role: 'assistant', content: null, tool_calls: [{ id: 'call_weather_01', function: { name: 'get_weather', arguments: '{"city":"北京"}' } }] }, '先思考一下：天气查询需要城市名。'),
      learnedAs({ role: 'assistant', content: '北京今天晴，气温 21℃。' }, '嗯，这个问题可以直接回答。'),
    ]);
  });

  for (const name of ['tool-calls-zh.sse', 'n2-usage-crlf.sse', 'finish-no-done.sse']) {
    it(`gives the same result for ${name} split in two at every byte offset`, () => {
      const bytes = fixture(name);
      const whole = tapAll([bytes]);
      expect(whole?.length).toBeGreaterThan(0);
      for (let cut = 0; cut <= bytes.length; cut++) {
        expect(tapAll([bytes.subarray(0, cut), bytes.subarray(cut)]), `cut at ${cut}`).toEqual(whole);
      }
    });

    it(`gives the same result for ${name} split at random points`, () => {
      const bytes = fixture(name);
      const whole = tapAll([bytes]);
      const random = prng(0x5eed + name.length);
      for (let run = 0; run < 300; run++) {
        expect(tapAll(randomSplit(bytes, random, 40)), `run ${run}`).toEqual(whole);
      }
    });
  }

  it('gives the same result with the LF fixture rewritten to CRLF and to bare CR', () => {
    const lf = fixture('tool-calls-zh.sse');
    const whole = tapAll([lf]);
    for (const ending of ['\r\n', '\r']) {
      const other = Buffer.from(lf.toString('utf8').replaceAll('\n', ending), 'utf8');
      expect(tapAll([other])).toEqual(whole);
      const random = prng(7);
      for (let run = 0; run < 50; run++) expect(tapAll(randomSplit(other, random, 20))).toEqual(whole);
    }
  });

  it('decodes Chinese text split in the middle of a character, one byte per chunk', () => {
    const bytes = fixture('tool-calls-zh.sse');
    const singles: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; i++) singles.push(bytes.subarray(i, i + 1));
    expect(tapAll(singles)?.[0]?.reasoning).toBe(TOOL_REASONING);
  });

  it('stores nothing from a stream cut off before [DONE] and without finish_reason', () => {
    const bytes = fixture('cut-off.sse');
    expect(bytes.includes('[DONE]')).toBe(false);
    expect(tapAll([bytes])).toBeUndefined();
    // Cut anywhere in the middle of the complete stream: never a result.
    const full = fixture('tool-calls-zh.sse');
    const finish = full.indexOf('"finish_reason":"tool_calls"');
    for (let cut = 0; cut < finish; cut += 97) expect(tapAll([full.subarray(0, cut)]), `cut at ${cut}`).toBeUndefined();
  });

  it('stores a stream whose choices all finished even without [DONE]', () => {
    const learned = tapAll([fixture('finish-no-done.sse')]);
    expect(learned).toEqual([
      learnedAs({ content: '', tool_calls: [{ id: 'call_ls_3', function: { name: 'list_dir', arguments: '{ "path": "." }' } }] }, '列出目录即可。'),
    ]);
  });

  it('stores a stream whose last event lacks its blank line once [DONE] was its last line', () => {
    const full = fixture('tool-calls-zh.sse').toString('utf8');
    const trimmed = Buffer.from(full.replace(/\n\n$/, ''), 'utf8');
    expect(tapAll([trimmed])).toEqual(tapAll([Buffer.from(full, 'utf8')]));
  });

  it('stores nothing from a stream with an error event', () => {
    expect(tapAll([fixture('error-event.sse')])).toBeUndefined();
    const full = fixture('finish-no-done.sse').toString('utf8');
    expect(tapAll([Buffer.from(`${full}event: error\ndata: {}\n\ndata: [DONE]\n\n`)])).toBeUndefined();
  });

  it('stores nothing when a data line is not JSON', () => {
    const full = fixture('tool-calls-zh.sse').toString('utf8');
    const broken = full.replace('data: {"id"', 'data: {"id"oops');
    expect(tapAll([Buffer.from(broken, 'utf8')])).toBeUndefined();
  });

  it('is poisoned by a line longer than maxLineBytes, whether it arrives whole or in pieces', () => {
    const full = fixture('tool-calls-zh.sse');
    const huge = Buffer.from(`data: {"choices":[{"index":0,"delta":{"content":"${'x'.repeat(5000)}"}}]}\n\n`);
    const stream = Buffer.concat([huge, full]);
    expect(tapAll([stream], { maxLineBytes: 4096 })).toBeUndefined();
    const pieces: Buffer[] = [];
    for (let i = 0; i < stream.length; i += 100) pieces.push(stream.subarray(i, i + 100));
    expect(tapAll(pieces, { maxLineBytes: 4096 })).toBeUndefined();
    // The same stream under the default cap is fine.
    expect(tapAll([stream])?.length).toBe(1);
  });

  it('measures each line, not the stream: many lines under maxLineBytes learn in any split', () => {
    const full = fixture('tool-calls-zh.sse');
    const longest = Math.max(...full.toString('latin1').split(/\r\n|\r|\n/).map((line) => line.length));
    const pieces = (size: number): Buffer[] => Array.from({ length: Math.ceil(full.length / size) }, (_, i) => full.subarray(i * size, (i + 1) * size));
    for (const size of [1, 7, 100, longest, full.length]) expect(tapAll(pieces(size), { maxLineBytes: longest })?.length, `pieces of ${size}`).toBe(1);
    // One byte less than the longest line: poisoned, however it is split.
    for (const size of [1, 7, 100, full.length]) expect(tapAll(pieces(size), { maxLineBytes: longest - 1 }), `pieces of ${size}`).toBeUndefined();
  });

  it('never throws on random bytes and returns nothing useful from them', () => {
    const random = prng(42);
    for (let run = 0; run < 200; run++) {
      const bytes = Buffer.alloc(1 + Math.floor(random() * 400));
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
      const result = tapAll(randomSplit(bytes, random, 5), { maxLineBytes: 128 });
      expect(result === undefined || result.length === 0).toBe(true);
    }
  });

  it('ignores data after [DONE] and calls to feed after end', () => {
    const tap = createChatSseTap();
    tap.feed(fixture('finish-no-done.sse'));
    tap.feed(Buffer.from('data: [DONE]\n\ndata: not json\n\n'));
    const learned = tap.end();
    expect(learned?.length).toBe(1);
    tap.feed(Buffer.from('data: {}\n\n'));
    expect(tap.end()).toBeUndefined();
  });

  it('measures the cost of feeding a chunk', () => {
    const bytes = fixture('tool-calls-zh.sse');
    const events = bytes.toString('utf8').split('\n\n').filter(Boolean).map((e) => Buffer.from(`${e}\n\n`));
    const times: number[] = [];
    for (let round = 0; round < 200; round++) {
      const tap = createChatSseTap();
      for (const event of events) {
        const start = process.hrtime.bigint();
        tap.feed(event);
        times.push(Number(process.hrtime.bigint() - start) / 1e6);
      }
      expect(tap.end()?.length).toBe(1);
    }
    times.sort((a, b) => a - b);
    console.log(`sse tap: p50 ${times[Math.floor(times.length / 2)]?.toFixed(4)} ms per chunk over ${times.length} chunks`);
  });
});

describe('the stream fold', () => {
  it('merges tool call pieces by index, appends name pieces and ignores a repeated whole name', () => {
    const fold = createStreamFold();
    const call = (piece: Record<string, unknown>) => ({ choices: [{ index: 0, delta: { tool_calls: [piece] } }] });
    expect(fold.add(call({ index: 1, id: 'b', type: 'function', function: { name: 'gr', arguments: '' } }))).toBe(true);
    expect(fold.add(call({ index: 0, id: 'a', type: 'function', function: { name: 'read', arguments: '{"p":' } }))).toBe(true);
    expect(fold.add(call({ index: 1, function: { name: 'ep', arguments: '{}' } }))).toBe(true);
    expect(fold.add(call({ index: 0, function: { name: 'read', arguments: '1}' } }))).toBe(true);
    expect(fold.add({ choices: [{ index: 0, delta: {}, finish_reason: 'tool_calls' }] })).toBe(true);
    expect(fold.allFinished()).toBe(true);
    expect(fold.choices()[0]?.message.tool_calls).toEqual([
      { id: 'a', type: 'function', function: { name: 'read', arguments: '{"p":1}' } },
      { id: 'b', type: 'function', function: { name: 'grep', arguments: '{}' } },
    ]);
  });

  it('refuses an error object, a non-object chunk and text past its bound', () => {
    expect(createStreamFold().add({ error: { message: 'boom' } })).toBe(false);
    expect(createStreamFold().add(42)).toBe(false);
    const small = createStreamFold({ maxFoldedChars: 10 });
    expect(small.add({ choices: [{ index: 0, delta: { reasoning_content: '12345' } }] })).toBe(true);
    expect(small.add({ choices: [{ index: 0, delta: { reasoning_content: '123456' } }] })).toBe(false);
  });

  it('is not finished before any choice was seen', () => {
    const fold = createStreamFold();
    expect(fold.add({ choices: [], usage: {} })).toBe(true);
    expect(fold.allFinished()).toBe(false);
  });
});

describe('the JSON tap', () => {
  const body = (value: unknown): Buffer => Buffer.from(JSON.stringify(value), 'utf8');
  const tapJson = (bytes: Buffer, options?: { maxBytes?: number }): TurnReasoning[] | undefined => {
    const tap = createChatJsonTap(options);
    for (let i = 0; i < bytes.length; i += 7) tap.feed(bytes.subarray(i, i + 7));
    return tap.end();
  };

  it('learns every choice with reasoning when n > 1 and tool_calls is null', () => {
    const learned = tapJson(
      body({
        id: 'chatcmpl-1',
        object: 'chat.completion',
        choices: [
          { index: 0, message: { role: 'assistant', content: '答案是 42。', reasoning_content: '先算一下。', tool_calls: null }, finish_reason: 'stop' },
          { index: 1, message: { role: 'assistant', content: '是 42。', reasoning_content: '', tool_calls: null }, finish_reason: 'stop' },
          {
            index: 2,
            message: { role: 'assistant', content: null, reasoning_content: '需要查文件。', tool_calls: [{ id: 'call_9', type: 'function', function: { name: 'read_file', arguments: '{"path":"a"}' } }] },
            finish_reason: 'tool_calls',
          },
        ],
        usage: { completion_tokens_details: { reasoning_tokens: 12 } },
      }),
    );
    expect(learned).toEqual([
      learnedAs({ content: '答案是 42。' }, '先算一下。'),
      learnedAs({ tool_calls: [{ id: 'call_9', function: { name: 'read_file', arguments: '{ "path": "a" }' } }] }, '需要查文件。'),
    ]);
  });

  it('stores nothing for an error body, invalid JSON or a body past maxBytes', () => {
    expect(tapJson(body({ error: { code: '400', message: 'Param Incorrect' } }))).toBeUndefined();
    expect(tapJson(Buffer.from('{"choices": ['))).toBeUndefined();
    const ok = body({ choices: [{ message: { content: 'x', reasoning_content: '想' } }] });
    expect(tapJson(ok)?.length).toBe(1);
    expect(tapJson(ok, { maxBytes: ok.length - 1 })).toBeUndefined();
  });
});
