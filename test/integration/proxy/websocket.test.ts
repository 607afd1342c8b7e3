import * as net from 'node:net';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IDS, waitFor } from './support/mesh-fixture.ts';
import { ORDERS_AUTHORITY, startMeshPair, type MeshPair } from './support/mesh-pair.ts';
import { rawExchange } from './support/raw-exchange.ts';
import { attachWebSocketEcho, type UpgradeSeen } from './support/websocket-echo.ts';

/**
 * The app's WebSocket client connects to ws://orders.shop.svc.cluster.local:8080 and its TCP
 * connection is redirected to the outbound sidecar — here by an undici dispatcher whose
 * connector dials the outbound listener, which is what the iptables REDIRECT does in a pod.
 */
function redirectedToOutbound(port: number): Agent {
  return new Agent({
    connect: (_opts, cb) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => cb(null, s));
      s.once('error', (err) => cb(err, null));
    },
  });
}

function open(url: string, dispatcher: Agent): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    // Node 24's global WebSocket (undici's) takes a dispatcher as a non-standard option.
    const ws = new WebSocket(url, { dispatcher } as unknown as string[]);
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error(`WebSocket ${url} failed to open`));
  });
}

function next(ws: WebSocket): Promise<string | ArrayBuffer> {
  return new Promise((resolve) => {
    ws.addEventListener('message', (e: MessageEvent) => resolve(e.data as string | ArrayBuffer), { once: true });
  });
}

describe('WebSocket / HTTP Upgrade through the mesh', () => {
  let mesh: MeshPair;
  let seen: UpgradeSeen[];
  let dispatcher: Agent;
  beforeAll(async () => {
    mesh = await startMeshPair();
    seen = attachWebSocketEcho(mesh.app);
    dispatcher = redirectedToOutbound(mesh.outboundPort);
  });
  afterAll(async () => {
    await dispatcher.close();
    await mesh.close();
  });

  it('messages echo both ways through outbound -> mTLS -> inbound -> app, and the app learns the verified caller', async () => {
    const ws = await open(`ws://${ORDERS_AUTHORITY}/chat?room=1`, dispatcher);
    try {
      for (const text of ['hello', 'x'.repeat(300), 'héllo wörld']) {
        const reply = next(ws);
        ws.send(text);
        expect(await reply).toBe(text);
      }
      ws.binaryType = 'arraybuffer';
      const bytes = new Uint8Array(70_000).map((_, i) => i % 251);
      const reply = next(ws);
      ws.send(bytes);
      expect(new Uint8Array((await reply) as ArrayBuffer)).toEqual(bytes);
    } finally {
      ws.close();
    }
    expect(seen.at(-1)!.url).toBe('/chat?room=1');
    expect(seen.at(-1)!.headers['x-meshlet-peer-identity']).toBe(IDS.frontend);
    expect(seen.at(-1)!.headers.upgrade).toBe('websocket');
  });

  it('a closed WebSocket closes the tunnel on both sidecars', async () => {
    const ws = await open(`ws://${ORDERS_AUTHORITY}/chat`, dispatcher);
    const closed = new Promise<number>((resolve) => (ws.onclose = (e) => resolve(e.code)));
    ws.close(1000);
    expect(await closed).toBe(1000);
    // Only tunnels were opened in this suite (no pooled HTTP connections): none may be left.
    await waitFor(() => !mesh.inbound.registry.list().some((c) => c.role === 'originated' && c.remotePort === mesh.appPort), 'the app-side tunnel to close');
    await waitFor(() => !mesh.outbound.registry.list().some((c) => c.role === 'originated' && c.remotePort === mesh.inboundPort), 'the mTLS tunnel to close');
  });

  it('a denied upgrade path: 403 JSON from the inbound sidecar, never upgraded, the app never sees it', async () => {
    const before = seen.length;
    const out = await rawExchange(
      mesh.outboundPort,
      `GET /admin/socket HTTP/1.1\r\nHost: ${ORDERS_AUTHORITY}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    );
    expect(out.response).toMatch(/^HTTP\/1\.1 403 /);
    expect(out.response).toContain('x-meshlet-error: MESHLET_DENIED');
    expect(out.response).not.toContain('101 Switching');
    expect(JSON.parse(out.response.slice(out.response.indexOf('\r\n\r\n') + 4))).toMatchObject({ error: { code: 'MESHLET_DENIED', route: 'deny-/admin' } });
    expect(out.closed).toBe(true);
    expect(seen.length).toBe(before);
    expect(mesh.refused).toContainEqual({ direction: 'inbound', code: 'MESHLET_DENIED' });
  });

  it('the global WebSocket client sees a denied upgrade as a failed open', async () => {
    await expect(open(`ws://${ORDERS_AUTHORITY}/admin/socket`, dispatcher)).rejects.toThrow(/failed to open/);
  });

  it('h2c smuggling: Upgrade: h2c is refused (400), so no HTTP/2 tunnel can bypass per-request policy', async () => {
    const out = await rawExchange(
      mesh.outboundPort,
      `GET / HTTP/1.1\r\nHost: ${ORDERS_AUTHORITY}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`,
    );
    expect(out.response).toMatch(/^HTTP\/1\.1 400 /);
    expect(out.response).toContain('x-meshlet-error: MESHLET_BAD_REQUEST');
    expect(out.closed).toBe(true);
  });

  it('an upgrade the app refuses is relayed as an ordinary response and the connection closed (no raw tunnel)', async () => {
    const out = await rawExchange(mesh.outboundPort, `GET /chat HTTP/1.1\r\nHost: ${ORDERS_AUTHORITY}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`);
    expect(out.response).toMatch(/^HTTP\/1\.1 400 /);
    expect(out.response).not.toContain('x-meshlet-error');
    expect(out.closed).toBe(true);
  });
});
