/**
 * The parts of a networking.k8s.io/v1 NetworkPolicy the generator writes (kubernetes-models
 * has the full type and the schema, but it is a development dependency: the tests validate
 * every generated object with it).
 */

export interface LabelSelector {
  matchLabels?: Record<string, string>;
}

export interface IpBlock {
  cidr: string;
}

/** One peer of a rule. namespaceSelector and podSelector together: pods matching both (AND). */
export interface NetworkPolicyPeer {
  namespaceSelector?: LabelSelector;
  podSelector?: LabelSelector;
  ipBlock?: IpBlock;
}

export interface NetworkPolicyPort {
  protocol: 'TCP' | 'UDP';
  port: number;
}

/** `from`/`to` absent: every source/destination; `ports` absent: every port. */
export interface NetworkPolicyIngressRule {
  from?: NetworkPolicyPeer[];
  ports?: NetworkPolicyPort[];
}

export interface NetworkPolicyEgressRule {
  to?: NetworkPolicyPeer[];
  ports?: NetworkPolicyPort[];
}

export interface NetworkPolicy {
  apiVersion: 'networking.k8s.io/v1';
  kind: 'NetworkPolicy';
  metadata: { name: string; namespace: string; labels: Record<string, string>; annotations: Record<string, string> };
  spec: {
    podSelector: LabelSelector;
    policyTypes: ('Ingress' | 'Egress')[];
    ingress?: NetworkPolicyIngressRule[];
    egress?: NetworkPolicyEgressRule[];
  };
}

/** The label every namespace carries with its own name (set by the API server since 1.21, immutable). */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

/** Cluster DNS as kubeadm, kind, GKE, EKS and AKS deploy it: CoreDNS pods keep the kube-dns label. */
export const KUBE_DNS = { namespace: 'kube-system', podLabels: { 'k8s-app': 'kube-dns' }, port: 53 } as const;

/**
 * The identity service as deploy/identity/ renders it: the Deployment's pod label and the
 * container port of `grpc-certify` (the Service `meshlet-identity` targets it). Sidecars with
 * the default identity source (`meshlet-ca`) dial it for every SVID, and for discovery.
 */
export const IDENTITY_SERVICE = { podLabels: { 'app.kubernetes.io/name': 'meshlet-identity' }, port: 8443 } as const;

export const DEFAULT_CONTROL_PLANE_NAMESPACE = 'meshlet-system';

/** The Service in front of the API server, and the ports its endpoints listen on (kubeadm 6443; GKE, EKS, AKS 443). */
export const API_SERVER_SERVICE = { name: 'kubernetes', namespace: 'default' } as const;
export const DEFAULT_API_SERVER_PORTS: readonly number[] = [443, 6443];

/** Every address: what a rule says when the L7 policy names something NetworkPolicy cannot. */
export const ANYWHERE: readonly IpBlock[] = [{ cidr: '0.0.0.0/0' }, { cidr: '::/0' }];

/** Labels and annotations on every generated object. */
export const MANAGED_BY_LABEL = ['app.kubernetes.io/managed-by', 'meshlet'] as const;
export const SOURCE_ANNOTATION = 'meshlet.io/netpol-source';
/** Where the generated policy is wider than the L7 policy, or leaves a direction open, and why. */
export const NOTES_ANNOTATION = 'meshlet.io/netpol-notes';
