import { FieldError } from '../../../common/config/env.ts';

/**
 * How a port's protocol is decided without looking at its bytes: the Service's `appProtocol`
 * and port name, read exactly as Istio reads them; a default list of ports known to carry
 * server-speaks-first protocols; and two pod annotations that override both. Whatever stays
 * 'detect' is decided on the first bytes (first-bytes.ts). docs/protocol-detection.md has the
 * tables.
 *
 * Sources (Istio's documentation and the code behind it):
 *   - "Protocol Selection", https://istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection/
 *     (name: <protocol>[-<suffix>], or appProtocol: <protocol>; appProtocol takes precedence).
 *   - istio/istio pkg/config/kube/conversion.go, ConvertProtocol: appProtocol replaces the
 *     name when set; the Kubernetes-defined values kubernetes.io/h2c, /ws, /wss (appProtocol
 *     only); a "grpc-web" prefix checked before the '-' split; the part before the first '-'
 *     parsed case-insensitively; unknown -> sniffed, except on the well-known ports -> TCP.
 *   - istio/istio pkg/config/protocol/instance.go, Parse: tcp, udp, grpc, grpc-web, http,
 *     http_proxy, http2, https, tls, mongo, redis, mysql.
 *   - "Application Requirements" § Server First Protocols,
 *     https://istio.io/latest/docs/ops/deployment/application-requirements/#server-first-protocols
 *     (25 SMTP, 53 DNS, 3306 MySQL, 27017 MongoDB "automatically assumed to be TCP").
 */

/**
 * - 'http': plaintext HTTP (the HTTP layer tells HTTP/1.1 from the h2c preface itself).
 * - 'h2c': plaintext HTTP/2 with prior knowledge.
 * - 'grpc': gRPC, i.e. HTTP/2 (prior knowledge in plaintext).
 * - 'tls': the app's own TLS: passed on untouched (SNI still read for metrics and egress).
 * - 'tcp': opaque bytes, no detection; the client is expected to speak first (mesh mTLS on a
 *   PERMISSIVE port is still told from plaintext by its first bytes).
 * - 'server-first': opaque bytes, and never wait for the client's bytes at all, for anything:
 *   the server speaks first, so a wait would stall every connection for the whole deadline.
 * - 'detect': nothing declared: decide on the first bytes, with the bounded wait.
 */
export type PortProtocolDecision = 'http' | 'h2c' | 'grpc' | 'tls' | 'tcp' | 'server-first' | 'detect';

export const PORT_PROTOCOL_DECISIONS: readonly PortProtocolDecision[] = ['http', 'h2c', 'grpc', 'tls', 'tcp', 'server-first', 'detect'];

export interface ServicePortLike {
  /** The Service port's name (a DNS label); absent or "" when unnamed. */
  name?: string;
  /**
   * The Service port's appProtocol. Kubernetes refuses an empty one, so "" is read as unset
   * (Istio's pointer test would read it as an unknown protocol; same result unless the name
   * says something).
   */
  appProtocol?: string;
  port: number;
}

/**
 * Server-speaks-first ports: detection is skipped on them by default (the sidecar never waits
 * for a client's first bytes there). Istio's own four come first (Application Requirements
 * § Server First Protocols; pkg/config/kube/conversion.go wellKnownPorts) — DNS and MongoDB
 * are in fact client-first, but Istio skips sniffing on them and so does meshlet, for the same
 * behavior on the same Service. The others are protocols whose server sends a greeting before
 * the client says anything, on their IANA ports:
 *   21 FTP (RFC 959 §5.4: the server's 220 reply on connect), 110 POP3 (RFC 1939 §4:
 *   greeting), 143 IMAP (RFC 9051 §7.1: greeting), 587 SMTP submission (RFC 6409, SMTP's
 *   220 greeting; Linkerd's default opaque ports list it with 25 and 3306, linkerd.io
 *   "TCP Proxying and Protocol Detection"), 4222 NATS (docs.nats.io Client Protocol: INFO is
 *   "sent to client after initial TCP/IP connection").
 * Client-first protocols (Postgres, Redis, Memcached, Kafka) need no entry: their first
 * bytes rule out HTTP and TLS at once, so detection ends without waiting.
 */
export const SERVER_FIRST_PORTS: ReadonlySet<number> = new Set<number>([
  25, // SMTP (Istio)
  53, // DNS (Istio)
  3306, // MySQL (Istio)
  27017, // MongoDB (Istio)
  21, // FTP
  110, // POP3
  143, // IMAP
  587, // SMTP submission (Linkerd's default list)
  4222, // NATS client port
]);

/** Istio's Parse (pkg/config/protocol/instance.go), mapped to what the sidecar does with it. */
const ISTIO_PROTOCOLS: ReadonlyMap<string, PortProtocolDecision> = new Map<string, PortProtocolDecision>([
  ['http', 'http'],
  // Istio: a generic outbound HTTP proxy port (absolute-form and CONNECT): HTTP all the same.
  ['http_proxy', 'http'],
  ['http2', 'h2c'],
  ['grpc', 'grpc'],
  // Istio's sidecar never decrypts these: https is "the same as tls".
  ['https', 'tls'],
  ['tls', 'tls'],
  ['tcp', 'tcp'],
  // Istio: Mongo and Redis filters are experimental and off by default: opaque TCP.
  ['mongo', 'tcp'],
  ['redis', 'tcp'],
  // Istio: opaque TCP too; MySQL is server-first, so meshlet must not even wait for bytes.
  ['mysql', 'server-first'],
  // A TCP Service port named udp (Istio: "UDP", which its sidecar does not intercept):
  // meshlet intercepts TCP only, and passes these bytes on without looking.
  ['udp', 'tcp'],
]);

const GRPC_WEB = 'grpc-web';

/**
 * The protocol a Service port declares, Istio's way. `serverFirstPorts` replaces the default
 * list (the `meshlet.io/server-first-ports` annotation, when the pod has one).
 *
 * Two deliberate mappings of Istio's answers onto the sidecar's: "grpc-web" is 'http' (Istio
 * says "same as http2" for its upstream codec, but gRPC-Web callers are browsers speaking
 * HTTP/1.1 as often as HTTP/2, and it is not gRPC framing: the HTTP layer must take both), and
 * an unknown name on a server-first port is 'server-first' where Istio says TCP (both skip
 * detection; 'server-first' also tells PERMISSIVE inbound not to wait for a ClientHello).
 */
export function protocolFromServicePort(sp: ServicePortLike, serverFirstPorts: ReadonlySet<number> = SERVER_FIRST_PORTS): PortProtocolDecision {
  let name = sp.name ?? '';
  if (sp.appProtocol !== undefined && sp.appProtocol !== '') {
    name = sp.appProtocol;
    // Kubernetes-defined appProtocol values (KEP-3726), exact and case-sensitive as in Istio;
    // a port name cannot hold a '/', so only appProtocol can carry them.
    switch (name) {
      case 'kubernetes.io/h2c':
        return 'h2c';
      case 'kubernetes.io/ws':
        return 'http';
      case 'kubernetes.io/wss':
        return 'tls';
    }
  }
  // Istio checks the "grpc-web" prefix before splitting on '-' (it contains one), and as a
  // prefix: "grpc-web-ui" and even "grpc-webfoo" are gRPC-Web there. Kept as is.
  if (name.length >= GRPC_WEB.length && name.slice(0, GRPC_WEB.length).toLowerCase() === GRPC_WEB) return 'http';
  const dash = name.indexOf('-');
  const prefix = (dash >= 0 ? name.slice(0, dash) : name).toLowerCase();
  const known = ISTIO_PROTOCOLS.get(prefix);
  if (known !== undefined) return known;
  return serverFirstPorts.has(sp.port) ? 'server-first' : 'detect';
}

// ---- pod annotations (parsers only; the injector wires them) ----

export const SERVER_FIRST_PORTS_ANNOTATION = 'meshlet.io/server-first-ports';
export const PORT_PROTOCOLS_ANNOTATION = 'meshlet.io/port-protocols';

/**
 * `meshlet.io/server-first-ports: "25,3306,4222"`: the pod's server-first ports, replacing
 * SERVER_FIRST_PORTS (like Linkerd's opaque-ports annotation replaces its default list). ""
 * (or only spaces) is allowed and means none: detect everywhere nothing else declares.
 * Spaces around entries are allowed; an empty entry, a non-number, a port outside 1-65535 or
 * a port given twice is an error. Every problem in the value is reported at once, as a
 * FieldError (common/config/env.ts) whose message names each entry.
 */
export function parseServerFirstPorts(raw: string): ReadonlySet<number> {
  const ports = new Set<number>();
  const problems: string[] = [];
  if (raw.trim() === '') return ports;
  raw.split(',').forEach((item, index) => {
    const entry = item.trim();
    const where = `entry ${index + 1}`;
    if (entry === '') {
      problems.push(`${where} is empty (a stray comma?)`);
      return;
    }
    const p = portNumber(entry);
    if (typeof p === 'string') {
      problems.push(`${where} ${JSON.stringify(entry)}: ${p}`);
      return;
    }
    if (ports.has(p)) {
      problems.push(`${where} ${JSON.stringify(entry)}: port ${p} is listed twice`);
      return;
    }
    ports.add(p);
  });
  if (problems.length > 0) throw new FieldError(`must be a comma-separated list of ports (1-65535) or "": ${problems.join('; ')}`);
  return ports;
}

/**
 * `meshlet.io/port-protocols: "6379=tcp,8443=tls,9090=grpc"`: a protocol per container port,
 * overriding the Service's name and appProtocol and the server-first list for that port.
 * Protocols are the PortProtocolDecision values ('detect' included: it forces detection on a
 * port a Service name or the default list would skip). "" is allowed (no overrides). Spaces
 * around entries, ports and protocols are allowed; protocols are lowercase, as written here.
 * Every problem is reported at once, as one FieldError.
 */
export function parsePortProtocols(raw: string): ReadonlyMap<number, PortProtocolDecision> {
  const out = new Map<number, PortProtocolDecision>();
  const problems: string[] = [];
  if (raw.trim() !== '') {
    raw.split(',').forEach((item, index) => {
      const entry = item.trim();
      const where = `entry ${index + 1}`;
      if (entry === '') {
        problems.push(`${where} is empty (a stray comma?)`);
        return;
      }
      const eq = entry.indexOf('=');
      if (eq < 0) {
        problems.push(`${where} ${JSON.stringify(entry)}: must be PORT=PROTOCOL`);
        return;
      }
      const portText = entry.slice(0, eq).trim();
      const protocol = entry.slice(eq + 1).trim();
      const p = portNumber(portText);
      const entryProblems: string[] = [];
      if (typeof p === 'string') entryProblems.push(portText === '' ? 'the port is missing' : p);
      if (!(PORT_PROTOCOL_DECISIONS as readonly string[]).includes(protocol)) {
        entryProblems.push(protocol === '' ? 'the protocol is missing' : `unknown protocol ${JSON.stringify(protocol)} (one of ${PORT_PROTOCOL_DECISIONS.join(', ')})`);
      }
      if (entryProblems.length === 0 && typeof p === 'number' && out.has(p)) entryProblems.push(`port ${p} is given twice`);
      if (entryProblems.length > 0) {
        problems.push(`${where} ${JSON.stringify(entry)}: ${entryProblems.join(', ')}`);
        return;
      }
      out.set(p as number, protocol as PortProtocolDecision);
    });
  }
  if (problems.length > 0) throw new FieldError(`must be a comma-separated list of PORT=PROTOCOL or "": ${problems.join('; ')}`);
  return out;
}

/** A port number 1-65535 written in decimal digits, or why not. */
function portNumber(text: string): number | string {
  if (!/^\d+$/.test(text)) return 'not a port number';
  const n = Number(text);
  if (n < 1 || n > 65535) return `port ${text} is outside 1-65535`;
  return n;
}
