// Issue 14 item 5: httpGet, grpc and tcpSocket probes on every intercepted port (meshed or
// undeclared) move to the admin port; skipped ports, exec and host probes stay.
import { describe, expect, it } from 'vitest';
import { applyJsonPatch, DEFAULT_INJECTION_SETTINGS, injectPod, PodRefusedError, type Pod } from '../../../src/control-plane/injector/patch/index.ts';
import { readSidecarConfig } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { ConfigError } from '../../../src/common/config/env.ts';

type AnyProbe = Record<string, unknown>;
const TIMING = { initialDelaySeconds: 4, periodSeconds: 7, timeoutSeconds: 3, successThreshold: 1, failureThreshold: 6, terminationGracePeriodSeconds: 30 };

/** A pod whose container `app` declares 8080 (meshed), 9100 (skipped by annotation); 7777 is undeclared. */
function podWith(probe: AnyProbe, extra: { skip?: string } = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', namespace: 'shop', annotations: { 'meshlet.io/skip-inbound-ports': extra.skip ?? '9100' } },
    spec: {
      containers: [
        {
          name: 'app',
          image: 'app:1',
          ports: [
            { name: 'http', containerPort: 8080 },
            { name: 'metrics', containerPort: 9100 },
          ],
          livenessProbe: { ...probe, ...TIMING },
        },
      ],
    },
  } as Pod;
}

function inject(pod: Pod) {
  const r = injectPod(pod, 'shop', DEFAULT_INJECTION_SETTINGS);
  if (r.outcome !== 'injected') throw new Error(`not injected: ${r.message}`);
  const patched = applyJsonPatch(pod, r.patch) as Pod;
  const proxy = patched.spec.initContainers!.find((c) => c.name === 'meshlet-proxy')!;
  const env = Object.fromEntries((proxy.env as { name: string; value?: string }[]).map((e) => [e.name, e.value]));
  // What the injector writes is what the sidecar reads.
  const sidecar = readSidecarConfig({ MESHLET_NAMESPACE: 'shop', MESHLET_SERVICE_ACCOUNT: 'sa', MESHLET_APP_PROBES: env.MESHLET_APP_PROBES! });
  return { liveness: patched.spec.containers[0]!.livenessProbe as AnyProbe, appProbes: JSON.parse(env.MESHLET_APP_PROBES!) as Record<string, unknown>, sidecarProbes: sidecar.appProbes, warnings: r.warnings };
}

const REWRITTEN = { httpGet: { path: '/app-health/app/liveness', port: 15020, scheme: 'HTTP' }, ...TIMING };

const kinds: { kind: string; probe: (port: number | string) => AnyProbe; original: (port: number) => unknown }[] = [
  { kind: 'httpGet', probe: (port) => ({ httpGet: { path: '/healthz', port } }), original: (port) => ({ port, path: '/healthz', scheme: 'HTTP', timeoutSeconds: 3 }) },
  { kind: 'grpc', probe: (port) => ({ grpc: { port, service: 'orders' } }), original: (port) => ({ kind: 'grpc', port, service: 'orders', timeoutSeconds: 3 }) },
  { kind: 'tcpSocket', probe: (port) => ({ tcpSocket: { port } }), original: (port) => ({ kind: 'tcp', port, timeoutSeconds: 3 }) },
];

describe('probe rewrite: every probe kind × port kind', () => {
  for (const k of kinds) {
    for (const [portKind, port] of [
      ['meshed', 8080],
      ['undeclared', 7777],
    ] as const) {
      it(`${k.kind} on a ${portKind} port moves to /app-health, timing fields kept, original in MESHLET_APP_PROBES`, () => {
        const r = inject(podWith(k.probe(port)));
        expect(r.liveness).toEqual(REWRITTEN);
        expect(r.appProbes).toEqual({ 'app/liveness': k.original(port) });
        expect(r.sidecarProbes).toEqual({ 'app/liveness': k.original(port) });
        expect(r.warnings).toEqual([]);
      });
    }
    it(`${k.kind} on a skipped port stays as it is (kubelet reaches the app directly)`, () => {
      const r = inject(podWith(k.probe(9100)));
      expect(r.liveness).toEqual({ ...k.probe(9100), ...TIMING });
      expect(r.appProbes).toEqual({});
      expect(r.warnings).toEqual([]);
    });
    it(`${k.kind} on an undeclared port listed in skip-inbound-ports stays as it is`, () => {
      const r = inject(podWith(k.probe(6000), { skip: '6000' }));
      expect(r.liveness).toEqual({ ...k.probe(6000), ...TIMING });
      expect(r.appProbes).toEqual({});
    });
  }

  it('named ports are resolved against the container (httpGet and tcpSocket; grpc ports are numbers)', () => {
    expect(inject(podWith({ httpGet: { path: '/', port: 'http' } })).appProbes).toEqual({ 'app/liveness': { port: 8080, path: '/', scheme: 'HTTP', timeoutSeconds: 3 } });
    expect(inject(podWith({ tcpSocket: { port: 'http' } })).appProbes).toEqual({ 'app/liveness': { kind: 'tcp', port: 8080, timeoutSeconds: 3 } });
    // A named skipped port stays too.
    expect(inject(podWith({ tcpSocket: { port: 'metrics' } })).appProbes).toEqual({});
    // A numeric string is a number.
    expect(inject(podWith({ tcpSocket: { port: '7777' } })).appProbes).toEqual({ 'app/liveness': { kind: 'tcp', port: 7777, timeoutSeconds: 3 } });
  });

  it('a named port the container does not declare is refused, for tcpSocket as for httpGet', () => {
    for (const probe of [{ httpGet: { path: '/', port: 'health' } }, { tcpSocket: { port: 'health' } }]) {
      const err = (() => {
        try {
          injectPod(podWith(probe), 'shop', DEFAULT_INJECTION_SETTINGS);
        } catch (e) {
          return e as PodRefusedError;
        }
        return undefined;
      })();
      expect(err).toBeInstanceOf(PodRefusedError);
      expect(err!.code).toBe('INJECTOR_PROBE_PORT_UNKNOWN');
      expect(err!.message).toContain(`.port "health" names no port of the container`);
    }
  });

  it('a grpc probe without a service, and a probe without timeoutSeconds, write neither', () => {
    const pod = podWith({ grpc: { port: 8080 } });
    delete (pod.spec.containers[0]!.livenessProbe as AnyProbe).timeoutSeconds;
    expect(inject(pod).appProbes).toEqual({ 'app/liveness': { kind: 'grpc', port: 8080 } });
  });

  it('an HTTPS httpGet keeps its scheme and headers for the sidecar; the rewritten probe is plain HTTP', () => {
    const r = inject(podWith({ httpGet: { path: '/h', port: 7777, scheme: 'HTTPS', httpHeaders: [{ name: 'X-A', value: 'b' }] } }));
    expect(r.liveness).toEqual(REWRITTEN);
    expect(r.appProbes).toEqual({ 'app/liveness': { port: 7777, path: '/h', scheme: 'HTTPS', headers: [{ name: 'X-A', value: 'b' }], timeoutSeconds: 3 } });
  });

  it('exec probes stay, without a warning', () => {
    const r = inject(podWith({ exec: { command: ['/bin/true'] } }));
    expect(r.liveness).toEqual({ exec: { command: ['/bin/true'] }, ...TIMING });
    expect(r.warnings).toEqual([]);
  });

  it('httpGet and tcpSocket with host stay, with a warning', () => {
    for (const [handler, probe] of [
      ['httpGet', { httpGet: { host: 'status.example.com', path: '/', port: 80 } }],
      ['tcpSocket', { tcpSocket: { host: 'db.example.com', port: 5432 } }],
    ] as const) {
      const r = inject(podWith(probe));
      expect(r.liveness).toEqual({ ...probe, ...TIMING });
      expect(r.appProbes).toEqual({});
      expect(r.warnings).toEqual([expect.stringContaining(`container app livenessProbe.${handler} has host`)]);
    }
  });

  it("a probe on one of the sidecar's ports stays, with a warning", () => {
    const r = inject(podWith({ httpGet: { path: '/ready', port: 15020 } }));
    expect(r.liveness).toEqual({ httpGet: { path: '/ready', port: 15020 }, ...TIMING });
    expect(r.warnings).toEqual([expect.stringContaining('on port 15020, which the meshlet sidecar binds')]);
  });

  it("the pod's own native sidecars' probes on intercepted ports are not rewritten, with a warning", () => {
    const pod = podWith({ exec: { command: ['/bin/true'] } });
    pod.spec.initContainers = [
      { name: 'log-shipper', image: 'l:1', restartPolicy: 'Always', readinessProbe: { httpGet: { path: '/', port: 2020 } } },
      { name: 'skipped', image: 'l:1', restartPolicy: 'Always', readinessProbe: { tcpSocket: { port: 9100 } } },
      { name: 'migrate', image: 'm:1' },
    ];
    const r = inject(pod);
    expect(r.warnings).toEqual([expect.stringMatching(/^init container log-shipper readinessProbe.httpGet on port 2020 is not rewritten/)]);
  });

  it('old MESHLET_APP_PROBES values (no kind) still read as http; bad kinds and fields are refused', () => {
    const base = { MESHLET_NAMESPACE: 'shop', MESHLET_SERVICE_ACCOUNT: 'orders' };
    expect(readSidecarConfig({ ...base, MESHLET_APP_PROBES: '{"web/liveness":{"port":8080,"path":"/h","scheme":"HTTP"}}' }).appProbes).toEqual({ 'web/liveness': { port: 8080, path: '/h', scheme: 'HTTP' } });
    for (const bad of [
      '{"web/liveness":{"kind":"udp","port":53}}',
      '{"web/liveness":{"kind":"grpc","port":0}}',
      '{"web/liveness":{"kind":"grpc","port":9090,"service":7}}',
      '{"web/liveness":{"kind":"tcp","port":9090,"timeoutSeconds":0}}',
      '{"web/liveness":{"kind":"http","port":9090}}',
      '{"web/liveness":null}',
    ]) {
      expect(() => readSidecarConfig({ ...base, MESHLET_APP_PROBES: bad }), bad).toThrow(ConfigError);
    }
  });
});
