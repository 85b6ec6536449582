/** The Anthropic Messages dialect, as the registry (../dialects.ts) serves it. */
import type { Dialect } from '../reasoning/dialect.js';
import { createAnthropicJsonTap, createAnthropicSseTap } from './fold.js';
import { rewriteMessagesRequest } from './rewrite.js';

export const anthropicDialect: Dialect = {
  name: 'anthropic',
  rewrite: rewriteMessagesRequest,
  sseTap: () => createAnthropicSseTap(),
  jsonTap: (maxBytes) => createAnthropicJsonTap({ maxBytes }),
};
