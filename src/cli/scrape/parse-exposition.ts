import { MeshletError } from '../../common/errors/meshlet-error.ts';

/** Text that is not Prometheus text 0.0.4 / OpenMetrics: the line, and what is wrong with it. */
export class ExpositionParseError extends MeshletError {
  readonly line: number;
  constructor(line: number, message: string) {
    super('METRICS_PARSE_ERROR', `line ${line}: ${message}`);
    this.line = line;
  }
}

export interface Sample {
  /** The sample's name, e.g. meshlet_request_duration_seconds_bucket. */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Exposition {
  readonly samples: readonly Sample[];
  /** Metric family -> type from `# TYPE` lines (counter, gauge, histogram, summary, info, untyped…). */
  readonly types: ReadonlyMap<string, string>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

function parseValue(raw: string, line: number): number {
  switch (raw) {
    case 'NaN':
      return NaN;
    case '+Inf':
    case 'Inf':
      return Infinity;
    case '-Inf':
      return -Infinity;
  }
  const v = Number(raw);
  if (raw === '' || Number.isNaN(v)) throw new ExpositionParseError(line, `"${raw}" is not a sample value`);
  return v;
}

/**
 * A parser for the Prometheus text exposition format (0.0.4), which also reads OpenMetrics
 * text (`# EOF`, `_total` counters, `info` type). It is what `meshlet top` reads /metrics
 * with; strict enough to refuse garbage with the line that is wrong, so pointing the CLI at
 * something that is not a metrics endpoint gives a precise error instead of empty output.
 * Exemplars (OpenMetrics ` # {…}` suffixes) and timestamps are read and dropped.
 */
export function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i]!.replace(/\r$/, '');
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^#\s+TYPE\s+(\S+)\s+(\S+)\s*$/.exec(line);
      if (m) types.set(m[1]!, m[2]!);
      continue;
    }
    samples.push(parseSampleLine(line, lineNo));
  }
  return { samples, types };
}

function parseSampleLine(line: string, lineNo: number): Sample {
  const nameMatch = NAME.exec(line);
  if (!nameMatch) throw new ExpositionParseError(lineNo, `expected a metric name, got "${line.slice(0, 40)}"`);
  const name = nameMatch[0];
  let pos = name.length;
  const labels: Record<string, string> = {};
  if (line[pos] === '{') {
    pos++;
    for (;;) {
      while (line[pos] === ' ') pos++;
      if (line[pos] === '}') {
        pos++;
        break;
      }
      const ln = LABEL_NAME.exec(line.slice(pos));
      if (!ln) throw new ExpositionParseError(lineNo, `bad label name at column ${pos + 1}`);
      pos += ln[0].length;
      if (line[pos] !== '=' || line[pos + 1] !== '"') throw new ExpositionParseError(lineNo, `expected ="…" after label ${ln[0]}`);
      pos += 2;
      let value = '';
      for (;;) {
        const c = line[pos];
        if (c === undefined) throw new ExpositionParseError(lineNo, `unterminated value of label ${ln[0]}`);
        pos++;
        if (c === '"') break;
        if (c === '\\') {
          const e = line[pos++];
          if (e === 'n') value += '\n';
          else if (e === '\\' || e === '"') value += e;
          else throw new ExpositionParseError(lineNo, `bad escape \\${e ?? ''} in label ${ln[0]}`);
        } else value += c;
      }
      labels[ln[0]] = value;
      while (line[pos] === ' ') pos++;
      if (line[pos] === ',') pos++;
      else if (line[pos] !== '}') throw new ExpositionParseError(lineNo, `expected , or } after label ${ln[0]}`);
    }
  }
  if (line[pos] !== ' ' && line[pos] !== '\t') throw new ExpositionParseError(lineNo, `expected a space and a value after ${name}`);
  let rest = line.slice(pos).trim();
  const exemplar = rest.indexOf(' # ');
  if (exemplar !== -1) rest = rest.slice(0, exemplar);
  const [rawValue, timestamp, extra] = rest.split(/\s+/);
  if (extra !== undefined || (timestamp !== undefined && Number.isNaN(Number(timestamp)))) {
    throw new ExpositionParseError(lineNo, `unexpected text after the value of ${name}`);
  }
  return { name, labels, value: parseValue(rawValue ?? '', lineNo) };
}
