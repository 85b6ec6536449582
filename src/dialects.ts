/**
 * The API surfaces the reasoning plugin understands. One plugin, two
 * formats: they share the cache, the store, credential scoping, counters and
 * the degrade/retry policy; only what is format-specific differs (how a
 * request is rewritten, how a response is folded into learned reasoning).
 * Every other path (`/v1/responses` included) gets no surface and passes
 * through untouched.
 */
import { rewriteMessagesRequest } from './anthropic/rewrite.js';
import { createAnthropicJsonTap, createAnthropicSseTap } from './anthropic/fold.js';
import { rewriteChatRequest, type ReasoningLookup, type RewriteOutcome, type RewritePolicy } from './chat/rewrite.js';
import type { ResponseTap } from './chat/fold.js';
import { createJsonTap } from './reasoning/tap/body.js';
import { createSseTap } from './reasoning/tap/sse.js';

export interface Surface {
  readonly name: 'chat' | 'anthropic';
  rewrite(body: Buffer, lookup: ReasoningLookup, policy: RewritePolicy): RewriteOutcome;
  sseTap(): ResponseTap;
  jsonTap(maxBytes: number): ResponseTap;
}

export const CHAT_SURFACE: Surface = {
  name: 'chat',
  rewrite: rewriteChatRequest,
  sseTap: () => createSseTap(),
  jsonTap: (maxBytes) => createJsonTap({ maxBytes }),
};

export const ANTHROPIC_SURFACE: Surface = {
  name: 'anthropic',
  rewrite: rewriteMessagesRequest,
  sseTap: () => createAnthropicSseTap(),
  jsonTap: (maxBytes) => createAnthropicJsonTap({ maxBytes }),
};

/** OpenAI chat completions on any base path (`/v1/chat/completions`, `/chat/completions`). */
const CHAT_PATH = /^(?:\/[^?#]*)?\/chat\/completions\/?(?:[?#].*)?$/;
/** MiMo's Anthropic-compatible endpoint: base `https://<host>/anthropic`. */
const ANTHROPIC_PATH = /^\/anthropic\/v1\/messages\/?(?:[?#].*)?$/;

export function surfaceFor(method: string | undefined, path: string): Surface | undefined {
  if (method !== 'POST') return undefined;
  if (ANTHROPIC_PATH.test(path)) return ANTHROPIC_SURFACE;
  if (CHAT_PATH.test(path)) return CHAT_SURFACE;
  return undefined;
}
