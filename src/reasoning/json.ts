/**
 * JSON as the client wrote it. A rewritten request is serialised again, and
 * that must change nothing but what the rewrite changed: `JSON.parse` turns
 * `12345678901234567890` into 12345678901234567000, `1e400` into Infinity
 * (written back as null) and `-0` into 0. So a body that holds a number
 * whose text would not come back the same is parsed keeping each such
 * number's source text (`JSON.parse` revivers see it; `JSON.rawJSON` writes
 * it back verbatim). A body with no such number, the common case, takes the
 * plain parse: the check is one regular-expression scan.
 * Pure.
 */

interface RawJsonApi {
  rawJSON(text: string): unknown;
  isRawJSON(value: unknown): boolean;
}
interface SourceContext {
  source?: string;
}

const api = JSON as unknown as Partial<RawJsonApi>;
/** JSON.rawJSON and source text in revivers (Node 22+); without them numbers are parsed as JSON.parse does. */
const rawJsonSupported = typeof api.rawJSON === 'function' && typeof api.isRawJSON === 'function';

/**
 * A number token that may not survive parse + stringify: an exponent, 16 or
 * more digits, a fraction ending in 0, -0, or below 1e-6 written out in full.
 * A number with none of these is written back by JSON.stringify exactly as it
 * came (15 significant digits or fewer always round-trip). It also matches
 * such text inside strings; that only costs the slower, still exact, parse.
 */
const MAYBE_LOSSY_NUMBER = /[:[,\s](?:-0(?![.\d])|-?(?:\d+(?:\.\d+)?[eE]|\d(?:\.?\d){15}|\d+\.\d*0(?!\d)|0\.0{6}))/;

function keepNumberText(this: unknown, _key: string, value: unknown, context?: SourceContext): unknown {
  if (typeof value !== 'number' || context?.source === undefined) return value;
  return JSON.stringify(value) === context.source ? value : (api as RawJsonApi).rawJSON(context.source);
}

/** JSON.parse that keeps every number's meaning (see the header). Throws like JSON.parse. */
export function parseJson(text: string): unknown {
  if (!rawJsonSupported || !MAYBE_LOSSY_NUMBER.test(text)) return JSON.parse(text);
  return JSON.parse(text, keepNumberText as (this: unknown, key: string, value: unknown) => unknown);
}

/** A number kept as its source text by parseJson. */
export function isRawNumber(value: unknown): boolean {
  return rawJsonSupported && typeof value === 'object' && value !== null && (api as RawJsonApi).isRawJSON(value);
}

/** A plain (non-null, non-array) object; a number kept as its source text is not one. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !isRawNumber(value);
}

/** JSON with object keys sorted recursively and no whitespace; a kept number counts as the number it reads as. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isRawNumber(value)) return JSON.stringify(Number(JSON.stringify(value))) ?? 'null';
  if (typeof value === 'object' && value !== null) {
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`).join(',')}}`;
  }
  // Primitives from JSON.parse: string, number, boolean, null.
  return JSON.stringify(value) ?? 'null';
}

/**
 * A tool call's arguments as text: a string (a JSON string per the APIs) as sent; an object,
 * which some clients send instead, as its JSON; anything else ''.
 */
export function argumentsText(args: unknown): string {
  if (typeof args === 'string') return args;
  if (args === undefined || args === null) return '';
  try {
    return JSON.stringify(args) ?? '';
  } catch {
    return '';
  }
}

/**
 * A call's arguments as a JSON string (chat tool_calls, a string tool_use
 * input) parsed and re-serialised canonically, so a client that re-serialised
 * or re-ordered them still matches; the trimmed raw string when they do not parse.
 */
export function canonicalArguments(raw: string): string {
  const trimmed = raw.trim();
  if (trimmed === '') return '';
  try {
    return canonicalJson(JSON.parse(trimmed));
  } catch {
    return trimmed;
  }
}
