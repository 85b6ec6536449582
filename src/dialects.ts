/**
 * The registry: which dialect (reasoning/dialect.ts) serves which request.
 * Every dialect shares the cache, the store, credential scoping, counters
 * and the degrade/retry ladder; each one lives in its own folder. A `POST`
 * whose path matches an entry gets that dialect, the first match winning;
 * every other request gets none and passes through untouched.
 */
import { anthropicDialect } from './anthropic/dialect.js';
import { chatDialect } from './chat/dialect.js';
import type { Dialect } from './reasoning/dialect.js';
import { responsesDialect } from './responses/dialect.js';

export interface DialectRoute {
  dialect: Dialect;
  /** The request paths (query included) it serves, on any intercepted host and in direct mode. */
  path: RegExp;
}

export const DIALECTS: readonly DialectRoute[] = [
  // MiMo's Anthropic-compatible endpoint: base `https://<host>/anthropic`.
  { dialect: anthropicDialect, path: /^\/anthropic\/v1\/messages\/?(?:[?#].*)?$/ },
  // OpenAI chat completions on any base path (`/v1/chat/completions`, `/chat/completions`).
  { dialect: chatDialect, path: /^(?:\/[^?#]*)?\/chat\/completions\/?(?:[?#].*)?$/ },
  // The OpenAI Responses API on any base path (`/v1/responses`): what Codex speaks. Not its sub-paths.
  { dialect: responsesDialect, path: /^(?:\/[^?#]*)?\/responses\/?(?:[?#].*)?$/ },
];

export function dialectFor(method: string | undefined, path: string): Dialect | undefined {
  if (method !== 'POST') return undefined;
  return DIALECTS.find((route) => route.path.test(path))?.dialect;
}
