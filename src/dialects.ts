/**
 * The registry of dialects (reasoning/dialect.ts), by name. Every dialect
 * shares the cache, the store, credential scoping, counters and the
 * degrade/retry ladder; each one lives in its own folder. Which dialect
 * serves which request is the providers' registry (../providers.ts): each
 * provider's surfaces name a dialect and the paths it serves there
 * (surfaceFor), and the proxy finds the dialect here by that name
 * (dialectNamed). A request no surface matches passes through untouched.
 */
import { anthropicDialect } from './anthropic/dialect.js';
import { chatDialect } from './chat/dialect.js';
import type { Dialect } from './reasoning/dialect.js';
import { responsesDialect } from './responses/dialect.js';

/** Every dialect, each under a name no other uses (the cache scopes entries by it). */
export const DIALECTS: readonly Dialect[] = [anthropicDialect, chatDialect, responsesDialect];

/** The dialect a provider's surface names (../providers.ts). */
export function dialectNamed(name: string): Dialect | undefined {
  return DIALECTS.find((dialect) => dialect.name === name);
}
