// Issue 11 item 13, "injection can be escaped": iptables never redirects the proxy's uid (2020),
// or the sidecar's own connections would loop back into it. An app container running as 2020
// (set on the container, or inherited from the pod's securityContext) was injected silently,
// and its traffic skipped the sidecar. A privileged container, or one adding NET_ADMIN, can
// rewrite the pod's rules outright. The injector now refuses such pods, over the real /mutate
// (HTTPS, AdmissionReview) and in `meshlet inject`, with a message naming the container and
// the field.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startInjector, type RunningInjector } from '../../../src/cli/commands/injector.ts';
import { readInjectorConfig } from '../../../src/control-plane/injector/config.ts';
import type { Pod } from '../../../src/control-plane/injector/patch/index.ts';
import { runCli } from '../../unit/injector/cli-support.ts';
import { loadPod } from '../../unit/injector/golden-support.ts';
import { podReview, post, servingCertificate } from '../injector/webhook-fixture.ts';

const UID_WHY = "the meshlet proxy's uid, whose connections iptables never redirects: the container's traffic would bypass the sidecar";

let injector: RunningInjector;
let ca: string;
let dir: string;

beforeAll(async () => {
  const { cert, key } = await servingCertificate();
  ca = cert;
  dir = await mkdtemp(join(tmpdir(), 'meshlet-escape-'));
  await writeFile(join(dir, 'tls.crt'), cert);
  await writeFile(join(dir, 'tls.key'), key);
  injector = await startInjector(
    readInjectorConfig({ MESHLET_INJECTOR_TLS_CERT: join(dir, 'tls.crt'), MESHLET_INJECTOR_TLS_KEY: join(dir, 'tls.key'), MESHLET_INJECTOR_HOST: '127.0.0.1', MESHLET_INJECTOR_PORT: '0', MESHLET_INJECTOR_ADMIN_PORT: '0' }),
  );
});

afterAll(async () => {
  await injector?.close();
  await rm(dir, { recursive: true, force: true });
});

/** The plain fixture pod with its app container's (and optionally the pod's) securityContext set. */
function podWith(containerSc: Record<string, unknown> | undefined, podSc?: Record<string, unknown>): Pod {
  const pod = loadPod('plain');
  if (containerSc) pod.spec.containers[0]!.securityContext = containerSc;
  if (podSc) pod.spec.securityContext = podSc;
  return pod;
}

async function mutate(pod: Pod): Promise<{ allowed: boolean; patched: boolean; message: string | undefined; code: number | undefined; audit: string | undefined }> {
  const { status, json } = await post(injector.port, ca, JSON.stringify(podReview(pod)));
  expect(status).toBe(200);
  const r = json.response;
  return { allowed: r.allowed, patched: r.patch !== undefined, message: r.status?.message, code: r.status?.code, audit: r.auditAnnotations?.injection };
}

async function refusedCount(): Promise<number> {
  const metrics = await (await fetch(`http://127.0.0.1:${injector.adminPort}/metrics`)).text();
  return Number(/meshlet_injector_admission_requests_total\{result="refused"\} (\d+)/.exec(metrics)?.[1] ?? 0);
}

describe('injection-escape-proxy-uid: POST /mutate refuses containers that would leave interception', () => {
  it("a container with runAsUser 2020 is denied (400), naming the container and the field, counted as refused", async () => {
    const before = await refusedCount();
    const r = await mutate(podWith({ runAsUser: 2020 }));
    expect(r).toEqual({
      allowed: false,
      patched: false,
      code: 400,
      message: `meshlet: INJECTOR_INTERCEPTION_ESCAPE: container app: spec.containers[0].securityContext.runAsUser is 2020, ${UID_WHY}; run it as another uid`,
      audit: 'refused: INJECTOR_INTERCEPTION_ESCAPE',
    });
    expect(await refusedCount()).toBe(before + 1);
  });

  it('a pod-level runAsUser 2020 is denied for every container that inherits it, not for one that sets its own uid', async () => {
    const pod = podWith(undefined, { runAsUser: 2020, runAsNonRoot: true });
    pod.spec.containers.push({ name: 'worker', image: 'registry.example/worker:1', securityContext: { runAsUser: 1000 } });
    pod.spec.containers.push({ name: 'cache', image: 'registry.example/cache:1' });
    const r = await mutate(pod);
    expect(r.allowed).toBe(false);
    expect(r.message).toBe(
      'meshlet: INJECTOR_INTERCEPTION_ESCAPE: ' +
        [
          `container app: runs as uid 2020 from spec.securityContext.runAsUser (pod level), ${UID_WHY}; set another runAsUser on the pod or on the container`,
          `container cache: runs as uid 2020 from spec.securityContext.runAsUser (pod level), ${UID_WHY}; set another runAsUser on the pod or on the container`,
        ].join('; '),
    );
  });

  it("the pod's own init containers too (in native-sidecar mode they run after the proxy, intercepted)", async () => {
    const pod = loadPod('plain');
    pod.spec.initContainers = [{ name: 'migrate', image: 'registry.example/migrate:1', securityContext: { runAsUser: 2020 } }];
    const r = await mutate(pod);
    expect(r.allowed).toBe(false);
    expect(r.message).toBe(`meshlet: INJECTOR_INTERCEPTION_ESCAPE: container migrate: spec.initContainers[0].securityContext.runAsUser is 2020, ${UID_WHY}; run it as another uid`);
  });

  it.each([
    [{ privileged: true }, 'spec.containers[0].securityContext.privileged is true'],
    [{ capabilities: { add: ['NET_ADMIN'] } }, 'spec.containers[0].securityContext.capabilities.add has NET_ADMIN'],
    [{ capabilities: { add: ['CAP_NET_ADMIN'] } }, 'spec.containers[0].securityContext.capabilities.add has CAP_NET_ADMIN'],
    [{ capabilities: { add: ['all'] } }, 'spec.containers[0].securityContext.capabilities.add has all'],
  ])('a container that could rewrite the rules is denied: %j', async (sc, field) => {
    const r = await mutate(podWith(sc));
    expect(r.allowed).toBe(false);
    expect(r.message).toBe(`meshlet: INJECTOR_INTERCEPTION_ESCAPE: container app: ${field}: it could rewrite the pod's iptables rules and bypass the sidecar`);
  });

  it.each([
    ['another uid', podWith({ runAsUser: 2021, capabilities: { add: ['NET_BIND_SERVICE'], drop: ['ALL'] } })],
    ['no uid at all (the image decides; see the documented limit)', podWith(undefined)],
    ['a pod-level 2020 overridden by the only container', podWith({ runAsUser: 1000 }, { runAsUser: 2020 })],
    ['a hardened pod', loadPod('restrictive-security-context')],
  ])('is injected with %s', async (_what, pod) => {
    const r = await mutate(pod);
    expect(r).toMatchObject({ allowed: true, patched: true, audit: 'injected' });
  });
});

describe('injection-escape-proxy-uid: `meshlet inject` refuses the same pods with the same message', () => {
  it('exits 1, prints nothing on stdout, and says what /mutate says', async () => {
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'orders', namespace: 'shop' },
      spec: {
        selector: { matchLabels: { app: 'orders' } },
        template: { metadata: { labels: { app: 'orders' } }, spec: { containers: [{ name: 'app', image: 'registry.example/app:1.0', securityContext: { runAsUser: 2020 } }] } },
      },
    };
    const { code, stdout, stderr } = await runCli(['inject', '-'], stringify(deployment));
    expect(code).toBe(1);
    expect(stdout).toBe('');
    const webhook = await mutate(deployment.spec.template as unknown as Pod);
    expect(webhook.message).toMatch(/^meshlet: INJECTOR_INTERCEPTION_ESCAPE: /);
    expect(stderr).toBe(`meshlet inject: ${webhook.message!.slice('meshlet: '.length)}\n`);
  });
});
