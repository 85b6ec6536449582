/**
 * The registry: which dialect (reasoning/dialect.ts) serves which request.
 * Every dialect shares the cache, the store, credential scoping, counters
 * and the degrade/retry ladder; each one lives in its own folder. Which
 * dialect serves which request is ../providers.ts (surfaceFor: each provider's
 * entries name a dialect by its `name`, found here by dialectNamed); a
 * request no surface matches passes through untouched. The paths here are
 * MiMo's, kept equal to its surfaces by a unit test; the proxy itself routes
 * by the providers' (dialectFor answers for MiMo alone).
 */
import { anthropicDialect } from './anthropic/dialect.js';
import { chatDialect } from './chat/dialect.js';
import { ANTHROPIC_MESSAGES_PATH, CHAT_COMPLETIONS_PATH, RESPONSES_PATH } from './providers.js';
import type { Dialect } from './reasoning/dialect.js';
import { responsesDialect } from './responses/dialect.js';

export interface DialectRoute {
  dialect: Dialect;
  /** The request paths (query included) it serves, on any intercepted host and in direct mode. */
  path: RegExp;
}

/** Every dialect, on MiMo's paths. */
export const DIALECTS: readonly DialectRoute[] = [
  { dialect: anthropicDialect, path: ANTHROPIC_MESSAGES_PATH },
  { dialect: chatDialect, path: CHAT_COMPLETIONS_PATH },
  { dialect: responsesDialect, path: RESPONSES_PATH },
];

export function dialectFor(method: string | undefined, path: string): Dialect | undefined {
  if (method !== 'POST') return undefined;
  return DIALECTS.find((route) => route.path.test(path))?.dialect;
}

/** The dialect a provider's surface names (../providers.ts). */
export function dialectNamed(name: string): Dialect | undefined {
  return DIALECTS.find((route) => route.dialect.name === name)?.dialect;
}
