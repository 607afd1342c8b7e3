import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';

/**
 * deploy/monitoring/prometheus-rules.yaml through Prometheus' own tool: `promtool check rules` on
 * its `groups:` (the part that also works as a plain rule file, as its header says), and
 * `promtool test rules` — the alerts evaluated over synthetic series, as Prometheus would —
 * for each alert: it fires on the situation it names, with its labels and summary, and stays
 * quiet otherwise. promtool comes from test/support/build-promtool.sh (.ci/run builds it);
 * without it the tests are skipped and say why.
 */
const version = /^PROMTOOL_VERSION=(\S+)$/m.exec(readFileSync(new URL('../../support/build-promtool.sh', import.meta.url), 'utf8'))![1]!;
const promtool = process.env.MESHLET_PROMTOOL ?? join(process.env.MESHLET_CLUSTER_CACHE ?? join(homedir(), '.cache', 'meshlet-cluster'), 'bin', `promtool-${version}`);
const available = existsSync(promtool);
if (!available) console.warn(`promtool-rules: skipped: no ${promtool} (run bash test/support/build-promtool.sh; it needs Go)`);

const rule = parse(readFileSync(new URL('../../../deploy/monitoring/prometheus-rules.yaml', import.meta.url), 'utf8')) as { spec: { groups: unknown[] } };
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'meshlet-promtool-rules-'));
  await writeFile(join(dir, 'rules.yaml'), stringify({ groups: rule.spec.groups }));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function promtoolRun(...args: string[]): { code: number | null; out: string } {
  const r = spawnSync(promtool, args, { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

const POD = { namespace: 'shop', pod: 'orders-1' };

describe(`deploy/monitoring alerts (promtool ${version})`, () => {
  it.skipIf(!available)('promtool check rules accepts them', () => {
    const r = promtoolRun('check', 'rules', 'rules.yaml');
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/SUCCESS: \d+ rules found/);
  });

  it.skipIf(!available)('promtool test rules: each alert fires on what it names, with its labels and summary', async () => {
    const tests = {
      rule_files: ['rules.yaml'],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [
            { series: `meshlet_revocation_rejected_total{namespace="meshlet-system",pod="meshlet-identity-1",code="REVOCATION_LIST_INVALID"}`, values: '0 0 0 1 1 1' },
            { series: `meshlet_revocation_rejected_total{namespace="shop",pod="orders-1",code="REVOCATION_LIST_MISSING"}`, values: '0 0 0 0 0 0' },
            { series: `meshlet_policy_reloads_total{namespace="shop",pod="orders-1",result="invalid"}`, values: '0 0 1 1 1 1' },
            { series: `meshlet_policy_reloads_total{namespace="shop",pod="orders-1",result="ok"}`, values: '0 1 2 3 4 5' },
          ],
          alert_rule_test: [
            {
              eval_time: '5m',
              alertname: 'MeshletRevocationListRejected',
              exp_alerts: [
                {
                  exp_labels: { severity: 'critical', namespace: 'meshlet-system', pod: 'meshlet-identity-1', code: 'REVOCATION_LIST_INVALID' },
                  exp_annotations: { summary: 'meshlet-system/meshlet-identity-1: the revocation list was refused (REVOCATION_LIST_INVALID); the last good list stays in force' },
                },
              ],
            },
            { eval_time: '2m', alertname: 'MeshletRevocationListRejected', exp_alerts: [] },
            {
              eval_time: '5m',
              alertname: 'MeshletPolicyInvalid',
              exp_alerts: [{ exp_labels: { severity: 'warning', ...POD, result: 'invalid' }, exp_annotations: { summary: 'shop/orders-1: a policy update was invalid; the last good policy stays in force' } }],
            },
          ],
        },
        {
          // An SVID with 1 h left: critical after its `for: 5m`; one with a day left: nothing.
          interval: '1m',
          input_series: [
            { series: `meshlet_identity_cert_expiration_timestamp_seconds{namespace="shop",pod="orders-1"}`, values: '3600+60x20' },
            { series: `meshlet_identity_cert_expiration_timestamp_seconds{namespace="web",pod="frontend-1"}`, values: '86400+60x20' },
          ],
          alert_rule_test: [
            { eval_time: '3m', alertname: 'MeshletCertificateExpiringSoon', exp_alerts: [] },
            {
              eval_time: '10m',
              alertname: 'MeshletCertificateExpiringSoon',
              exp_alerts: [{ exp_labels: { severity: 'critical', ...POD }, exp_annotations: { summary: 'shop/orders-1: SVID expires in 1h 0m 0s' } }],
            },
          ],
        },
      ],
    };
    await writeFile(join(dir, 'tests.yaml'), stringify(tests));
    const r = promtoolRun('test', 'rules', 'tests.yaml');
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('SUCCESS');
  });
});
