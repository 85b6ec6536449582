/** The OpenAI chat-completions dialect, as the registry (../dialects.ts) serves it. */
import type { Dialect } from '../reasoning/dialect.js';
import { createChatJsonTap, createChatSseTap } from './fold.js';
import { rewriteChatRequest } from './rewrite.js';

export const chatDialect: Dialect = {
  name: 'chat',
  rewrite: rewriteChatRequest,
  sseTap: () => createChatSseTap(),
  jsonTap: (maxBytes) => createChatJsonTap({ maxBytes }),
};
