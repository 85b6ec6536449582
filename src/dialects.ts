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
import { rewriteChatRequest } from './chat/rewrite.js';
import { createChatJsonTap, createChatSseTap } from './chat/fold.js';
import type { Dialect } from './reasoning/dialect.js';

export const CHAT_SURFACE: Dialect = {
  name: 'chat',
  rewrite: rewriteChatRequest,
  sseTap: () => createChatSseTap(),
  jsonTap: (maxBytes) => createChatJsonTap({ maxBytes }),
};

export const ANTHROPIC_SURFACE: Dialect = {
  name: 'anthropic',
  rewrite: rewriteMessagesRequest,
  sseTap: () => createAnthropicSseTap(),
  jsonTap: (maxBytes) => createAnthropicJsonTap({ maxBytes }),
};

/** OpenAI chat completions on any base path (`/v1/chat/completions`, `/chat/completions`). */
const CHAT_PATH = /^(?:\/[^?#]*)?\/chat\/completions\/?(?:[?#].*)?$/;
/** MiMo's Anthropic-compatible endpoint: base `https://<host>/anthropic`. */
const ANTHROPIC_PATH = /^\/anthropic\/v1\/messages\/?(?:[?#].*)?$/;

export function dialectFor(method: string | undefined, path: string): Dialect | undefined {
  if (method !== 'POST') return undefined;
  if (ANTHROPIC_PATH.test(path)) return ANTHROPIC_SURFACE;
  if (CHAT_PATH.test(path)) return CHAT_SURFACE;
  return undefined;
}
