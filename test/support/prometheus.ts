/**
 * A strict reader of the Prometheus text exposition format (0.0.4), for the
 * /metrics tests (there is no promtool here). It refuses what Prometheus
 * would refuse or misread: a sample before its family's TYPE, HELP or TYPE
 * twice, a bad metric or label name, a label value with a bad escape, a
 * duplicate series, a counter that is negative, and histograms whose buckets
 * are not cumulative, lack `+Inf`, or disagree with `_count`.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string | undefined;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function parseValue(text: string, line: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`bad value ${JSON.stringify(text)} in: ${line}`);
  return Number(text);
}

/** Labels between braces: name="value", values with \\ \" \n escapes only. */
function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    if (eq === -1) throw new Error(`bad labels in: ${line}`);
    const name = text.slice(i, eq);
    if (!LABEL_NAME.test(name) || name.startsWith('__')) throw new Error(`bad label name ${JSON.stringify(name)} in: ${line}`);
    if (name in labels) throw new Error(`label ${name} twice in: ${line}`);
    if (text[eq + 1] !== '"') throw new Error(`unquoted label value in: ${line}`);
    let value = '';
    let j = eq + 2;
    for (;;) {
      const c = text[j];
      if (c === undefined) throw new Error(`unterminated label value in: ${line}`);
      if (c === '"') break;
      if (c === '\\') {
        const next = text[j + 1];
        if (next === '\\') value += '\\';
        else if (next === '"') value += '"';
        else if (next === 'n') value += '\n';
        else throw new Error(`bad escape in: ${line}`);
        j += 2;
      } else {
        if (c === '\n') throw new Error(`raw newline in a label value: ${line}`);
        value += c;
        j++;
      }
    }
    labels[name] = value;
    i = j + 1;
    if (i < text.length) {
      if (text[i] !== ',') throw new Error(`expected a comma in: ${line}`);
      i++;
    }
  }
  return labels;
}

function parseSample(line: string): Sample {
  const brace = line.indexOf('{');
  let name: string;
  let labels: Record<string, string> = {};
  let rest: string;
  if (brace !== -1 && brace < line.indexOf(' ')) {
    name = line.slice(0, brace);
    // The closing brace: the first '}' outside a quoted value.
    let j = brace + 1;
    let quoted = false;
    for (; j < line.length; j++) {
      const c = line[j];
      if (quoted && c === '\\') j++;
      else if (c === '"') quoted = !quoted;
      else if (!quoted && c === '}') break;
    }
    if (j >= line.length) throw new Error(`unclosed labels in: ${line}`);
    labels = parseLabels(line.slice(brace + 1, j), line);
    rest = line.slice(j + 1);
  } else {
    const space = line.indexOf(' ');
    name = line.slice(0, space);
    rest = line.slice(space);
  }
  if (!METRIC_NAME.test(name)) throw new Error(`bad metric name ${JSON.stringify(name)} in: ${line}`);
  const parts = rest.trim().split(/ +/);
  if (parts.length < 1 || parts.length > 2 || !rest.startsWith(' ')) throw new Error(`bad sample line: ${line}`);
  if (parts[1] !== undefined && !/^-?\d+$/.test(parts[1])) throw new Error(`bad timestamp in: ${line}`);
  return { name, labels, value: parseValue(parts[0] as string, line) };
}

const seriesKey = (sample: Sample): string => `${sample.name}{${Object.entries(sample.labels).sort().map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`;

/** The family a sample belongs to: its name, or a histogram's name without _bucket/_sum/_count. */
function familyOf(families: Map<string, Family>, name: string): Family | undefined {
  const direct = families.get(name);
  if (direct) return direct;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  const base = m ? families.get(m[1] as string) : undefined;
  return base && (base.type === 'histogram' || base.type === 'summary') ? base : undefined;
}

function checkHistogram(family: Family): void {
  const groups = new Map<string, Sample[]>();
  for (const sample of family.samples) {
    const { le, ...rest } = sample.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    groups.set(key, [...(groups.get(key) ?? []), sample]);
  }
  for (const samples of groups.values()) {
    const buckets = samples.filter((s) => s.name === `${family.name}_bucket`);
    const count = samples.find((s) => s.name === `${family.name}_count`);
    const sum = samples.find((s) => s.name === `${family.name}_sum`);
    if (!count || !sum) throw new Error(`${family.name}: a series lacks _sum or _count`);
    if (buckets.length === 0 || buckets.some((b) => b.labels.le === undefined)) throw new Error(`${family.name}: buckets missing or without le`);
    const bounds = buckets.map((b) => parseValue(b.labels.le as string, `le of ${family.name}`));
    for (let i = 1; i < buckets.length; i++) {
      if (!((bounds[i] as number) > (bounds[i - 1] as number))) throw new Error(`${family.name}: le not increasing`);
      if ((buckets[i] as Sample).value < (buckets[i - 1] as Sample).value) throw new Error(`${family.name}: buckets not cumulative`);
    }
    if (bounds.at(-1) !== Infinity) throw new Error(`${family.name}: no +Inf bucket`);
    if (buckets.at(-1)!.value !== count.value) throw new Error(`${family.name}: +Inf bucket ${buckets.at(-1)!.value} != _count ${count.value}`);
    if (count.value < 0 || sum.value < 0) throw new Error(`${family.name}: negative _count or _sum`);
  }
}

/** Every family of a /metrics body, or an Error naming the first line Prometheus would refuse. */
export function parsePrometheus(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('the body must end with a newline');
  const families = new Map<string, Family>();
  const series = new Set<string>();
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
    if (meta) {
      const [, kind, name, rest = ''] = meta as unknown as [string, string, string, string | undefined];
      if (!METRIC_NAME.test(name)) throw new Error(`bad metric name in: ${line}`);
      const family = families.get(name) ?? { name, type: 'untyped', help: undefined, samples: [] };
      if (family.samples.length > 0) throw new Error(`${kind} after samples of ${name}`);
      if (kind === 'HELP') {
        if (family.help !== undefined) throw new Error(`HELP twice for ${name}`);
        family.help = rest;
      } else {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) throw new Error(`bad TYPE in: ${line}`);
        if (families.has(name) && family.type !== 'untyped') throw new Error(`TYPE twice for ${name}`);
        family.type = rest as Family['type'];
      }
      families.set(name, family);
      continue;
    }
    if (line.startsWith('#')) continue;
    const sample = parseSample(line);
    const family = familyOf(families, sample.name);
    if (!family) throw new Error(`sample before its TYPE: ${line}`);
    const key = seriesKey(sample);
    if (series.has(key)) throw new Error(`duplicate series ${key}`);
    series.add(key);
    if (family.type === 'counter' && !(sample.value >= 0)) throw new Error(`negative counter: ${line}`);
    if (family.type === 'counter' && !sample.name.endsWith('_total')) throw new Error(`counter not named *_total: ${line}`);
    family.samples.push(sample);
  }
  for (const family of families.values()) {
    if (family.type === 'histogram' && family.samples.length > 0) checkHistogram(family);
  }
  return families;
}

/** The value of one series (labels matched exactly), or undefined. */
export function valueOf(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const family = familyOf(families, name);
  const wanted = JSON.stringify(Object.entries(labels).sort());
  return family?.samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === wanted)?.value;
}
