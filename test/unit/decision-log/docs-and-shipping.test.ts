import type * as http from 'node:http';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { ConfigMap } from 'kubernetes-models/v1';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/common/log/logger.ts';
import { LogLimiter } from '../../../src/common/log/log-limiter.ts';
import { PROXY_CONTAINER } from '../../../src/control-plane/injector/patch/pod-layout.ts';
import { readHttp1Head } from '../../../src/data-plane/proxy/pipeline/request-head.ts';
import type { AuthorizationDecision } from '../../../src/data-plane/proxy/request-authorizer.ts';
import { DECISION_LOG_EVENT, DECISION_LOG_MODES, DecisionLog } from '../../../src/data-plane/sidecar/decision-log.ts';
import { SIDECAR_ENV } from '../../../src/data-plane/sidecar/sidecar-env.ts';

/**
 * docs/decision-log.md is the contract a SIEM is built on, and deploy/logging/fluent-bit.yaml
 * the example that ships it: the documented settings and fields must be the ones the code
 * writes, the examples real lines, and the Fluent Bit pipeline must keep exactly the decision
 * lines of a real sidecar's log.
 */
const read = (p: string) => readFileSync(new URL(`../../../${p}`, import.meta.url), 'utf8');
const doc = read('docs/decision-log.md');

function section(title: string): string {
  const start = doc.indexOf(`\n## ${title}\n`);
  expect(start, title).toBeGreaterThan(0);
  const end = doc.indexOf('\n## ', start + 1);
  return doc.slice(start, end === -1 ? undefined : end);
}

/** Rows of the markdown tables in `text`: cells, trimmed. */
function rows(text: string): string[][] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('| ') && !/^\|[-| ]+\|$/.test(l))
    .map((l) => l.slice(1, -1).split(/(?<!\\)\|/).map((c) => c.trim()));
}

/** Every line a sidecar's decision log writes, one of each kind, with everything present that can be. */
function realLines(): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const logger = createLogger({ name: 'sidecar', base: { pod: 'orders-1', namespace: 'shop' }, destination: stream });
  const limiter = new LogLimiter({ onSuppressed: () => undefined });
  const log = new DecisionLog(logger, { mode: 'all', allowSample: 1, limiter, server: () => 'spiffe://cluster.local/ns/shop/sa/orders', policyHash: () => 'ab'.repeat(32) });
  const head = readHttp1Head({ rawHeaders: ['Host', 'orders', 'traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'], method: 'GET', url: '/orders/1', httpVersionMinor: 1 } as unknown as http.IncomingMessage, 100);
  const allow = { decision: 'allow', route: 'r', reason: 'caller is authorized by route "r"', code: 'route-allowed' } as AuthorizationDecision;
  log.decided('inbound', head, { peer: 'spiffe://cluster.local/ns/web/sa/frontend', port: 8080, method: 'GET', path: '/orders/1' }, allow);
  log.pathRefused('inbound', head, null, 8080, '/a%2Fb', 'encoded slash');
  log.connectionDecided('inbound', 'spiffe://cluster.local/ns/web/sa/frontend', 5432, allow);
  // An outbound line (the client side of the policy) adds `destination`.
  log.decided('outbound', head, { peer: 'spiffe://cluster.local/ns/shop/sa/orders', port: 80, method: 'GET', path: '/x' }, allow, { server: null, destination: 'api.example.com:80' });
  return lines;
}

describe('docs/decision-log.md', () => {
  it('documents each setting with the default the code applies', () => {
    // The first table's rows (the modes table below repeats MESHLET_DECISION_LOG as a header).
    const table = new Map<string, string>();
    for (const r of rows(section('Settings'))) if (!table.has(r[0]!)) table.set(r[0]!, r[1]!);
    expect(table.get('`MESHLET_DECISION_LOG`')).toBe('`' + SIDECAR_ENV.decisionLog.default + '`');
    expect(table.get('`MESHLET_DECISION_LOG_ALLOW_SAMPLE`')).toBe('`' + SIDECAR_ENV.decisionLogAllowSample.default + '`');
    expect(table.get('`MESHLET_LOG_LIMIT_RATE`, `MESHLET_LOG_LIMIT_BURST`')).toBe(`\`${SIDECAR_ENV.logLimitRate.default}\`, \`${SIDECAR_ENV.logLimitBurst.default}\``);
    // The modes table: one row per mode, no other.
    const modes = rows(section('Settings')).filter((r) => /^`(off|deny|all)`/.test(r[0]!)).map((r) => /^`(\w+)`/.exec(r[0]!)![1]);
    expect(modes).toEqual([...DECISION_LOG_MODES]);
  });

  it('the field table names exactly the fields the log writes', () => {
    const documented = new Set(rows(section('Fields')).slice(1).flatMap((r) => [...r[0]!.matchAll(/`(\w+)`/g)].map((m) => m[1]!)));
    const written = new Set(realLines().flatMap((l) => Object.keys(l)));
    expect([...written].sort()).toEqual([...documented].sort());
  });

  it('every example is a JSON line of documented fields, in the order the logger writes them', () => {
    const examples = [...doc.matchAll(/^ *```json\n *(.+)\n *```/gm)].map((m) => JSON.parse(m[1]!.trim()) as Record<string, unknown>);
    const decisions = examples.filter((e) => e.event === DECISION_LOG_EVENT);
    expect(decisions.map((e) => e.decision)).toEqual(['allow', 'deny', 'refused', 'allow']);
    expect(decisions.map((e) => e.protocol)).toEqual(['http1', 'h2', 'http1', 'tcp']);
    const [request, refused, tcp] = realLines();
    for (const e of decisions) {
      // The real line of the same kind: same keys (less the trace of a line without one), same order.
      const real = e.protocol === 'tcp' ? tcp! : e.decision === 'refused' ? refused! : request!;
      const keys = Object.keys(e);
      expect(keys).toEqual(Object.keys(real).filter((k) => keys.includes(k)));
      expect(Object.keys(real).filter((k) => !keys.includes(k)).every((k) => k === 'traceId' || k === 'spanId'), JSON.stringify(e)).toBe(true);
      expect(String(e.time)).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    }
    expect(examples.find((e) => e.event === 'log_suppressed')).toMatchObject({ byEvent: { authz_decision: 2961 }, linesPerSecond: Number(SIDECAR_ENV.logLimitRate.default), burst: Number(SIDECAR_ENV.logLimitBurst.default) });
  });
});

describe('deploy/logging/fluent-bit.yaml (the SIEM shipping example)', () => {
  const docs = parseAllDocuments(read('deploy/logging/fluent-bit.yaml'));
  const cm = docs[0]!.toJS() as { kind: string; data: Record<string, string> };
  const config = parseYaml(cm.data['fluent-bit.yaml']!) as {
    parsers: { name: string; format: string; time_key: string; time_format: string }[];
    pipeline: {
      inputs: { name: string; path: string; tag: string; 'multiline.parser': string }[];
      filters: { name: string; match: string; key_name?: string; parser?: string; regex?: string }[];
      outputs: { name: string; match: string }[];
    };
  };

  it('is one valid ConfigMap holding a Fluent Bit YAML configuration', () => {
    expect(docs).toHaveLength(1);
    expect(docs[0]!.errors).toEqual([]);
    expect(cm.kind).toBe('ConfigMap');
    expect(() => new ConfigMap(cm as never).validate()).not.toThrow();
    expect(Object.keys(config).sort()).toEqual(['parsers', 'pipeline', 'service']);
    // Every stage's `match` covers the tail input's tag.
    const tag = config.pipeline.inputs[0]!.tag.replace(/\*$/, 'var.log.containers.x.log');
    for (const stage of [...config.pipeline.filters, ...config.pipeline.outputs]) expect(tag.startsWith(stage.match.replace(/\*$/, '')), stage.name).toBe(true);
    expect(config.pipeline.filters.find((f) => f.name === 'parser')?.parser).toBe(config.parsers[0]!.name);
  });

  it("tails the sidecar container's log files only", () => {
    const input = config.pipeline.inputs[0]!;
    expect(input.name).toBe('tail');
    const glob = new RegExp(`^${input.path.split('*').map((p) => p.replace(/[.]/g, '\\.')).join('.*')}$`);
    const id = 'a'.repeat(64);
    expect(glob.test(`/var/log/containers/orders-7d4b9c-x2x5q_shop_${PROXY_CONTAINER}-${id}.log`)).toBe(true);
    expect(glob.test(`/var/log/containers/orders-7d4b9c-x2x5q_shop_orders-${id}.log`)).toBe(false);
    expect(glob.test(`/var/log/containers/orders-7d4b9c-x2x5q_shop_meshlet-init-${id}.log`)).toBe(false);
    expect(input['multiline.parser']).toBe('cri, docker');
  });

  it('keeps the decision lines (and the suppression counts) of a real sidecar log, with their own time, and drops the rest', () => {
    const decisionLines = realLines().map((l) => JSON.stringify(l));
    const other = [
      JSON.stringify({ level: 'info', time: '2026-01-05T10:00:00.000Z', name: 'sidecar', event: 'policy_reloaded', msg: 'policy loaded' }),
      JSON.stringify({ level: 'warn', time: '2026-01-05T10:00:01.000Z', name: 'sidecar', event: 'log_suppressed', suppressed: 3, byEvent: { authz_decision: 3 }, msg: '3 log lines suppressed' }),
      'meshlet sidecar: ready (admin :15020, outbound :15001, inbound 8080->:15100)',
    ];
    // As containerd writes them: "<time> <stream> <P|F> <line>", read by the cri parser into `log`.
    const file = [...decisionLines, ...other].map((l) => `2026-01-05T10:00:00.123456789Z stderr F ${l}`);
    const cri = /^(?<time>[^ ]+) (?<stream>stdout|stderr) (?<logtag>[^ ]*) (?<log>.*)$/;
    const grep = config.pipeline.filters.find((f) => f.name === 'grep')!;
    const [key, pattern] = grep.regex!.split(/ (.+)/);
    const keep = new RegExp(pattern!);
    const parser = config.parsers[0]!;
    const timeFormat = new RegExp(`^${parser.time_format.replace(/%Y/g, '\\d{4}').replace(/%[mdHMS]/g, '\\d{2}').replace(/%L/g, '\\d+')}$`);
    const shipped = file
      .map((raw) => cri.exec(raw)!.groups!.log!)
      .flatMap((log) => {
        try {
          return [JSON.parse(log) as Record<string, unknown>];
        } catch {
          return []; // not JSON: the parser filter leaves it unparsed, and grep finds no `event`
        }
      })
      .filter((record) => typeof record[key!] === 'string' && keep.test(record[key!] as string));
    expect(shipped.map((r) => r.event)).toEqual([...decisionLines.map(() => DECISION_LOG_EVENT), 'log_suppressed']);
    for (const r of shipped) expect(String(r[parser.time_key]), String(r.time)).toMatch(timeFormat);
    expect(config.pipeline.outputs.length).toBeGreaterThan(0);
  });
});
