import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { body, CODINGS, encode, fixture, prng, randomSplit } from '../support/unit.js';
import type { TurnReasoning } from '../../src/reasoning/match.js';
import { contentCodings, decodeBody, isEncoded, type Coding } from '../../src/reasoning/encoding.js';
import { createDecodingTap, decodingTap } from '../../src/reasoning/tap/decode.js';
import type { ResponseTap } from '../../src/reasoning/dialect.js';
import { createChatJsonTap, createChatSseTap } from '../../src/chat/fold.js';

const MiB = 1024 * 1024;

/** An inner tap that only counts what reaches it. */
function counting(): ResponseTap & { fed: number; ended: number } {
  const tap = {
    fed: 0,
    ended: 0,
    feed(chunk: Uint8Array) {
      tap.fed += chunk.length;
    },
    end(): TurnReasoning[] | undefined {
      tap.ended++;
      return [];
    },
  };
  return tap;
}

const COMPLETION = {
  id: 'chatcmpl-1',
  object: 'chat.completion',
  choices: [{ index: 0, message: { role: 'assistant', content: '', reasoning_content: '先查天气。', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"北京"}' } }] }, finish_reason: 'tool_calls' }],
};

describe('contentCodings', () => {
  it.each([
    [undefined, []],
    ['', []],
    ['identity', []],
    ['gzip', ['gzip']],
    ['x-gzip', ['gzip']],
    ['GZip, identity', ['gzip']],
    [' BR ', ['br']],
    ['deflate,zstd', ['deflate', 'zstd']],
    [['gzip', 'br'], ['gzip', 'br']],
    ['compress', undefined],
    ['x-foo', undefined],
    ['gzip, x-foo', undefined],
    ['gzip, gzip, gzip, gzip', undefined],
  ] as Array<[string | string[] | undefined, Coding[] | undefined]>)('%j -> %j', (header, codings) => {
    expect(contentCodings(header)).toEqual(codings);
    expect(isEncoded(header)).toBe(codings === undefined || codings.length > 0);
  });
});

describe('decodeBody', () => {
  const json = body(COMPLETION);

  for (const coding of CODINGS) {
    it(`decodes ${coding}`, async () => {
      expect(await decodeBody(encode(coding, json), [coding], MiB)).toEqual({ kind: 'decoded', body: json });
    });
  }

  it('decodes stacked codings in reverse order of application', async () => {
    const twice = zlib.brotliCompressSync(zlib.gzipSync(json));
    expect(await decodeBody(twice, ['gzip', 'br'], MiB)).toEqual({ kind: 'decoded', body: json });
    expect((await decodeBody(twice, ['br', 'gzip'], MiB)).kind).toBe('invalid');
  });

  it('stops past maxBytes, and says so', async () => {
    const bomb = zlib.gzipSync(Buffer.alloc(8 * MiB));
    expect(await decodeBody(bomb, ['gzip'], MiB)).toEqual({ kind: 'too-large' });
    expect(await decodeBody(encode('zstd', json), ['zstd'], json.length - 1)).toEqual({ kind: 'too-large' });
    expect(await decodeBody(encode('zstd', json), ['zstd'], json.length)).toEqual({ kind: 'decoded', body: json });
    expect(await decodeBody(encode('gzip', json), ['gzip'], 0)).toEqual({ kind: 'too-large' });
  });

  it('reports corrupt or truncated input as invalid, never throwing', async () => {
    const gz = encode('gzip', json);
    const corrupt = Buffer.from(gz);
    corrupt[Math.floor(corrupt.length / 2)]! ^= 0xff;
    expect(await decodeBody(corrupt, ['gzip'], MiB)).toEqual({ kind: 'invalid' });
    expect(await decodeBody(gz.subarray(0, gz.length - 6), ['gzip'], MiB)).toEqual({ kind: 'invalid' });
    expect(await decodeBody(json, ['br'], MiB)).toEqual({ kind: 'invalid' });
  });
});

describe('the decoding tap', () => {
  const sse = fixture('tool-calls-zh.sse');
  const expected = (() => {
    const tap = createChatSseTap();
    tap.feed(sse);
    return tap.end();
  })();

  it('hands an identity body to the inner tap as is, synchronously', () => {
    const tap = decodingTap([], createChatSseTap());
    tap.feed(sse);
    expect(tap.end()).toEqual(expected);
  });

  for (const coding of CODINGS) {
    it(`learns from a ${coding} stream split anywhere, exactly as from the plain one`, async () => {
      expect(expected).toHaveLength(1);
      const random = prng(coding.length * 7919);
      for (let round = 0; round < 5; round++) {
        const tap = createDecodingTap([coding], createChatSseTap());
        for (const piece of randomSplit(encode(coding, sse), random, 12)) tap.feed(piece);
        expect(await tap.end()).toEqual(expected);
      }
    });

    it(`learns from a ${coding} JSON answer`, async () => {
      const tap = createDecodingTap([coding], createChatJsonTap(), { maxDecodedBytes: MiB });
      tap.feed(encode(coding, body(COMPLETION)));
      const learned = await tap.end();
      expect(learned).toHaveLength(1);
      expect(learned![0]!.reasoning).toBe('先查天气。');
    });
  }

  it('learns from stacked codings', async () => {
    const tap = createDecodingTap(['gzip', 'br'], createChatSseTap());
    tap.feed(zlib.brotliCompressSync(zlib.gzipSync(sse)));
    expect(await tap.end()).toEqual(expected);
  });

  it('does not learn from a corrupt or truncated stream, and says why', async () => {
    const gz = encode('gzip', sse);
    const corrupt = Buffer.from(gz);
    corrupt[Math.floor(corrupt.length / 2)]! ^= 0xff;
    for (const bytes of [corrupt, gz.subarray(0, gz.length - 4)]) {
      const reasons: string[] = [];
      const tap = createDecodingTap(['gzip'], createChatSseTap(), { onGiveUp: (reason) => reasons.push(reason) });
      tap.feed(bytes);
      expect(await tap.end()).toBeUndefined();
      expect(reasons).toEqual(['invalid']);
    }
  });

  it('stops a decompression bomb at maxDecodedBytes: the decoder is destroyed, the inner tap never ends', async () => {
    const bomb = zlib.gzipSync(Buffer.alloc(50 * 1000 * 1000), { level: 9 });
    const inner = counting();
    const reasons: string[] = [];
    const tap = createDecodingTap(['gzip'], inner, { maxDecodedBytes: MiB, onGiveUp: (reason) => reasons.push(reason) });
    for (let i = 0; i < bomb.length; i += 16 * 1024) tap.feed(bomb.subarray(i, i + 16 * 1024));
    expect(await tap.end()).toBeUndefined();
    expect(reasons).toEqual(['too-large']);
    expect(inner.fed).toBeLessThanOrEqual(MiB);
    expect(inner.ended).toBe(0);
  });

  it('learns nothing once aborted, and ignores what comes after', async () => {
    const inner = counting();
    const tap = createDecodingTap(['gzip'], inner);
    const gz = encode('gzip', sse);
    tap.feed(gz.subarray(0, 10));
    tap.abort();
    tap.feed(gz.subarray(10));
    expect(await tap.end()).toBeUndefined();
    expect(inner.ended).toBe(0);
  });

  it('does not let the bytes it was given change under it', async () => {
    const gz = encode('gzip', sse);
    const tap = createDecodingTap(['gzip'], createChatSseTap());
    const chunk = Buffer.from(gz);
    tap.feed(chunk);
    chunk.fill(0);
    expect(await tap.end()).toEqual(expected);
  });
});
