// A strict parser of the Prometheus text exposition format (version 0.0.4): it throws on anything
// a Prometheus server would refuse, and checks what the format promises about histograms.
export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: MetricType;
  help?: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set<MetricType>(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SUFFIXES: Record<MetricType, string[]> = {
  counter: [''],
  gauge: [''],
  untyped: [''],
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count'],
};

// As Go's strconv.ParseFloat reads it (what Prometheus uses): NaN and Inf in any case.
function parseValue(text: string, line: number): number {
  if (/^\+?inf(inity)?$/i.test(text)) return Infinity;
  if (/^-inf(inity)?$/i.test(text)) return -Infinity;
  if (/^nan$/i.test(text)) return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`line ${line}: not a number: ${text}`);
  return Number(text);
}

function parseLabels(text: string, line: number): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let i = 1;
  while (text[i] !== '}') {
    const nameMatch = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(text.slice(i));
    if (!nameMatch) throw new Error(`line ${line}: bad label name at ${text.slice(i)}`);
    const name = nameMatch[0];
    i += name.length;
    if (text.slice(i, i + 2) !== '="') throw new Error(`line ${line}: expected =" after label ${name}`);
    i += 2;
    let value = '';
    for (;;) {
      const c = text[i];
      if (c === undefined || c === '\n') throw new Error(`line ${line}: unterminated label value`);
      if (c === '"') break;
      if (c === '\\') {
        const escaped = text[i + 1];
        if (escaped === '\\') value += '\\';
        else if (escaped === '"') value += '"';
        else if (escaped === 'n') value += '\n';
        else throw new Error(`line ${line}: bad escape \\${escaped}`);
        i += 2;
      } else {
        value += c;
        i += 1;
      }
    }
    i += 1;
    if (name in labels) throw new Error(`line ${line}: label ${name} twice`);
    labels[name] = value;
    if (text[i] === ',') i += 1;
    else if (text[i] !== '}') throw new Error(`line ${line}: expected , or } after label ${name}`);
  }
  return { labels, rest: text.slice(i + 1) };
}

export function parsePrometheusText(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a line feed');
  const families = new Map<string, Family>();
  const series = new Set<string>();
  let current: Family | undefined;
  const lines = text.slice(0, -1).split('\n');
  lines.forEach((raw, index) => {
    const line = index + 1;
    if (raw === '') return;
    if (raw.startsWith('#')) {
      const match = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(raw);
      if (!match) return; // a plain comment
      const [, keyword, name, rest] = match;
      if (!METRIC_NAME.test(name)) throw new Error(`line ${line}: bad metric name ${name}`);
      let family = families.get(name);
      if (family && family !== current) throw new Error(`line ${line}: ${name} is not contiguous`);
      if (!family) {
        family = { name, type: 'untyped', samples: [] };
        families.set(name, family);
      }
      current = family;
      if (keyword === 'TYPE') {
        if (!TYPES.has(rest as MetricType)) throw new Error(`line ${line}: unknown type ${rest}`);
        if (family.samples.length) throw new Error(`line ${line}: TYPE of ${name} after its samples`);
        family.type = rest as MetricType;
      } else {
        if (family.help !== undefined) throw new Error(`line ${line}: HELP of ${name} twice`);
        family.help = rest.replace(/\\(\\|n)/g, (_m, c) => (c === 'n' ? '\n' : '\\'));
      }
      return;
    }
    const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(raw);
    if (!nameMatch) throw new Error(`line ${line}: no metric name in ${raw}`);
    const name = nameMatch[0];
    let rest = raw.slice(name.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, line));
    const parts = rest.split(' ');
    if (parts[0] !== '' || parts.length < 2 || parts.length > 3 || parts[1] === '') throw new Error(`line ${line}: expected " value [timestamp]" in ${raw}`);
    const value = parseValue(parts[1], line);
    if (parts[2] !== undefined && !/^-?\d+$/.test(parts[2])) throw new Error(`line ${line}: bad timestamp ${parts[2]}`);
    const family = current && SUFFIXES[current.type].some((suffix) => current!.name + suffix === name) ? current : undefined;
    if (!family) throw new Error(`line ${line}: sample ${name} outside its family (TYPE must come first)`);
    for (const labelName of Object.keys(labels)) if (!LABEL_NAME.test(labelName)) throw new Error(`line ${line}: bad label ${labelName}`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (series.has(key)) throw new Error(`line ${line}: series ${key} twice`);
    series.add(key);
    family.samples.push({ name, labels, value });
  });
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return families;
}

// Buckets ascend by le, counts never fall, the +Inf bucket equals _count, and _sum is present.
function checkHistogram(family: Family): void {
  const groups = new Map<string, { buckets: Sample[]; count?: number; sum?: number }>();
  for (const sample of family.samples) {
    const { le, ...rest } = sample.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const group = groups.get(key) ?? { buckets: [] };
    groups.set(key, group);
    if (sample.name.endsWith('_bucket')) {
      if (le === undefined) throw new Error(`${family.name}: a bucket without le`);
      group.buckets.push(sample);
    } else if (sample.name.endsWith('_count')) group.count = sample.value;
    else group.sum = sample.value;
  }
  for (const [key, group] of groups) {
    const bounds = group.buckets.map((bucket) => parseValue(bucket.labels.le, 0));
    if (bounds.at(-1) !== Infinity) throw new Error(`${family.name}${key}: no +Inf bucket`);
    for (let i = 1; i < bounds.length; i++) {
      if (!(bounds[i] > bounds[i - 1])) throw new Error(`${family.name}${key}: buckets not ascending`);
      if (group.buckets[i].value < group.buckets[i - 1].value) throw new Error(`${family.name}${key}: bucket counts fall`);
    }
    if (group.count !== group.buckets.at(-1)!.value) throw new Error(`${family.name}${key}: _count differs from the +Inf bucket`);
    if (group.sum === undefined) throw new Error(`${family.name}${key}: no _sum`);
  }
}

// The value of the one sample named `name` whose labels are exactly `labels`; 0 when the series
// does not exist yet (a labelled counter appears at its first increment).
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const wanted = JSON.stringify(Object.entries(labels).sort());
  for (const family of families.values()) {
    for (const sample of family.samples) {
      if (sample.name === name && JSON.stringify(Object.entries(sample.labels).sort()) === wanted) return sample.value;
    }
  }
  return 0;
}
