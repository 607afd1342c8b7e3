// Issue 11 item 13, second half: pod annotations that weaken what the mesh enforces
// (skip ports, permissive/opaque ports, a weaker default policy, a policy ConfigMap that
// /validate never sees) are the pod author's to set, unless the operator forbids them with
// MESHLET_INJECTOR_POD_OVERRIDES. Then such a pod is refused at admission, with the annotation
// and what it would open named, over the real /mutate (HTTPS) and in `meshlet inject`.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startInjector, type RunningInjector } from '../../../src/cli/commands/injector.ts';
import { readInjectorConfig } from '../../../src/control-plane/injector/config.ts';
import type { Pod } from '../../../src/control-plane/injector/patch/index.ts';
import { runCli } from '../../unit/injector/cli-support.ts';
import { loadPod } from '../../unit/injector/golden-support.ts';
import { podReview, post, servingCertificate } from '../injector/webhook-fixture.ts';

let dir: string;
let ca: string;
/** By MESHLET_INJECTOR_POD_OVERRIDES value (undefined: the default). */
const injectors = new Map<string | undefined, RunningInjector>();
const SETTINGS = [undefined, 'none', 'meshlet.io/opaque-ports,meshlet.io/skip-outbound-cidrs'] as const;

beforeAll(async () => {
  const { cert, key } = await servingCertificate();
  ca = cert;
  dir = await mkdtemp(join(tmpdir(), 'meshlet-overrides-'));
  await writeFile(join(dir, 'tls.crt'), cert);
  await writeFile(join(dir, 'tls.key'), key);
  for (const overrides of SETTINGS) {
    const env: Record<string, string> = { MESHLET_INJECTOR_TLS_CERT: join(dir, 'tls.crt'), MESHLET_INJECTOR_TLS_KEY: join(dir, 'tls.key'), MESHLET_INJECTOR_HOST: '127.0.0.1', MESHLET_INJECTOR_PORT: '0', MESHLET_INJECTOR_ADMIN_PORT: 'off' };
    if (overrides !== undefined) env.MESHLET_INJECTOR_POD_OVERRIDES = overrides;
    injectors.set(overrides, await startInjector(readInjectorConfig(env)));
  }
});

afterAll(async () => {
  for (const i of injectors.values()) await i.close();
  await rm(dir, { recursive: true, force: true });
});

function podWith(annotations: Record<string, string>): Pod {
  const pod = loadPod('plain');
  pod.metadata = { ...pod.metadata, annotations };
  return pod;
}

async function mutate(overrides: (typeof SETTINGS)[number], pod: Pod): Promise<{ allowed: boolean; patched: boolean; message?: string; audit?: string }> {
  const { status, json } = await post(injectors.get(overrides)!.port, ca, JSON.stringify(podReview(pod)));
  expect(status).toBe(200);
  const r = json.response;
  return { allowed: r.allowed, patched: r.patch !== undefined, ...(r.status?.message ? { message: r.status.message } : {}), audit: r.auditAnnotations?.injection };
}

const forbidden = (annotation: string, value: string, opens: string, setting = 'none') =>
  `annotation ${annotation}=${JSON.stringify(value)} is not allowed on pods in this mesh (MESHLET_INJECTOR_POD_OVERRIDES=${setting}): ${opens}; remove it, or ask the mesh operator`;

const WEAKENING: [string, string, string][] = [
  ['meshlet.io/skip-inbound-ports', '8080', 'callers would reach app port(s) 8080 without mTLS or policy'],
  ['meshlet.io/skip-outbound-ports', '5432,6379', 'the app would reach destination port(s) 5432, 6379 without the sidecar'],
  ['meshlet.io/skip-outbound-cidrs', '169.254.169.254/32,fd00:ec2::254/128', 'the app would reach 169.254.169.254/32, fd00:ec2::254/128 without the sidecar'],
  ['meshlet.io/permissive-ports', '8080', 'port(s) 8080 would accept plaintext callers without an identity'],
  ['meshlet.io/opaque-ports', '8080', 'policy on port(s) 8080 would match callers only, never methods or paths'],
  ['meshlet.io/default-policy', 'audit', 'the default policy "audit" is weaker than the mesh default "deny"'],
  ['meshlet.io/default-policy', 'all-authenticated', 'the default policy "all-authenticated" is weaker than the mesh default "deny"'],
  [
    'meshlet.io/policy-configmap',
    'my-own-policy',
    'the sidecar would take its policy from ConfigMap my-own-policy instead of meshlet-policy, which /validate never checks unless it is labelled meshlet.io/policy: "true"',
  ],
];

describe('weakening-annotation-overrides: MESHLET_INJECTOR_POD_OVERRIDES over POST /mutate', () => {
  it.each(WEAKENING)('default (all): %s=%s is injected as before', async (annotation, value) => {
    expect(await mutate(undefined, podWith({ [annotation]: value }))).toMatchObject({ allowed: true, patched: true, audit: 'injected' });
  });

  it.each(WEAKENING)('none: %s=%s is refused (400), naming the annotation and what it opens', async (annotation, value, opens) => {
    expect(await mutate('none', podWith({ [annotation]: value }))).toEqual({
      allowed: false,
      patched: false,
      message: `meshlet: INJECTOR_OVERRIDE_FORBIDDEN: ${forbidden(annotation, value, opens)}`,
      audit: 'refused: INJECTOR_OVERRIDE_FORBIDDEN',
    });
  });

  it('none: every forbidden annotation of a pod is named at once', async () => {
    const r = await mutate('none', podWith({ 'meshlet.io/skip-inbound-ports': '8080', 'meshlet.io/default-policy': 'audit', 'meshlet.io/log-level': 'debug' }));
    expect(r.message).toBe(
      'meshlet: INJECTOR_OVERRIDE_FORBIDDEN: ' +
        [forbidden('meshlet.io/skip-inbound-ports', '8080', WEAKENING[0]![2]), forbidden('meshlet.io/default-policy', 'audit', WEAKENING[5]![2])].join('; '),
    );
  });

  it.each([
    ['a default policy as strict as the mesh default', { 'meshlet.io/default-policy': 'deny' }],
    ['the default policy ConfigMap named explicitly', { 'meshlet.io/policy-configmap': 'meshlet-policy' }],
    ['empty skip lists', { 'meshlet.io/skip-inbound-ports': '', 'meshlet.io/skip-outbound-cidrs': ' ' }],
    ['annotations that weaken nothing', { 'meshlet.io/log-level': 'debug', 'meshlet.io/proxy-memory-limit': '512Mi', 'meshlet.io/native-sidecar': 'false' }],
  ])('none: a pod with %s is injected', async (_what, annotations) => {
    expect(await mutate('none', podWith(annotations))).toMatchObject({ allowed: true, patched: true });
  });

  it('none: an opted-out pod is still left alone (not refused): opting out is not an override', async () => {
    expect(await mutate('none', podWith({ 'meshlet.io/inject': 'disabled', 'meshlet.io/skip-inbound-ports': '8080' }))).toMatchObject({ allowed: true, patched: false, audit: 'skipped: opted-out' });
  });

  it('a list: the listed annotations pass, the others are refused', async () => {
    const setting = 'meshlet.io/opaque-ports,meshlet.io/skip-outbound-cidrs';
    expect(await mutate(setting, podWith({ 'meshlet.io/opaque-ports': '8080', 'meshlet.io/skip-outbound-cidrs': '10.0.0.0/8' }))).toMatchObject({ allowed: true, patched: true });
    const r = await mutate(setting, podWith({ 'meshlet.io/opaque-ports': '8080', 'meshlet.io/permissive-ports': '8080' }));
    expect(r.message).toBe(`meshlet: INJECTOR_OVERRIDE_FORBIDDEN: ${forbidden('meshlet.io/permissive-ports', '8080', WEAKENING[3]![2], setting)}`);
  });
});

describe('weakening-annotation-overrides: `meshlet inject` reads the same setting', () => {
  const saved = process.env.MESHLET_INJECTOR_POD_OVERRIDES;
  afterEach(() => {
    if (saved === undefined) delete process.env.MESHLET_INJECTOR_POD_OVERRIDES;
    else process.env.MESHLET_INJECTOR_POD_OVERRIDES = saved;
  });

  it('with none: exits 1 with the webhook message and prints nothing; without it: injects', async () => {
    const pod = podWith({ 'meshlet.io/permissive-ports': '8080' });
    const manifest = stringify({ apiVersion: 'v1', kind: 'Pod', ...pod });
    delete process.env.MESHLET_INJECTOR_POD_OVERRIDES;
    expect((await runCli(['inject', '-'], manifest)).code).toBe(0);

    process.env.MESHLET_INJECTOR_POD_OVERRIDES = 'none';
    const { code, stdout, stderr } = await runCli(['inject', '-'], manifest);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    const webhook = await mutate('none', pod);
    expect(stderr).toBe(`meshlet inject: ${webhook.message!.slice('meshlet: '.length)}\n`);
  });

  it('a bad setting is refused before any manifest is read (exit 1, the variable named)', async () => {
    process.env.MESHLET_INJECTOR_POD_OVERRIDES = 'no';
    const { code, stderr } = await runCli(['inject', '-'], 'kind: Pod\n');
    expect(code).toBe(1);
    expect(stderr).toContain('MESHLET_INJECTOR_POD_OVERRIDES="no": must be all, none, or a comma-separated list of meshlet.io/skip-inbound-ports');
  });
});
