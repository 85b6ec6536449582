/** The OpenAI Responses API dialect (`POST /v1/responses`, what Codex speaks), as the registry (../dialects.ts) serves it. */
import type { Dialect } from '../reasoning/dialect.js';
import { createResponsesJsonTap, createResponsesSseTap } from './fold.js';
import { rewriteResponsesRequest } from './rewrite.js';

export const responsesDialect: Dialect = {
  name: 'responses',
  rewrite: rewriteResponsesRequest,
  sseTap: () => createResponsesSseTap(),
  jsonTap: (maxBytes) => createResponsesJsonTap({ maxBytes }),
};
