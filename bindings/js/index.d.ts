// Types of flocker-policy. Field names follow SPEC sections 2 and 4.

/** A server of the inventory (SPEC section 2). */
export interface Server {
  hostname: string;
  address: string;
  /** Defaults to `tcp://<address>:2375`. */
  docker?: string;
  tags?: string[];
  reserved?: boolean;
  full?: boolean;
  /** The server's Docker daemon does not answer: it takes nothing, even when named or pinned. */
  down?: boolean;
  max_containers?: number;
  /** The load; when absent, the number of live routes on the server. */
  containers?: number;
  /** Inclusive; defaults to [20000, 29999]. */
  port_range?: [number, number];
}

/** Where an earlier decision put a named container (SPEC sections 4 and 5). */
export interface Route {
  name: string;
  service: string;
  server: string;
  address: string;
  /** Container port ("80/tcp") -> its first host port. */
  ports: Record<string, number>;
  /** Every host port bound on the server, ascending; when absent, the values of `ports`. */
  host_ports: number[];
  env: string[];
  volumes: string[];
  state: 'live' | 'removed' | string;
}

export interface Routes {
  containers?: Record<string, Partial<Route> & { server: string }>;
  /** Named volume -> hostname. */
  volumes?: Record<string, string>;
}

/** Docker's create body (`POST /containers/create`); unknown fields pass through. */
export type ContainerBody = Record<string, unknown>;

/** `{name, container, image}`: what a resident Snapshot decides. */
export interface Request {
  name?: string;
  container: ContainerBody;
  /** The response of `GET /images/{name}/json`; the engine reads its Config. */
  image?: { Config?: Record<string, unknown> } & Record<string, unknown>;
}

/** A full decision input (SPEC section 2). */
export interface Input extends Request {
  inventory: Server[];
  routes?: Routes;
}

/** The cluster half of an input. */
export interface SnapshotData {
  inventory: Server[];
  routes?: Routes;
}

export interface Explain {
  summary: string;
  /** hostname -> why it was not chosen. */
  rejected: Record<string, string>;
}

export interface Decision {
  server: { hostname: string; address: string; docker: string };
  /** The rewritten create body. */
  container: ContainerBody;
  links_env: string[];
  /** null for an unnamed container. */
  route: Route | null;
  explain: Explain;
}

export type ErrorKind =
  | 'invalid_request'
  | 'invalid_name'
  | 'name_in_use'
  | 'unknown_server'
  | 'unknown_container'
  | 'unknown_link'
  | 'conflicting_pins'
  | 'pinned_server_unavailable'
  | 'no_eligible_server';

export interface DecisionErrorBody {
  kind: ErrorKind;
  message: string;
  explain?: Explain;
  pins?: { pin: string; server: string }[];
}

export interface ErrorOutput {
  error: DecisionErrorBody;
}

export type Output = Decision | ErrorOutput;

/** A change record for Snapshot.apply (one, or an array applied all or nothing). */
export type Change =
  | { op: 'upsert_server'; server: Server }
  | { op: 'remove_server'; hostname: string }
  | { op: 'save_route'; route: Partial<Route> & { name: string; server: string } }
  | { op: 'remove_route'; name: string }
  | { op: 'delete_route'; name: string }
  | { op: 'claim_volume'; volume: string; server: string }
  | { op: 'release_volume'; volume: string };

/** Objects, JSON text or UTF-8 bytes of JSON are all accepted. */
export type JsonInput<T> = T | string | Uint8Array;

/** Decides a full input; the decision or `{error}`. Never throws for bad input. */
export function decide(input: JsonInput<Input>): Output;

/** Decides a full input; the output JSON text, byte for byte the engine's. */
export function decideJson(input: JsonInput<Input>): string;

export function policyInfo(): { name: string; version: string; engine: string };

/** Thrown by Snapshot's constructor and apply() for a snapshot or change the engine refuses. */
export class FlockerError extends Error {
  readonly kind: ErrorKind;
  readonly error: DecisionErrorBody;
}

/** Cluster state loaded once and kept current with changes. */
export class Snapshot {
  constructor(snapshot: JsonInput<SnapshotData>);
  apply(changes: JsonInput<Change | Change[]>): number;
  decide(request: JsonInput<Request>): Output;
  decideJson(request: JsonInput<Request>): string;
  toJSON(): Required<SnapshotData>;
  free(): void;
}
