/**
 * A local HTTPS server that plays MiMo's OpenAI-compatible API for tests, and
 * enforces the rule this project exists for: in thinking mode every assistant
 * message with tool_calls must carry its reasoning_content back, or the answer
 * is MiMo's 400 (see /work/shared/MIMO-API.md). It also rejects orphan tool
 * messages as OpenAI-compatible APIs do, so "strip the tool calls" fails here too.
 *
 * The script is deterministic in shape: with k assistant tool-call messages in
 * the request, k < toolRounds answers one tool call, otherwise a final answer.
 * Every reasoning it produces is unique (a random id in it), so a test can
 * tell whether what came back is what was produced for that very turn.
 *
 * It plays the other providers too, chosen by the Host header (PROVIDERS.md):
 * on `api.deepseek.com` DeepSeek's rule and exact error texts (chat at
 * `/chat/completions` and `/v1/chat/completions`, Anthropic at
 * `/anthropic/v1/messages`, Responses also at `/responses`; `""` never counts; `deepseek-chat` does not think;
 * with `tools` declared every earlier assistant turn needs its reasoning), on
 * Moonshot's and Kimi's hosts Kimi's (chat, also at Kimi Code's
 * `/coding/v1/chat/completions`; "... at index N"). With
 * `mimoShapeRules`, MiMo's other 400s too (null or list content on a tool-call
 * message, an empty tool-call name).
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import zlib from 'node:zlib';
import { handleAnthropic, type FakeAnthropicState } from './fake-anthropic.js';
import { handleResponses, type FakeResponsesOptions, type FakeResponsesState } from './fake-responses.js';
import { makeTestCa, type TestCa } from './pki.js';
import { isObject, randomId, splitText } from './fake-common.js';

export { splitText } from './fake-common.js';

export interface FakeMimoOptions {
  /** Tool-call rounds before a final answer (default 3). */
  toolRounds?: number;
  /** Delay between SSE events (default 0: one write per event, yielding with setImmediate between them). */
  chunkDelayMs?: number;
  /** Strict: a reasoning_content other than exactly what this server produced for that tool_call id gets the reasoning 400. */
  rejectPlaceholders?: boolean;
  /** Default true: '' counts as not passed back. */
  treatEmptyAsMissing?: boolean;
  /** When the request had stream:true, send error bodies as `data: {...}\n\n` (status still 400). */
  sseFramedErrors?: boolean;
  /** On MiMo's hosts: an assistant tool-call message with null, absent or list content, or a call with an empty name, gets MiMo's 400 for it. */
  mimoShapeRules?: boolean;
  /** Pieces the reasoning is streamed in (default 20). */
  reasoningChunks?: number;
  /** Content pieces of a final answer (default 8). */
  answerChunks?: number;
  /** false: keep no requests, echoes or produced reasoning (the benchmark's long runs) */
  record?: boolean;
  /** called just before each SSE event is written, with its index, performance.now() and the request it answers */
  onEvent?: (index: number, at: number, request: RecordedRequest) => void;
  /** Benchmark: request bodies whose Content-Length is over this many bytes are hashed as they arrive, not parsed (as digestBodies), so the fake's own JSON parse does not stall its other streams. */
  digestBodiesOver?: number;

  // Fault modes (hardening tests). All off by default.
  /** Chat completions are answered with this status (and statusBody, statusHeaders) instead of the script. */
  status?: number;
  /** Body sent with `status` (default: a JSON error naming the status); a Buffer goes as is (e.g. a ready-made gzip body, with statusHeaders). */
  statusBody?: string | Buffer;
  /** Extra headers sent with `status` (e.g. retry-after for a 429). */
  statusHeaders?: Record<string, string>;
  /** Streamed answers: the connection is torn down (TCP reset where possible) after this many events. */
  resetAfterEvents?: number;
  /** Streamed answers: nothing more is written after this many events (0: not even the headers) until the client goes away or close(). */
  stallAfterEvents?: number;
  /** Streams: hold the response open this long after its last event (`[DONE]`) before ending it. */
  endDelayMs?: number;
  /** Streamed answers: lines that are not valid chat SSE (comments, junk fields, non-JSON data, bare CR, invalid UTF-8) between events. */
  invalidSseLines?: boolean;
  /** Streamed answers: one content event of about this many bytes (a single line) before the finish. */
  hugeLineBytes?: number;
  /** Streamed answers: filler content events totalling about this many bytes before the finish, written as fast as the socket drains them (write() false -> wait for 'drain'). */
  padBytes?: number;
  /** Bodies are hashed as they arrive, not kept (no size cap); chat completions answer 200 {"bytes","sha256"}. */
  digestBodies?: boolean;
  /** With digestBodies: pause reading the body this long after every 256 KiB (an upstream slower than the client). */
  slowBodyMs?: number;
  /**
   * Answers are compressed with this coding whatever the request's accept-encoding (as an upstream
   * or middlebox that ignores `identity`): Content-Encoding set, Content-Length dropped, a streamed
   * answer flushed after every write. The bytes sent are kept in the request's record (`response`).
   */
  compress?: 'gzip' | 'deflate' | 'br' | 'zstd';
  /** With compress: the Content-Encoding header sent instead of the coding's name (e.g. `GZip, identity`). */
  contentEncodingHeader?: string;
  /** With compress: the compressed byte at this offset of the body is flipped (a corrupt stream). */
  corruptAt?: number;
  /** Request bodies with a Content-Encoding (gzip, x-gzip, deflate, br, zstd) are decoded before they are read; otherwise they are not JSON. */
  acceptEncodedBodies?: boolean;
  /**
   * Long runs: keep no requests or echoes, only count them (exactEchoes/inexactEchoes); keep produced
   * reasoning only while its conversation runs (forgotten once the final answer is given).
   */
  countOnly?: boolean;
  /** The Responses route's own options (fake-responses.ts); toolRounds, rejectPlaceholders, sseFramedErrors and chunkDelayMs come from above. */
  responses?: Pick<FakeResponsesOptions, 'callsPerOutput' | 'summary' | 'encrypted' | 'enforce' | 'rejection'>;
}

export interface RecordedRequest {
  method: string;
  /** Path and query as received. */
  path: string;
  headers: IncomingHttpHeaders;
  /** The body bytes exactly as received. */
  body: Buffer;
  /** The body parsed, when it is JSON. */
  json?: any;
  /** The status answered (0 until the answer is decided). */
  status: number;
  /** With digestBodies: the body's size and SHA-256 (hex); body is then empty. */
  bytes?: number;
  sha256?: string;
  /** With compress: the answer's body exactly as sent (compressed), once it ended. */
  response?: Buffer;
}

/** What one streamed answer put on the wire (the body, after HTTP framing is removed). */
export interface SentStream {
  bytes: number;
  sha256: string;
  /** false when it was cut (reset, stall, client gone) before its end. */
  complete: boolean;
}

export interface Echo {
  toolCallId: string;
  received: string | null | undefined;
  produced: string | undefined;
  exact: boolean;
}

export interface FakeMimo {
  readonly port: number;
  /** https://127.0.0.1:PORT */
  readonly url: string;
  /** The CA its certificate chains to (a CA that is not mimo-proxy's). */
  readonly ca: TestCa;
  /** Read at each request, so a test may change it between requests. */
  options: FakeMimoOptions;
  readonly requests: RecordedRequest[];
  /** Reasoning this server produced, by tool_call id. */
  readonly produced: Map<string, string>;
  /** For every assistant tool-call message received: what came back vs what was produced. */
  readonly echoes: Echo[];
  /** TCP connections accepted (proves keep-alive reuse). */
  connections: number;
  /** TLS handshakes completed. */
  tlsSessions: number;
  /** Responses whose client went away before the last byte. */
  abortedResponses: number;
  /** The Anthropic-compatible route's own record: thinking produced by tool_use id, and echoes. */
  readonly anthropic: FakeAnthropicState;
  /** The Responses route's own record: reasoning items produced by call_id, and echoes. */
  readonly responses: FakeResponsesState;
  /** Responses whose last byte was handed to the OS ('finish'). */
  finishedResponses: number;
  /** Requests whose body never arrived in full (the client or proxy went away mid-body). */
  abortedRequests: number;
  /** Body bytes of streamed answers written so far (live; with padBytes, only what the socket accepted). */
  streamedBytes: number;
  /** Every streamed answer, once it ended or was cut (not kept with record: false or countOnly). */
  readonly sentStreams: SentStream[];
  /** Echoes counted even when not kept (countOnly): exactly the produced reasoning, or not. */
  exactEchoes: number;
  inexactEchoes: number;
  /** Closes the server and destroys open sockets; never waits on a client. */
  close(): Promise<void>;
}

/** The body MiMo answers when a tool-call turn lacks its reasoning (platform notice of 2026-05-12). */
export const REASONING_ERROR_BODY = '{"error":{"code":"400","message":"Param Incorrect","param":"The reasoning_content in the thinking mode must be passed back to the API.","type":""}}';
/** What OpenAI-compatible APIs answer for a tool message with no matching earlier tool call. */
export const ORPHAN_TOOL_ERROR_BODY = '{"error":{"message":"Messages with role \'tool\' must be a response to a preceding message with \'tool_calls\'","type":"invalid_request_error"}}';

/** DeepSeek's answers (PROVIDERS.md): chat, and its Anthropic-compatible endpoint. */
export const DEEPSEEK_REASONING_ERROR_BODY = '{"error":{"message":"The `reasoning_content` in the thinking mode must be passed back to the API.","type":"invalid_request_error","param":null,"code":"invalid_request_error"}}';
export const DEEPSEEK_ANTHROPIC_REASONING_ERROR_BODY = '{"type":"error","error":{"type":"invalid_request_error","message":"The content[].thinking in the thinking mode must be passed back to the API."}}';
/** Kimi's answer, naming the message index of the first turn that lacks its reasoning. */
export function kimiReasoningErrorBody(index: number): string {
  return JSON.stringify({ error: { message: `thinking is enabled but reasoning_content is missing in assistant tool call message at index ${index}`, type: 'invalid_request_error' } });
}
/** MiMo's other 400s (MIMO-API.md), with mimoShapeRules. */
export const MIMO_TEXT_NOT_PRESENT_BODY = '{"error":{"code":"400","message":"Param Incorrect","param":"`text` is not present","type":""}}';
export const MIMO_NAME_NOT_SET_BODY = '{"error":{"code":"400","message":"Param Incorrect","param":"`name` is not set","type":""}}';

export type FakeProvider = 'mimo' | 'deepseek' | 'kimi';
export const DEEPSEEK_HOSTS = ['api.deepseek.com'];
export const KIMI_HOSTS = ['api.moonshot.ai', 'api.moonshot.cn', 'api.kimi.com'];

/** Which provider the fake plays for a request, by its Host header. */
export function fakeProviderOf(headers: IncomingHttpHeaders): FakeProvider {
  const host = String(headers.host ?? '').toLowerCase().replace(/:\d+$/, '');
  if (DEEPSEEK_HOSTS.includes(host)) return 'deepseek';
  if (KIMI_HOSTS.includes(host)) return 'kimi';
  return 'mimo';
}

export const FAKE_MIMO_HOSTS = ['api.xiaomimimo.com', '*.xiaomimimo.com', 'token-plan-cn.xiaomimimo.com', ...DEEPSEEK_HOSTS, ...KIMI_HOSTS, 'localhost', '127.0.0.1'];
export const FAKE_MIMO_MODELS = ['mimo-v2.6-pro', 'mimo-v2.6-flash', 'mimo-v2.6-pro-ultraspeed', 'mimo-v2-flash'];

const DEFAULT_TOOL_ROUNDS = 3;
const DEFAULT_REASONING_CHUNKS = 20;
const DEFAULT_ANSWER_CHUNKS = 8;
/** Bounds, so a runaway test cannot make the fake eat memory. */
const MAX_BODY_BYTES = 32 * 1024 * 1024;
const MAX_CHOICES = 16;
const MAX_CHUNKS = 100_000;
const TOOL_NAMES = ['get_weather', 'read_file', 'search_web'] as const;

function boundedInt(value: number | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined || !Number.isFinite(value)) return fallback;
  return Math.min(max, Math.max(min, Math.floor(value)));
}

interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

interface Choice {
  content: string;
  reasoning: string;
  toolCall: ToolCall | undefined;
}

function toolArguments(name: string, round: number): string {
  if (name === 'read_file') return JSON.stringify({ path: `笔记/北京第${round + 1}轮.md`, round });
  if (name === 'search_web') return JSON.stringify({ query: '北京 天气 明天', round });
  return JSON.stringify({ city: '北京', round });
}

/** The final answer, padded so it can be streamed in `pieces` non-empty parts. */
function finalAnswer(id: string, pieces: number): string {
  let text = `北京今天晴，气温 12 到 20 度。Beijing is sunny today. (${id})`;
  for (let i = 1; Array.from(text).length < pieces && i <= MAX_CHUNKS; i++) text += ` 第${i}句：天气很好。`;
  return text;
}

function makeChoice(round: number, toolRounds: number, answerChunks: number): Choice {
  const tag = randomId(12);
  if (round < toolRounds) {
    const name = TOOL_NAMES[round % TOOL_NAMES.length]!;
    return {
      content: '',
      reasoning: `第${round + 1}步：我需要调用 ${name} 查询北京的天气。(${tag})`,
      toolCall: { id: `call_${randomId(12)}`, type: 'function', function: { name, arguments: toolArguments(name, round) } },
    };
  }
  return {
    content: finalAnswer(tag, answerChunks),
    reasoning: `好的，${round} 个工具的结果都拿到了，现在可以回答用户：北京今天晴。(${tag})`,
    toolCall: undefined,
  };
}

function usageOf(choices: Choice[]): Record<string, unknown> {
  const reasoning = choices.reduce((sum, c) => sum + Array.from(c.reasoning).length, 0);
  const content = choices.reduce((sum, c) => sum + Array.from(c.content).length + (c.toolCall ? c.toolCall.function.arguments.length : 0), 0);
  return {
    prompt_tokens: 42,
    completion_tokens: reasoning + content,
    total_tokens: 42 + reasoning + content,
    completion_tokens_details: { reasoning_tokens: reasoning },
  };
}

type Verdict = { status: number; body: string } | undefined;

/** Marks where padBytes filler goes in the event list. */
const PAD = '\u0000pad';

/** Lines a lenient SSE parser skips or a strict one rejects; the proxy must forward them untouched. */
const INVALID_SSE_LINES: Array<string | Buffer> = [
  ': a comment line\n',
  'event: ping\ndata: {not json\n\n',
  'retry: soon\nid\nno colon here\n',
  'data: [DONE-ish]\r\r',
  Buffer.concat([Buffer.from('data: '), Buffer.from([0xff, 0xfe, 0xc3, 0x28]), Buffer.from('\n\n')]),
  'data:\n\n',
];

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

/** Content events of about 16 KB each until `total` bytes are written (a fixed filler, so nothing large is held). */
async function writePadding(write: (data: string) => Promise<void>, id: string, created: number, model: string, total: number, stop: () => boolean): Promise<void> {
  const filler = '填充'.repeat(2730);
  const event = `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta: { content: filler }, finish_reason: null }] })}\n\n`;
  const size = Buffer.byteLength(event);
  for (let written = 0; written < total && !stop(); written += size) await write(event);
}

/** acceptEncodedBodies: a request body decoded per its Content-Encoding (codings in the order applied). */
function decodeRequestBody(body: Buffer, header: string | undefined): Buffer {
  let out = body;
  const codings = (header ?? '').split(',').map((c) => c.trim().toLowerCase()).filter((c) => c !== '' && c !== 'identity');
  for (const coding of codings.reverse()) {
    const options = { maxOutputLength: MAX_BODY_BYTES };
    if (coding === 'gzip' || coding === 'x-gzip') out = zlib.gunzipSync(out, options);
    else if (coding === 'deflate') out = zlib.inflateSync(out, options);
    else if (coding === 'br') out = zlib.brotliDecompressSync(out, options);
    else if (coding === 'zstd') out = zlib.zstdDecompressSync(out, options);
    else throw new Error(`unknown coding ${coding}`);
  }
  return out;
}

function compressor(coding: NonNullable<FakeMimoOptions['compress']>): zlib.Gzip | zlib.Deflate | zlib.BrotliCompress | zlib.ZstdCompress {
  if (coding === 'gzip') return zlib.createGzip();
  if (coding === 'deflate') return zlib.createDeflate();
  if (coding === 'br') return zlib.createBrotliCompress();
  return zlib.createZstdCompress();
}

/**
 * compress: from here on, what the handlers write to `res` goes through a compressor (each write
 * flushed, so a stream's events still leave one by one); `onSent` gets the compressed body at the end.
 */
function compressAnswer(res: ServerResponse, options: FakeMimoOptions, onSent: (sent: Buffer) => void): void {
  const encoder = compressor(options.compress!);
  const header = options.contentEncodingHeader ?? options.compress!;
  const corruptAt = options.corruptAt;
  const writeHead = res.writeHead.bind(res) as (status: number, headers?: Record<string, unknown>) => ServerResponse;
  const write = res.write.bind(res) as (chunk: Buffer) => boolean;
  const end = res.end.bind(res) as () => ServerResponse;
  const sent: Buffer[] = [];
  let offset = 0;
  encoder.on('data', (chunk: Buffer) => {
    if (corruptAt !== undefined && corruptAt >= offset && corruptAt < offset + chunk.length) chunk[corruptAt - offset]! ^= 0xff;
    offset += chunk.length;
    sent.push(chunk);
    if (!res.destroyed) write(chunk);
  });
  encoder.on('end', () => {
    onSent(Buffer.concat(sent));
    if (!res.destroyed) end();
  });
  encoder.on('error', () => res.destroy());
  res.once('close', () => encoder.destroy());
  const patched = res as unknown as Record<string, unknown>;
  patched['writeHead'] = (status: number, headers: Record<string, unknown> = {}): ServerResponse => {
    const plain = Object.fromEntries(Object.entries(headers).filter(([name]) => name.toLowerCase() !== 'content-length'));
    return writeHead(status, { ...plain, 'content-encoding': header });
  };
  patched['write'] = (chunk: string | Buffer): boolean => {
    encoder.write(chunk);
    encoder.flush();
    return true;
  };
  patched['end'] = (chunk?: string | Buffer): ServerResponse => {
    if (chunk !== undefined) encoder.write(chunk);
    encoder.end();
    return res;
  };
}

export async function startFakeMimo(initial: FakeMimoOptions = {}): Promise<FakeMimo> {
  const ca = makeTestCa('fake-mimo');
  const leaf = ca.issue(FAKE_MIMO_HOSTS);
  const sockets = new Set<Socket>();
  const sleepers = new Set<() => void>();
  let closed = false;

  const server = https.createServer({ key: leaf.keyPem, cert: leaf.certPem, keepAlive: true });
  // Longer than any client's idle reuse in a test, so a reused connection is never raced by our own close.
  server.keepAliveTimeout = 60_000;

  const fake: FakeMimo = {
    port: 0,
    url: '',
    ca,
    options: { ...initial },
    requests: [],
    produced: new Map(),
    echoes: [],
    connections: 0,
    tlsSessions: 0,
    abortedResponses: 0,
    anthropic: { produced: new Map(), echoes: [] },
    responses: { produced: new Map(), echoes: [] },
    finishedResponses: 0,
    abortedRequests: 0,
    streamedBytes: 0,
    sentStreams: [],
    exactEchoes: 0,
    inexactEchoes: 0,
    close,
  };

  /** A timer that close() cuts short, so no stream keeps the process alive after the test. */
  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      let cancel = (): void => undefined;
      const done = (): void => {
        cancel();
        sleepers.delete(done);
        resolve();
      };
      if (ms > 0) {
        const timer = setTimeout(done, ms);
        cancel = () => clearTimeout(timer);
      } else {
        const immediate = setImmediate(done);
        cancel = () => clearImmediate(immediate);
      }
      sleepers.add(done);
    });
  }

  function send(res: ServerResponse, record: RecordedRequest, status: number, body: string, sse = false): void {
    record.status = status;
    const payload = sse ? `data: ${body}\n\n` : body;
    res.writeHead(status, {
      'content-type': sse ? 'text/event-stream' : 'application/json',
      'content-length': Buffer.byteLength(payload),
    });
    res.end(payload);
  }

  function jsonError(status: number, message: string, type: string): string {
    return JSON.stringify({ error: { code: String(status), message, param: '', type } });
  }

  /** Walks the history: records echoes, and returns the first rule the request breaks, if any. */
  function check(body: Record<string, any>, options: FakeMimoOptions, provider: FakeProvider): Verdict {
    const messages: unknown[] = body.messages;
    const switched = isObject(body.thinking) ? body.thinking.type : undefined;
    const thinking = switched !== 'disabled' && !(provider === 'deepseek' && body.model === 'deepseek-chat' && switched !== 'enabled');
    // DeepSeek rejects '' (PROVIDERS.md); MiMo's and Kimi's acceptance of it is uncertain.
    const emptyIsMissing = provider === 'deepseek' || (options.treatEmptyAsMissing ?? true);
    const everyTurn = provider === 'deepseek' && Array.isArray(body.tools) && body.tools.length > 0;
    const rejection = (index: number): Verdict => ({
      status: 400,
      body: provider === 'deepseek' ? DEEPSEEK_REASONING_ERROR_BODY : provider === 'kimi' ? kimiReasoningErrorBody(index) : REASONING_ERROR_BODY,
    });
    const knownCalls = new Set<string>();
    let verdict: Verdict;
    for (const [index, message] of messages.entries()) {
      if (!isObject(message)) continue;
      if (provider === 'mimo' && options.mimoShapeRules === true && !verdict && message.role === 'assistant' && Array.isArray(message.tool_calls) && message.tool_calls.length > 0) {
        if (typeof message.content !== 'string') verdict = { status: 400, body: MIMO_TEXT_NOT_PRESENT_BODY };
        else if (message.tool_calls.some((c: any) => !isObject(c) || !isObject(c.function) || typeof c.function.name !== 'string' || c.function.name === '')) verdict = { status: 400, body: MIMO_NAME_NOT_SET_BODY };
      }
      if (everyTurn && !verdict && thinking && message.role === 'assistant' && !(Array.isArray(message.tool_calls) && message.tool_calls.length > 0)) {
        const received = message.reasoning_content;
        if (typeof received !== 'string' || received.trim() === '') verdict = rejection(index);
      }
      if (message.role === 'assistant' && Array.isArray(message.tool_calls) && message.tool_calls.length > 0) {
        const ids = message.tool_calls.map((c: any) => (isObject(c) && typeof c.id === 'string' ? c.id : '')) as string[];
        for (const id of ids) knownCalls.add(id);
        const toolCallId = ids.find((id) => fake.produced.has(id)) ?? ids[0] ?? '';
        const received = message.reasoning_content as string | null | undefined;
        const produced = fake.produced.get(toolCallId);
        const exact = produced !== undefined && received === produced;
        if (exact) fake.exactEchoes++;
        else fake.inexactEchoes++;
        if (fake.options.record !== false && options.countOnly !== true) fake.echoes.push({ toolCallId, received, produced, exact });
        if (!thinking || verdict) continue;
        const missing = typeof received !== 'string' || (emptyIsMissing && received === '');
        const wrong = options.rejectPlaceholders === true && produced !== undefined && received !== produced;
        if (missing || wrong) verdict = rejection(index);
      } else if (message.role === 'tool' && !verdict) {
        if (typeof message.tool_call_id !== 'string' || !knownCalls.has(message.tool_call_id)) verdict = { status: 400, body: ORPHAN_TOOL_ERROR_BODY };
      }
    }
    return verdict;
  }

  async function chat(res: ServerResponse, record: RecordedRequest, provider: FakeProvider): Promise<void> {
    const body = record.json;
    if (!isObject(body) || !Array.isArray(body.messages)) {
      send(res, record, 400, jsonError(400, 'Invalid request: the body must be a JSON object with a messages array', 'invalid_request_error'));
      return;
    }
    const options = fake.options;
    const stream = body.stream === true;
    if (options.status !== undefined) {
      record.status = options.status;
      const payload = options.statusBody ?? jsonError(options.status, `fake status ${options.status}`, 'fake_error');
      res.writeHead(options.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...options.statusHeaders });
      res.end(payload);
      return;
    }
    const verdict = check(body, options, provider);
    if (verdict) {
      send(res, record, verdict.status, verdict.body, stream && options.sseFramedErrors === true);
      return;
    }
    const round = body.messages.filter((m: any) => isObject(m) && m.role === 'assistant' && Array.isArray(m.tool_calls) && m.tool_calls.length > 0).length;
    const toolRounds = boundedInt(options.toolRounds, DEFAULT_TOOL_ROUNDS, 0, MAX_CHUNKS);
    const answerChunks = boundedInt(options.answerChunks, DEFAULT_ANSWER_CHUNKS, 1, MAX_CHUNKS);
    if (options.countOnly === true && round >= toolRounds) {
      // The conversation is over: forget its reasoning, so a long run's memory stays flat.
      for (const m of body.messages) {
        if (!isObject(m) || !Array.isArray(m.tool_calls)) continue;
        for (const c of m.tool_calls) if (isObject(c) && typeof c.id === 'string') fake.produced.delete(c.id);
      }
    }
    const n = boundedInt(typeof body.n === 'number' ? body.n : undefined, 1, 1, MAX_CHOICES);
    const choices: Choice[] = [];
    for (let i = 0; i < n; i++) {
      const choice = makeChoice(round, toolRounds, answerChunks);
      if (choice.toolCall && options.record !== false) fake.produced.set(choice.toolCall.id, choice.reasoning);
      choices.push(choice);
    }
    const id = `chatcmpl-${randomId(24)}`;
    const created = Math.floor(Date.now() / 1000);
    const model = typeof body.model === 'string' ? body.model : FAKE_MIMO_MODELS[0]!;
    if (!stream) {
      send(res, record, 200, JSON.stringify({
        id,
        object: 'chat.completion',
        created,
        model,
        choices: choices.map((c, index) => ({
          index,
          message: { role: 'assistant', content: c.content, reasoning_content: c.reasoning, tool_calls: c.toolCall ? [c.toolCall] : null },
          finish_reason: c.toolCall ? 'tool_calls' : 'stop',
        })),
        usage: usageOf(choices),
      }));
      return;
    }
    const reasoningChunks = boundedInt(options.reasoningChunks, DEFAULT_REASONING_CHUNKS, 1, MAX_CHUNKS);
    const chunk = (choicesPart: unknown[], extra: Record<string, unknown> = {}): string =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: choicesPart, ...extra })}\n\n`;
    const perChoice = choices.map((c, index) => {
      const delta = (d: Record<string, unknown>, finish: string | null = null): string => chunk([{ index, delta: d, finish_reason: finish }]);
      const events = [delta({ role: 'assistant', content: '' })];
      for (const piece of splitText(c.reasoning, reasoningChunks)) events.push(delta({ reasoning_content: piece }));
      if (c.content !== '') for (const piece of splitText(c.content, answerChunks)) events.push(delta({ content: piece }));
      if (c.toolCall) {
        const call = c.toolCall;
        events.push(delta({ tool_calls: [{ index: 0, id: call.id, type: 'function', function: { name: call.function.name, arguments: '' } }] }));
        for (const piece of splitText(call.function.arguments, 3)) events.push(delta({ tool_calls: [{ index: 0, function: { arguments: piece } }] }));
      }
      if (options.hugeLineBytes !== undefined) events.push(delta({ content: 'x'.repeat(boundedInt(options.hugeLineBytes, 0, 0, 256 * 1024 * 1024)) }));
      if (options.padBytes !== undefined) {
        // Filler is yielded lazily below (PAD marker), so a large pad is never held in memory at once.
        events.push(PAD);
      }
      events.push(delta({}, c.toolCall ? 'tool_calls' : 'stop'));
      return events;
    });
    // Choices interleave, as they do upstream when n > 1.
    const events: string[] = [];
    const longest = Math.max(...perChoice.map((e) => e.length));
    for (let i = 0; i < longest; i++) for (const list of perChoice) if (list[i] !== undefined) events.push(list[i]!);
    if (isObject(body.stream_options) && body.stream_options.include_usage === true) events.push(chunk([], { usage: usageOf(choices) }));
    events.push('data: [DONE]\n\n');

    record.status = 200;
    const hash = createHash('sha256');
    let sent = 0;
    let finished = false;
    const noteStream = (complete: boolean): void => {
      if (finished) return;
      finished = true;
      if (fake.options.record !== false && fake.options.countOnly !== true) fake.sentStreams.push({ bytes: sent, sha256: hash.digest('hex'), complete });
    };
    res.once('close', () => noteStream(false));
    const write = async (data: string | Buffer): Promise<void> => {
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      hash.update(bytes);
      sent += bytes.length;
      fake.streamedBytes += bytes.length;
      if (!res.write(bytes) && options.padBytes !== undefined) await drained(res);
    };
    const stall = async (): Promise<void> => {
      // Hold the response open, writing nothing, until the client goes away or the fake closes.
      while (!closed && !res.destroyed) await sleep(50);
    };
    if (options.stallAfterEvents === 0) return stall();
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const delayMs = boundedInt(options.chunkDelayMs, 0, 0, 60_000);
    for (const [index, event] of events.entries()) {
      if (closed || res.destroyed || res.writableEnded) return;
      if (options.resetAfterEvents !== undefined && index >= options.resetAfterEvents) {
        noteStream(false);
        const socket = res.socket as (Socket & { resetAndDestroy?: () => void }) | null;
        // A TLS socket cannot send an RST (resetAndDestroy throws for it); a destroy without
        // close_notify mid-chunk is the same to the peer's HTTP parser: the body never ends.
        try {
          socket?.resetAndDestroy?.();
        } catch {
          socket?.destroy();
        }
        return;
      }
      if (options.stallAfterEvents !== undefined && index >= options.stallAfterEvents) return stall();
      options.onEvent?.(index, performance.now(), record);
      if (event === PAD) {
        await writePadding(write, id, created, model, boundedInt(options.padBytes, 0, 0, 1024 ** 3), () => closed || res.destroyed);
        continue;
      }
      if (options.invalidSseLines === true) await write(INVALID_SSE_LINES[index % INVALID_SSE_LINES.length]!);
      await write(event);
      // A separate turn of the event loop per event, so events leave in separate TCP segments.
      await sleep(delayMs);
    }
    const endDelayMs = boundedInt(options.endDelayMs, 0, 0, 60_000);
    for (const until = Date.now() + endDelayMs; Date.now() < until && !closed && !res.destroyed; ) await sleep(Math.min(50, until - Date.now()));
    if (!closed && !res.destroyed) {
      noteStream(true);
      res.end();
    }
  }

  function handle(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
    const record: RecordedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body, status: 0 };
    try {
      const text = fake.options.acceptEncodedBodies === true ? decodeRequestBody(body, req.headers['content-encoding']) : body;
      if (text.length > 0) record.json = JSON.parse(text.toString('utf8'));
    } catch {
      // Not JSON (or not decodable): left undefined, answered below when the route wants JSON.
    }
    if (fake.options.compress !== undefined) compressAnswer(res, fake.options, (sent) => (record.response = sent));
    if (fake.options.record !== false && fake.options.countOnly !== true) fake.requests.push(record);
    res.on('close', () => {
      if (!res.writableFinished) fake.abortedResponses++;
    });
    res.on('finish', () => {
      fake.finishedResponses++;
    });

    const auth = req.headers.authorization;
    const apiKey = req.headers['api-key'] ?? req.headers['x-api-key'];
    const authorized = (typeof auth === 'string' && /^Bearer\s+\S+/i.test(auth)) || (typeof apiKey === 'string' && apiKey.trim() !== '');
    if (!authorized) {
      send(res, record, 401, jsonError(401, 'Invalid API Key', 'authentication_error'));
      return;
    }
    const pathname = new URL(req.url ?? '/', 'https://fake.invalid').pathname;
    if (pathname === '/v1/models' && req.method === 'GET') {
      const created = 1_790_000_000;
      send(res, record, 200, JSON.stringify({ object: 'list', data: FAKE_MIMO_MODELS.map((id) => ({ id, object: 'model', created, owned_by: 'xiaomi' })) }));
      return;
    }
    const provider = fakeProviderOf(req.headers);
    if (pathname === '/anthropic/v1/messages' && req.method === 'POST' && provider !== 'kimi') {
      record.status = 200;
      const o = fake.options;
      handleAnthropic(req, res, record.json, fake.anthropic, {
        toolRounds: o.toolRounds ?? 3,
        rejectPlaceholders: o.rejectPlaceholders === true,
        chunkDelayMs: o.chunkDelayMs ?? 0,
        sseFramedErrors: o.sseFramedErrors === true,
        ...(provider === 'deepseek' ? { reasoningErrorBody: DEEPSEEK_ANTHROPIC_REASONING_ERROR_BODY } : {}),
      }).catch(() => res.destroy());
      return;
    }
    if ((pathname === '/v1/responses' || (provider === 'deepseek' && pathname === '/responses')) && req.method === 'POST') {
      const o = fake.options;
      handleResponses(req, res, record.json, fake.responses, {
        ...o.responses,
        toolRounds: o.toolRounds ?? 3,
        rejectPlaceholders: o.rejectPlaceholders === true,
        chunkDelayMs: o.chunkDelayMs ?? 0,
        sseFramedErrors: o.sseFramedErrors === true,
        stallAfterEvents: o.stallAfterEvents,
        endDelayMs: o.endDelayMs,
      }, record).catch(() => res.destroy());
      return;
    }
    const chatPath =
      pathname === '/v1/chat/completions' || (provider === 'deepseek' && pathname === '/chat/completions') || (provider === 'kimi' && pathname === '/coding/v1/chat/completions');
    if (chatPath && req.method === 'POST') {
      if (record.json === undefined) {
        send(res, record, 400, jsonError(400, 'Invalid JSON in request body', 'invalid_request_error'));
        return;
      }
      chat(res, record, provider).catch(() => res.destroy());
      return;
    }
    send(res, record, 404, jsonError(404, `Not found: ${req.method} ${pathname}`, 'not_found_error'));
  }

  server.on('connection', (socket: Socket) => {
    fake.connections++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('secureConnection', () => {
    fake.tlsSessions++;
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    req.on('close', () => {
      if (!req.complete) fake.abortedRequests++;
    });
    const over = fake.options.digestBodiesOver;
    if (fake.options.digestBodies === true || (over !== undefined && Number(req.headers['content-length'] ?? 0) > over)) {
      digest(req, res);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        res.writeHead(413, { 'content-type': 'application/json', connection: 'close' });
        res.end(jsonError(413, 'Request body too large', 'invalid_request_error'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (size <= MAX_BODY_BYTES) handle(req, res, Buffer.concat(chunks));
    });
  });

  /** digestBodies: hash the body as it streams in; nothing of it is kept. */
  function digest(req: IncomingMessage, res: ServerResponse): void {
    const hash = createHash('sha256');
    let bytes = 0;
    const pauseMs = boundedInt(fake.options.slowBodyMs, 0, 0, 10_000);
    let sincePause = 0;
    req.on('data', (c: Buffer) => {
      hash.update(c);
      bytes += c.length;
      sincePause += c.length;
      if (pauseMs > 0 && sincePause >= 256 * 1024) {
        sincePause = 0;
        req.pause();
        sleep(pauseMs).then(() => req.resume(), () => undefined);
      }
    });
    req.on('end', () => {
      const sha256 = hash.digest('hex');
      const record: RecordedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.alloc(0), status: 200, bytes, sha256 };
      if (fake.options.record !== false && fake.options.countOnly !== true) fake.requests.push(record);
      res.on('finish', () => {
        fake.finishedResponses++;
      });
      const payload = JSON.stringify({ bytes, sha256 });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
      res.end(payload);
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  Object.assign(fake, { port, url: `https://127.0.0.1:${port}` });

  async function close(): Promise<void> {
    if (closed) return;
    closed = true;
    for (const wake of [...sleepers]) wake();
    const done = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await done;
    ca.cleanup();
  }

  return fake;
}
