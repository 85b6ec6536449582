/**
 * What stands in for reasoning that was not kept, for an assistant turn MiMo
 * would otherwise refuse (see MIMO-API.md, "The rule that breaks clients"),
 * worded the same in every dialect:
 *
 *   placeholder  a short reasoning text specific to its turn: the step's
 *                position and the tools it called. Never one constant text:
 *                a constant placeholder repeated every turn made a model
 *                parrot it and stall. Tool calls and results stay as they are.
 *   flatten      the tool exchange becomes plain text, which no rule applies
 *                to; each dialect rewrites its own shapes (its degrade.ts),
 *                naming each call, its arguments and its result in a user
 *                turn (flattenedExchangeText, for chat and Responses; the
 *                Anthropic dialect words a tool_use's input itself), never
 *                "[Called X]" markers in the assistant's text: those teach a
 *                model to write tool calls as text.
 * A turn's calls are given by their tool names ('' for an unnamed one).
 * Pure.
 */
import { isRecord } from './json.js';

/** How many distinct tool names a placeholder lists before "and N more". */
const MAX_NAMED_TOOLS = 4;

/** The placeholder for a turn: a plain one when it called no tool. */
export function turnPlaceholder(step: number, toolNames: readonly string[]): string {
  return toolNames.length === 0 ? plainPlaceholder(step) : toolCallPlaceholder(step, toolNames);
}

/** "Reasoning for step 3 was not kept; this step called read_file and grep (2 calls)." */
export function toolCallPlaceholder(step: number, toolNames: readonly string[]): string {
  return `Reasoning for step ${step} was not kept; this step called ${describeCalls(toolNames)}.`;
}

/** The placeholder for a plain assistant turn (no tool calls). */
export function plainPlaceholder(step: number): string {
  return `Reasoning for step ${step} was not kept; this step answered in text.`;
}

/** The placeholder for the text an assistant kept when its tool calls were flattened. */
export function flattenedPlaceholder(step: number, toolNames: readonly string[]): string {
  return `Reasoning for step ${step} was not kept; the results of ${describeCalls(toolNames)} follow as text.`;
}

/** "read_file, grep (2 calls), 2 more tools and an unnamed tool". */
function describeCalls(toolNames: readonly string[]): string {
  const counts = new Map<string, number>();
  let unnamed = 0;
  for (const name of toolNames) {
    if (name === '') unnamed++;
    else counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const parts: string[] = [];
  for (const [name, count] of counts) {
    if (parts.length === MAX_NAMED_TOOLS) break;
    parts.push(count > 1 ? `${name} (${count} calls)` : name);
  }
  const more = counts.size - parts.length;
  if (more > 0) parts.push(`${more} more tool${more === 1 ? '' : 's'}`);
  if (unnamed > 0) parts.push(unnamed === 1 ? 'an unnamed tool' : `${unnamed} unnamed tools`);
  if (parts.length === 0) return 'a tool';
  if (parts.length === 1) return parts[0] ?? 'a tool';
  return `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}`;
}

/** One flattened call: its tool's name ('' unnamed), its arguments as text, its id. */
export interface FlattenedCall {
  name: string;
  args: string;
  id: string;
}

/**
 * The user turn's text for a flattened tool exchange: each call with its arguments and its
 * results (`results`: by call id). A result goes with the first call of its id, '' included:
 * the dialect took it out of the request, so it must be in this text.
 */
export function flattenedExchangeText(step: number, calls: readonly FlattenedCall[], results: ReadonlyMap<string, readonly unknown[]>): string {
  const taken = new Set<string>();
  const sections = calls.map(({ name, args, id }) => {
    const outputs = taken.has(id) ? [] : (results.get(id) ?? []);
    taken.add(id);
    const head = `The tool ${name || 'an unnamed tool'} was called with arguments ${args.trim() === '' ? '(none)' : args.trim()}.`;
    if (outputs.length === 0) return `${head}\nNo result was recorded.`;
    return outputs.map((output) => `${head}\nResult:\n${resultText(output)}`).join('\n\n');
  });
  return `Step ${step} used tools; here are the calls and their results, as text:\n\n${sections.join('\n\n')}`;
}

/** A tool result's text: a string, or the text of its parts (other parts named, not inlined). */
export function resultText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (content === null || content === undefined) return '(empty)';
  if (!Array.isArray(content)) {
    try {
      return JSON.stringify(content) ?? '(empty)';
    } catch {
      return '(unreadable)';
    }
  }
  const pieces: string[] = [];
  for (const part of content) {
    if (typeof part === 'string') pieces.push(part);
    else if (isRecord(part) && typeof part['text'] === 'string') pieces.push(part['text']);
    else if (isRecord(part) && typeof part['type'] === 'string') pieces.push(`(a part of type ${part['type']}, not shown)`);
  }
  return pieces.length === 0 ? '(empty)' : pieces.join('\n');
}
