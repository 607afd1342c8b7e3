// Issue 14 item 7 (part): `meshlet inject` in a real process honours the label opt-out the
// webhook's objectSelector honours, and warns on stderr about what it can see will break.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';

const BIN = fileURLToPath(new URL('../../../bin/meshlet.js', import.meta.url));
const WEBHOOK = fileURLToPath(new URL('../../../deploy/injector/mutating-webhook.yaml', import.meta.url));

function meshlet(argv: string[], stdin: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...argv], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
    child.stdin!.end(stdin);
  });
}

const LABELLED = `# kept as written
apiVersion: apps/v1
kind: Deployment
metadata:
  name: legacy
  namespace: shop
spec:
  selector: {matchLabels: {app: legacy}}
  template:
    metadata:
      labels: {app: legacy, meshlet.io/inject: disabled}
    spec:
      containers:
        - name: app
          image: legacy:1
          ports: [{containerPort: 8080}]
          readinessProbe:
            grpc: {port: 8080}
---
apiVersion: v1
kind: Pod
metadata:
  name: bare
  labels: {meshlet.io/inject: disabled}
spec:
  containers: [{name: app, image: bare:1}]
`;

describe('meshlet inject, label opt-out and warnings (real process)', () => {
  it('the label this honours is the one the webhook objectSelector excludes', () => {
    const webhooks = (parse(readFileSync(WEBHOOK, 'utf8')) as { webhooks: { objectSelector: unknown }[] }).webhooks;
    for (const w of webhooks) expect(w.objectSelector).toEqual({ matchExpressions: [{ key: 'meshlet.io/inject', operator: 'NotIn', values: ['disabled'] }] });
  });

  it('a pod template labelled meshlet.io/inject: disabled passes through unchanged, with a note on stderr', async () => {
    const r = await meshlet(['inject', '-'], LABELLED);
    expect(r.code).toBe(0);
    // Printed as written (comments too); yaml only re-spaces flow collections.
    expect(parseAllDocuments(r.stdout).map((d) => d.toJS())).toEqual(parseAllDocuments(LABELLED).map((d) => d.toJS()));
    expect(r.stdout).toContain('# kept as written');
    expect(r.stdout).not.toContain('meshlet-proxy');
    expect(r.stderr).toBe(
      "meshlet inject: Deployment/legacy: skipped (label meshlet.io/inject=disabled on the pod template: the webhook's objectSelector never sends such pods to the injector)\n" +
        "meshlet inject: Pod/bare: skipped (label meshlet.io/inject=disabled on the pod template: the webhook's objectSelector never sends such pods to the injector)\n",
    );
  });

  it('a label on the workload but not on its template is injected, with a warning saying where the label belongs', async () => {
    const input = LABELLED.replace('labels: {app: legacy, meshlet.io/inject: disabled}', 'labels: {app: legacy}').replace('  name: legacy\n', '  name: legacy\n  labels: {meshlet.io/inject: disabled}\n');
    const r = await meshlet(['inject', '-'], input);
    expect(r.code).toBe(0);
    const [deployment] = parseAllDocuments(r.stdout).map((d) => d.toJS());
    expect(deployment.spec.template.spec.initContainers.map((c: { name: string }) => c.name)).toEqual(['meshlet-init', 'meshlet-proxy']);
    expect(r.stderr).toContain('meshlet inject: Deployment/legacy: label meshlet.io/inject=disabled is on the Deployment, not on its pod template: the webhook sees only the pods\' labels and injects them; move it to spec.template.metadata.labels\n');
    // The grpc probe is moved now, not warned about.
    expect(deployment.spec.template.spec.containers[0].readinessProbe).toEqual({ httpGet: { path: '/app-health/app/readiness', port: 15020, scheme: 'HTTP' } });
    expect(r.stderr).toContain('meshlet inject: Deployment/legacy: injected\n');
  });

  it('warns on stderr about probes it cannot move to the admin port', async () => {
    const pod = `apiVersion: v1
kind: Pod
metadata: {name: probes, namespace: shop}
spec:
  initContainers:
    - name: shipper
      image: shipper:1
      restartPolicy: Always
      livenessProbe: {tcpSocket: {port: 2020}}
  containers:
    - name: app
      image: app:1
      ports: [{containerPort: 8080}]
      livenessProbe: {httpGet: {host: status.example.com, path: /, port: 80}}
      readinessProbe: {httpGet: {path: /ready, port: 15020}}
      startupProbe: {tcpSocket: {port: 10254}}
`;
    const r = await meshlet(['inject', '-'], pod);
    expect(r.code).toBe(0);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toEqual([
      "meshlet inject: Pod/probes: container app livenessProbe.httpGet has host status.example.com: not rewritten, kubelet calls that host directly; if it is a meshed pod, its STRICT sidecar refuses kubelet's plaintext probe",
      'meshlet inject: Pod/probes: container app readinessProbe.httpGet is on port 15020, which the meshlet sidecar binds: not rewritten, the probe would test the sidecar, not the app; probe the app\'s own port',
      "meshlet inject: Pod/probes: init container shipper livenessProbe.tcpSocket on port 2020 is not rewritten (only the probes of spec.containers are): iptables intercepts kubelet's probe and it fails; list the port in meshlet.io/skip-inbound-ports or use an exec probe",
      'meshlet inject: Pod/probes: injected',
    ]);
    const injected = parse(r.stdout);
    // The tcpSocket probe on the undeclared port 10254 was moved.
    expect(injected.spec.containers[0].startupProbe).toEqual({ httpGet: { path: '/app-health/app/startup', port: 15020, scheme: 'HTTP' } });
  });
});
