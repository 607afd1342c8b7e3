/**
 * The meshlet authorization policy language (apiVersion policy.meshlet.io/v1alpha1,
 * kind AuthorizationPolicy), as the parser hands it to the compiler. docs/policy.md is the
 * user-facing description; the JSON schema in policy-schema.ts is the machine one.
 */

export const POLICY_API_VERSION = 'policy.meshlet.io/v1alpha1';
export const POLICY_KIND = 'AuthorizationPolicy';

/** How a port is spoken to: a policy server's ports and the sidecar's inbound ports (MESHLET_INBOUND_PORTS) alike. */
export const PORT_PROTOCOLS = ['http', 'grpc', 'tcp'] as const;
export type PortProtocol = (typeof PORT_PROTOCOLS)[number];

/**
 * What applies when no route matches (per server) or when no policy exists (mesh level). The
 * one list of names: the policy schema, MESHLET_DEFAULT_POLICY and the meshlet.io/default-policy
 * annotation all take these.
 */
export const DEFAULT_POLICIES = ['deny', 'all-authenticated', 'audit'] as const;
export type DefaultPolicy = (typeof DEFAULT_POLICIES)[number];

/** `audit` turns every denial of a server into an allow that records "would deny" (a dry run). */
export type EnforcementMode = 'enforce' | 'audit';

/**
 * How a server's routes compare request paths (docs/policy.md "Path matching modes"):
 * - `exact` (default): byte for byte after normalization; `/Admin` is not `/admin`, and an
 *   exact or pattern route does not match the same path with a trailing `/`;
 * - `case-insensitive-trailing-slash`: ASCII letters compare without case and one trailing
 *   `/` is ignored, on both sides, for apps whose router does the same (Express defaults,
 *   ASP.NET Core; Spring MVC before 6 for the trailing slash). What the app receives is
 *   unchanged: only the comparison is.
 */
export type PathMatching = 'exact' | 'case-insensitive-trailing-slash';
export const PATH_MATCHING_MODES: readonly PathMatching[] = ['exact', 'case-insensitive-trailing-slash'];

export type Caller =
  | { spiffeId: string }
  | { namespace: string; trustDomain?: string }
  | { trustDomain: string }
  | { anyAuthenticated: true }
  | { unauthenticated: true };

export type PathMatch = { exact: string } | { prefix: string } | { pattern: string };

export interface Route {
  name: string;
  /** Restricts the route to one declared port; absent = every declared port of the server. */
  port?: number;
  /** Uppercase HTTP methods; absent = any method. A route listing GET also matches HEAD (the app runs GET for it). */
  methods?: string[];
  path?: PathMatch;
  /** gRPC service (fully qualified) and optional method; compiled to the HTTP/2 path /service/method. */
  grpc?: { service: string; method?: string };
  /** Who may call. An empty list is an explicit "nobody". */
  callers: Caller[];
}

export interface ServerPort {
  port: number;
  protocol: PortProtocol;
  name?: string;
}

export interface Server {
  name: string;
  /** Which workload this server is: by ServiceAccount, by labels, or both (all must match). */
  selector: { serviceAccount?: string; matchLabels?: Record<string, string> };
  default?: DefaultPolicy;
  mode?: EnforcementMode;
  /** Default `exact`. */
  pathMatching?: PathMatching;
  ports: ServerPort[];
  routes: Route[];
}

/**
 * Where a client may call (the client side of the policy, issue 16): exactly one of
 * - a meshed workload by identity: `spiffeId`, every ServiceAccount of a `namespace` (optional
 *   `trustDomain`, default the mesh's), any identity of a `trustDomain`, or `anyAuthenticated`
 *   (any meshed destination);
 * - a Kubernetes Service: `service` (its name) with optional `namespace` (default: the client's
 *   own), as discovery resolves it — meshed or not;
 * - outside the mesh (egress): `host` (a DNS name, or `*.suffix`), matched against the name the
 *   app used (HTTP Host / :authority, TLS SNI), or `cidr` (IPv4 or IPv6), matched against the
 *   address dialled.
 */
export type DestinationTarget =
  | { spiffeId: string }
  | { namespace: string; trustDomain?: string }
  | { trustDomain: string }
  | { anyAuthenticated: true }
  | { service: string; namespace?: string }
  | { host: string }
  | { cidr: string };

/** One allowed destination: a name (unique in the document; in denials, metrics, the decision log), what it matches and, optionally, which ports (absent = any). */
export type ClientDestination = DestinationTarget & { name: string; ports?: number[] };

/**
 * The client side of a workload: which destinations its outbound sidecar lets the app call.
 * `default`: `deny` (the default when absent) = only `destinations`; `all-authenticated` = any
 * meshed destination too, while unmeshed and outside destinations still need an entry; `audit`
 * = everything allowed, what `deny` would refuse is recorded as would-deny. `mode: audit` is a
 * dry run of the whole client, as for servers.
 */
export interface Client {
  name: string;
  selector: { serviceAccount?: string; matchLabels?: Record<string, string> };
  default?: DefaultPolicy;
  mode?: EnforcementMode;
  destinations: ClientDestination[];
}

/**
 * The mesh-level client default (sidecar setting MESHLET_DEFAULT_CLIENT_POLICY), for a workload
 * no `clients` entry selects: `allow` (the default) leaves its outbound unrestricted by policy, as
 * before clients existed; the other three act as a client `default` with no destinations.
 */
export const CLIENT_MESH_DEFAULTS = ['allow', 'audit', 'all-authenticated', 'deny'] as const;
export type ClientMeshDefault = (typeof CLIENT_MESH_DEFAULTS)[number];

export interface Policy {
  apiVersion: typeof POLICY_API_VERSION;
  kind: typeof POLICY_KIND;
  metadata?: { name?: string; namespace?: string };
  /** At least one of the two lists; a document may declare servers, clients or both. */
  spec: { servers: Server[]; clients?: Client[] };
}

/** One problem found in a policy, with where it is. Warnings never make a policy invalid. */
export interface PolicyError {
  severity: 'error' | 'warning';
  /** Stable code, e.g. POLICY_SCHEMA, POLICY_DUPLICATE_ROUTE. */
  code: string;
  message: string;
  /** File name, or "<stdin>", or the ConfigMap key. */
  source?: string;
  /** Dotted YAML path inside the document, e.g. spec.servers[0].routes[2].callers[0]. */
  path: string;
  /** 1-based line and column in `source`, when known. */
  line?: number;
  col?: number;
}

export type ParseResult =
  | { ok: true; policy: Policy; warnings: PolicyError[] }
  | { ok: false; errors: PolicyError[] };

/** The identity of the workload a compiled policy is for. */
export interface WorkloadSelf {
  namespace: string;
  serviceAccount: string;
  labels?: Readonly<Record<string, string>>;
  /** Trust domain of the mesh, used by `namespace` callers without their own; default cluster.local. */
  trustDomain?: string;
}

/** Why a decision came out as it did; stable, for metrics and tests. */
export type DecisionCode =
  | 'route-allowed'
  | 'caller-not-allowed'
  | 'no-route-matched'
  | 'port-not-declared'
  | 'no-policy';

export interface Decision {
  readonly decision: 'allow' | 'deny';
  /** Name of the route that decided, or null when a default decided. */
  readonly route: string | null;
  readonly reason: string;
  readonly code: DecisionCode;
  /** `audit` when the decision is an allow that enforcement would have denied. */
  readonly mode: EnforcementMode;
  readonly wouldDeny: boolean;
}

/** The facts of one request, as the sidecar has verified them. */
export interface RequestFacts {
  /** The verified peer SPIFFE ID from the mTLS handshake (never a header); null = plaintext caller. */
  peer: string | null;
  port: number;
  protocol?: PortProtocol;
  method?: string;
  /** Already normalized by normalizePath (matching is exact on what is forwarded). */
  path?: string;
  grpc?: { service: string; method: string };
}
