import { describe, expect, it } from 'vitest';
import { isReasoningRejection } from '../../src/reasoning/rejection.js';
import { ANTHROPIC_REASONING_ERROR_BODY, orphanToolResultBody } from '../support/fake-anthropic.js';

describe('recognising the reasoning rejection on the Anthropic surface', () => {
  it("matches the 400 MiMo's /anthropic/v1/messages answers, plain and SSE-framed", () => {
    // The same OpenAI-style body as the chat surface (MIMO-API.md, "The other two surfaces").
    expect(ANTHROPIC_REASONING_ERROR_BODY).toBe('{"error":{"code":"400","message":"Param Incorrect","param":"The reasoning_content in the thinking mode must be passed back to the API.","type":""}}');
    expect(isReasoningRejection(400, Buffer.from(ANTHROPIC_REASONING_ERROR_BODY))).toBe(true);
    expect(isReasoningRejection(400, Buffer.from(`data: ${ANTHROPIC_REASONING_ERROR_BODY}\n\n`))).toBe(true);
    expect(isReasoningRejection(400, Buffer.from(`event: error\r\ndata: ${ANTHROPIC_REASONING_ERROR_BODY}\r\n\r\n`))).toBe(true);
  });

  it("is false for Anthropic's other errors and for other statuses", () => {
    expect(isReasoningRejection(400, Buffer.from(orphanToolResultBody(2, 0, 'toolu_x')))).toBe(false);
    expect(isReasoningRejection(400, Buffer.from('{"type":"error","error":{"type":"invalid_request_error","message":"messages: text content blocks must be non-empty"}}'))).toBe(false);
    expect(isReasoningRejection(529, Buffer.from('{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'))).toBe(false);
    expect(isReasoningRejection(500, Buffer.from(ANTHROPIC_REASONING_ERROR_BODY))).toBe(false);
  });
});
