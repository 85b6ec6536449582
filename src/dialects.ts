/**
 * The registry: which dialect (reasoning/dialect.ts) serves which request.
 * Every dialect shares the cache, the store, credential scoping, counters
 * and the degrade/retry ladder; each one lives in its own folder. A `POST`
 * whose path matches an entry gets that dialect, the first match winning;
 * every other request (`/v1/responses` included) gets none and passes
 * through untouched. Which provider serves which of these on which paths is
 * ../providers.ts.
 */
import { anthropicDialect } from './anthropic/dialect.js';
import { chatDialect } from './chat/dialect.js';
import type { Dialect } from './reasoning/dialect.js';

export interface DialectRoute {
  dialect: Dialect;
  /** The request paths (query included) it serves, on any intercepted host and in direct mode. */
  path: RegExp;
}

/** The Anthropic-compatible endpoint: base `https://<host>/anthropic`. */
export const ANTHROPIC_MESSAGES_PATH = /^\/anthropic\/v1\/messages\/?(?:[?#].*)?$/;
/** OpenAI chat completions on any base path (`/v1/chat/completions`, `/chat/completions`, `/coding/v1/...`). */
export const CHAT_COMPLETIONS_PATH = /^(?:\/[^?#]*)?\/chat\/completions\/?(?:[?#].*)?$/;

/** MiMo's surfaces (its provider entry, ../providers.ts, serves exactly these). */
export const DIALECTS: readonly DialectRoute[] = [
  { dialect: anthropicDialect, path: ANTHROPIC_MESSAGES_PATH },
  { dialect: chatDialect, path: CHAT_COMPLETIONS_PATH },
];

/** The dialect of `routes` serving a request, the first match winning: only POSTs are served. */
export function dialectFor(method: string | undefined, path: string, routes: readonly DialectRoute[] = DIALECTS): Dialect | undefined {
  if (method !== 'POST') return undefined;
  return routes.find((route) => route.path.test(path))?.dialect;
}
