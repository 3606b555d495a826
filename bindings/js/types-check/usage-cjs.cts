// Every export of the CommonJS typings (index.d.ts), used as a Node
// program would. `@ts-expect-error` lines must stay errors: if the types
// loosen (say decide() starts taking numbers), tsc fails on them.
import flocker = require('flocker-policy');
import type {
  Change,
  ContainerBody,
  Decision,
  DecisionErrorBody,
  ErrorKind,
  ErrorOutput,
  Explain,
  Input,
  JsonInput,
  Output,
  Request,
  Route,
  Routes,
  Server,
  SnapshotData,
} from 'flocker-policy';

const server: Server = {
  hostname: 'node1',
  address: '10.0.0.1',
  docker: 'tcp://10.0.0.1:2375',
  tags: ['ssd'],
  reserved: false,
  full: false,
  down: false,
  max_containers: 50,
  containers: 3,
  port_range: [20000, 29999],
};
const route: Route = {
  name: 'auth.1',
  service: 'auth',
  server: 'node1',
  address: '10.0.0.1',
  ports: { '80/tcp': 20001 },
  host_ports: [20001],
  env: [],
  volumes: [],
  state: 'live',
};
const routes: Routes = { containers: { 'auth.1': route }, volumes: { pgdata: 'node1' } };
const container: ContainerBody = { Image: 'nginx', Env: ['A=1'] };
const request: Request = { name: 'web.1', container, image: { Config: { Env: [] } } };
const input: Input = { ...request, inventory: [server], routes };
const data: SnapshotData = { inventory: [server], routes };

function describe(out: Output): string {
  if ('error' in out) {
    const e: ErrorOutput = out;
    const body: DecisionErrorBody = e.error;
    const kind: ErrorKind = body.kind;
    return `${kind}: ${body.message} ${body.pins?.map((p) => p.pin + p.server).join() ?? ''}`;
  }
  const d: Decision = out;
  const explain: Explain = d.explain;
  const hostPort: number | undefined = d.route?.ports['80/tcp'];
  return `${d.server.hostname} ${d.server.docker} ${d.links_env.length} ${explain.summary} ${hostPort}`;
}

const asText: JsonInput<Input> = JSON.stringify(input);
const asBytes: JsonInput<Input> = new TextEncoder().encode(asText);
describe(flocker.decide(input));
describe(flocker.decide(asBytes));
const text: string = flocker.decideJson(asText);
const info: { name: string; version: string; engine: string } = flocker.policyInfo();

const snap = new flocker.Snapshot(data);
const changes: Change[] = [
  { op: 'upsert_server', server },
  { op: 'remove_server', hostname: 'node2' },
  { op: 'save_route', route: { name: 'db.1', server: 'node1' } },
  { op: 'remove_route', name: 'db.1' },
  { op: 'delete_route', name: 'db.1' },
  { op: 'claim_volume', volume: 'pg', server: 'node1' },
  { op: 'release_volume', volume: 'pg' },
];
const applied: number = snap.apply(changes) + snap.apply(changes[0]);
describe(snap.decide(request));
const again: string = snap.decideJson('{"container": {"Image": "nginx"}}');
const state: Required<SnapshotData> = snap.toJSON();
snap.free();

try {
  new flocker.Snapshot('{"inventory": 7}');
} catch (e) {
  if (e instanceof flocker.FlockerError) {
    const k: ErrorKind = e.kind;
    const m: string = e.error.message + e.message;
    void [k, m];
  }
}

// @ts-expect-error: a number is not an input
flocker.decide(42);
// @ts-expect-error: a change needs a known op
snap.apply({ op: 'reboot' });
// @ts-expect-error: a server needs an address
const noAddress: Server = { hostname: 'x' };
// @ts-expect-error: the CommonJS entry has no init (only the web build loads asynchronously)
flocker.init();

void [text, info, applied, again, state, noAddress];
