import { describe, expect, it } from 'vitest';
import { isReasoningRejection, MAX_REJECTION_BYTES } from '../../src/reasoning/rejection.js';

const MIMO = '{"error":{"code":"400","message":"Param Incorrect","param":"The reasoning_content in the thinking mode must be passed back to the API.","type":""}}';

describe('recognising the reasoning rejection', () => {
  it("matches MiMo's 400 as plain JSON", () => {
    expect(isReasoningRejection(400, Buffer.from(MIMO))).toBe(true);
    expect(isReasoningRejection(400, Buffer.from(`\n  ${MIMO}\n`))).toBe(true);
  });

  it("matches MiMo's 400 framed as SSE, with or without [DONE] and CRLF", () => {
    expect(isReasoningRejection(400, Buffer.from(`data: ${MIMO}\n\n`))).toBe(true);
    expect(isReasoningRejection(400, Buffer.from(`data:${MIMO}\r\n\r\ndata: [DONE]\r\n\r\n`))).toBe(true);
    expect(isReasoningRejection(400, Buffer.from(`event: error\ndata: ${MIMO}\n\ndata: [DONE]\n\n`))).toBe(true);
  });

  it('matches a rejection whose JSON spans several data: lines of one event, with LF, CRLF or CR', () => {
    const [a, b, c] = ['{"error":{"code":"400",', '"message":"Param Incorrect",', '"param":"The reasoning_content in the thinking mode must be passed back to the API.","type":""}}'];
    for (const eol of ['\n', '\r\n', '\r']) {
      const event = `event: error${eol}data: ${a}${eol}data: ${b}${eol}data:${c}${eol}${eol}`;
      expect(isReasoningRejection(400, Buffer.from(`${event}data: [DONE]${eol}${eol}`)), JSON.stringify(eol)).toBe(true);
      // The end of the body ends the last event, blank line or not.
      expect(isReasoningRejection(400, Buffer.from(event.trimEnd())), JSON.stringify(eol)).toBe(true);
    }
  });

  it('never joins the data of two events into one payload', () => {
    const split = 'data: {"error":{"message":"reasoning_content\r\n\r\ndata: must be passed back"}}\r\n\r\n';
    expect(isReasoningRejection(400, Buffer.from(split))).toBe(false);
  });

  it(`reads no further than ${MAX_REJECTION_BYTES} bytes of a body`, () => {
    const event = `data: ${MIMO}\n\n`;
    const padding = `: ${'x'.repeat(MAX_REJECTION_BYTES - event.length - 3)}\n`;
    expect(isReasoningRejection(400, Buffer.from(padding + event))).toBe(true);
    // 16 bytes more: the end of the JSON falls past the limit.
    expect(isReasoningRejection(400, Buffer.from(`:${'x'.repeat(15)}${padding}${event}`))).toBe(false);
  });

  it("matches DeepSeek's and Kimi's wording", () => {
    const deepseek = '{"error":{"message":"The `reasoning_content` in the thinking mode must be passed back to the API.","type":"invalid_request_error","param":null,"code":"invalid_request_error"}}';
    const kimi = '{"error":{"message":"thinking is enabled but reasoning_content is missing in assistant tool call message at index 2","type":"invalid_request_error"}}';
    expect(isReasoningRejection(400, Buffer.from(deepseek))).toBe(true);
    expect(isReasoningRejection(400, Buffer.from(kimi))).toBe(true);
  });

  it('is false for other 400s', () => {
    for (const other of [
      '{"error":{"code":"400","message":"Param Incorrect","param":"`text` is not present","type":""}}',
      '{"error":{"code":"400","message":"Param Incorrect","param":"`name` is not set","type":""}}',
      '{"error":{"message":"reasoning_content is not supported by this model"}}',
      '{"error":{"code":"invalid_api_key","message":"Invalid API key"}}',
      'Bad Request',
      '',
      'data: {"choices":[]}\n\n',
    ]) {
      expect(isReasoningRejection(400, Buffer.from(other)), other).toBe(false);
    }
  });

  it('is false for any status but 400', () => {
    for (const status of [200, 401, 422, 429, 500]) expect(isReasoningRejection(status, Buffer.from(MIMO))).toBe(false);
  });

  it('never throws on random bytes', () => {
    let seed = 99;
    for (let run = 0; run < 200; run++) {
      const bytes = Buffer.alloc(run);
      for (let i = 0; i < run; i++) {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        bytes[i] = seed >>> 24;
      }
      expect(isReasoningRejection(400, bytes)).toBe(false);
    }
  });
});
