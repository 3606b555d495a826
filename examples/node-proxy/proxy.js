#!/usr/bin/env node
'use strict';
// A Docker API proxy in front of several Docker daemons, on Node's `http`
// module and the flocker-policy npm package (bindings/js): the shape of the
// 2014 flocker Node proxy, with today's engine deciding in-process.
//
//   node proxy.js --inventory servers.json [--listen 127.0.0.1:2375]
//   DOCKER_HOST=tcp://127.0.0.1:2375 docker run -d --name web.1 nginx
//
// - POST /containers/create is decided here (inventory from the file, routes
//   kept in memory, so they are lost when the proxy stops), and the rewritten
//   body goes to the chosen server.
// - Later container calls go to the server that holds the container, found
//   by name (routes), by ID (remembered from create) or by asking every server.
// - attach and exec start are HTTP upgrades: the sockets are spliced both
//   ways, and each side's end is passed on as a half-close (the CLI closes
//   its write side at once when it has no stdin, and still reads the output).
// - /_ping and /version are answered here; GET /containers/json is merged.
//   Anything else is refused (501) rather than sent somewhere arbitrary.
//
// An example, not the flocker host: no store, no pull routing, no events.

const http = require('node:http');
const fs = require('node:fs');
const { decide } = require('flocker-policy');

const MAX_BODY = 1 << 20; // create bodies are ~2 KB; anything near this is not one

function args(argv) {
  const out = { listen: '127.0.0.1:2375', inventory: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--inventory' || a === '--listen') out[a.slice(2)] = argv[++i];
    else throw new Error(`unknown argument ${a}`);
  }
  if (!out.inventory) throw new Error('usage: proxy.js --inventory FILE [--listen HOST:PORT]');
  return out;
}

/** Where a server's daemon listens, as http.request options. */
function endpoint(server) {
  const docker = server.docker || `tcp://${server.address}:2375`;
  if (docker.startsWith('unix://')) return { socketPath: docker.slice('unix://'.length) };
  const u = new URL(docker.replace(/^tcp:/, 'http:'));
  return { host: u.hostname, port: Number(u.port || 2375) };
}

// Headers that belong to one connection, not to the message (RFC 9110 7.6.1).
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

function forwardHeaders(headers, keepUpgrade) {
  const out = {};
  for (const [k, v] of Object.entries(headers)) {
    if (!HOP.has(k) || (keepUpgrade && (k === 'connection' || k === 'upgrade'))) out[k] = v;
  }
  return out;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let n = 0;
    req.on('data', (c) => {
      n += c.length;
      if (n > MAX_BODY) {
        reject(Object.assign(new Error(`body over ${MAX_BODY} bytes`), { status: 413 }));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function sendJson(res, status, value, extra = {}) {
  const body = Buffer.from(JSON.stringify(value));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length, ...extra });
  res.end(body);
}

/** One request to a server, body buffered: {status, headers, body}. */
function call(server, method, path, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ ...endpoint(server), method, path, headers: { host: 'docker', ...headers } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(30000, () => req.destroy(new Error(`${server.hostname}: no answer to ${method} ${path}`)));
    req.on('error', reject);
    req.end(body);
  });
}

// SPEC section 4's error kinds as Docker statuses. Never 404: the CLI
// answers a 404 on create by pulling the image and trying again.
const STATUS = {
  name_in_use: 409,
  conflicting_pins: 409,
  no_eligible_server: 503,
  pinned_server_unavailable: 503,
};

class Proxy {
  constructor(inventory) {
    this.inventory = inventory;
    this.byHost = new Map(inventory.map((s) => [s.hostname, s]));
    // What earlier decisions saved, in the engine's own shape.
    this.routes = { containers: {}, volumes: {} };
    this.ids = new Map(); // container ID -> hostname, from create answers
    this.execs = new Map(); // exec ID -> hostname
    this.names = new Map(); // container ID -> route name, for calls by ID
    this.autoRemove = new Set(); // names whose daemon removes them on exit
    this.apiVersion = '1.41';
    // Decisions run one at a time: two at once would both see the same free
    // ports and pick them twice.
    this.queue = Promise.resolve();
  }

  /** The lowest API version of the servers, which every one of them speaks. */
  async negotiate() {
    const versions = [];
    for (const s of this.inventory) {
      try {
        const r = await call(s, 'GET', '/version');
        if (r.status === 200) versions.push(JSON.parse(r.body).ApiVersion);
      } catch (e) {
        console.error(`node-proxy: ${s.hostname}: ${e.message}`);
      }
    }
    const num = (v) => v.split('.').map(Number);
    const valid = versions.filter((v) => typeof v === 'string' && /^\d+\.\d+$/.test(v));
    if (valid.length) {
      this.apiVersion = valid.sort((a, b) => num(a)[0] - num(b)[0] || num(a)[1] - num(b)[1])[0];
    }
  }

  /** The hostname holding container `x` (a name or an ID), or undefined. */
  async locate(x) {
    const route = this.routes.containers[x];
    if (route && route.state === 'live') return route.server;
    if (this.ids.has(x)) return this.ids.get(x);
    for (const [id, host] of this.ids) if (x.length >= 12 && id.startsWith(x)) return host;
    // Not made through this proxy (or made before it started): ask everyone.
    const found = [];
    await Promise.all(
      this.inventory.map(async (s) => {
        try {
          const r = await call(s, 'GET', `/containers/${encodeURIComponent(x)}/json`);
          if (r.status === 200) found.push(s.hostname);
        } catch {
          // A server that does not answer does not hold it as far as we know.
        }
      }),
    );
    return found.length === 1 ? found[0] : undefined;
  }

  async create(req, res, path) {
    const body = JSON.parse((await readBody(req)).toString('utf8'));
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      return sendJson(res, 400, { message: 'flocker: invalid_request: the create body must be a JSON object' });
    }
    const name = new URL(path, 'http://x').searchParams.get('name') || undefined;
    const image = await this.imageConfig(String(body.Image || ''), path);
    const input = { name, container: body, image, inventory: this.inventory, routes: this.routes };
    const out = decide(input);
    if (out.error) {
      const status = STATUS[out.error.kind] || 400;
      return sendJson(res, status, { message: `flocker: ${out.error.kind}: ${out.error.message}` });
    }
    const server = this.byHost.get(out.server.hostname);
    const rewritten = Buffer.from(JSON.stringify(out.container));
    const headers = forwardHeaders(req.headers, false);
    // The rewritten body has its own byte length (not its string length).
    headers['content-length'] = String(rewritten.length);
    const r = await call(server, 'POST', path, { headers, body: rewritten });
    if (r.status === 201) {
      const id = JSON.parse(r.body).Id;
      if (typeof id === 'string') this.ids.set(id, server.hostname);
      if (out.route) {
        this.routes.containers[out.route.name] = out.route;
        if (typeof id === 'string') this.names.set(id, out.route.name);
        for (const v of out.route.volumes || []) this.routes.volumes[v] = server.hostname;
        if (body.HostConfig && body.HostConfig.AutoRemove) this.autoRemove.add(out.route.name);
      }
      console.error(`node-proxy: ${name || id} -> ${server.hostname}: ${out.explain.summary}`);
    }
    // A 404 (image missing there) is passed on: the CLI pulls and retries,
    // and nothing was saved for this attempt.
    res.writeHead(r.status, forwardHeaders(r.headers, false));
    res.end(r.body);
  }

  /** The image's inspect from the first server that has it, or undefined. */
  async imageConfig(image, createPath) {
    if (!image) return undefined;
    const version = createPath.match(/^\/v[0-9.]+/);
    for (const s of this.inventory) {
      try {
        const r = await call(s, 'GET', `${version ? version[0] : ''}/images/${image}/json`);
        if (r.status === 200) return JSON.parse(r.body);
      } catch {
        // Try the next server.
      }
    }
    return undefined;
  }

  /** The server a request is for, by the container or exec ID in its path. */
  async target(rest) {
    let m = rest.match(/^\/containers\/([^/?]+)/);
    if (m && m[1] !== 'create' && m[1] !== 'json') return this.locate(decodeURIComponent(m[1]));
    m = rest.match(/^\/exec\/([^/?]+)/);
    if (m) return this.execs.get(m[1]);
    return undefined;
  }

  async handle(req, res) {
    const path = req.url;
    const rest = path.replace(/^\/v[0-9.]+(?=\/)/, '');
    const route = rest.split('?')[0];
    if (route === '/_ping') {
      const headers = { 'api-version': this.apiVersion, ostype: 'linux', 'cache-control': 'no-cache', 'content-type': 'text/plain' };
      res.writeHead(200, headers);
      return res.end(req.method === 'HEAD' ? undefined : 'OK');
    }
    if (route === '/version' && req.method === 'GET') {
      return sendJson(res, 200, {
        Version: 'flocker-node-proxy/0.1.0',
        ApiVersion: this.apiVersion,
        MinAPIVersion: '1.24',
        Os: 'linux',
        Arch: process.arch === 'x64' ? 'amd64' : process.arch,
        Components: this.inventory.map((s) => ({ Name: s.hostname, Version: s.docker || s.address })),
      });
    }
    if (route === '/containers/create' && req.method === 'POST') {
      const run = this.queue.then(() => this.create(req, res, path));
      this.queue = run.catch(() => {});
      return run;
    }
    if (route === '/containers/json' && req.method === 'GET') return this.list(res, path);
    const host = await this.target(rest);
    if (!host) {
      if (/^\/(containers|exec)\//.test(route)) {
        return sendJson(res, 404, { message: `No such container: ${route.split('/')[2]}` });
      }
      return sendJson(res, 501, { message: `${req.method} ${route} is not supported by the flocker node proxy` });
    }
    return this.forward(req, res, host, path, rest);
  }

  /** GET /containers/json on every server, concatenated, newest first. */
  async list(res, path) {
    const all = [];
    for (const s of this.inventory) {
      try {
        const r = await call(s, 'GET', path);
        if (r.status === 200) all.push(...JSON.parse(r.body));
      } catch (e) {
        // One server down must not hide the others' containers.
        console.error(`node-proxy: ${s.hostname}: GET ${path}: ${e.message}`);
      }
    }
    all.sort((a, b) => (b.Created || 0) - (a.Created || 0));
    sendJson(res, 200, all);
  }

  /** Streams a request to `host` and its answer back, headers at once. */
  forward(req, res, host, path, rest) {
    const server = this.byHost.get(host);
    const containerCall = rest.match(/^\/containers\/([^/?]+)(\/[a-z]+)?/);
    const up = http.request({ ...endpoint(server), method: req.method, path, headers: forwardHeaders(req.headers, false) }, (r) => {
      res.writeHead(r.statusCode, forwardHeaders(r.headers, false));
      // `docker run` sends start only once the headers of its wait are in.
      res.flushHeaders();
      const exec = req.method === 'POST' && containerCall && containerCall[2] === '/exec' && r.statusCode === 201;
      if (exec) {
        const chunks = [];
        r.on('data', (c) => chunks.push(c));
        r.on('end', () => {
          const body = Buffer.concat(chunks);
          try {
            this.execs.set(JSON.parse(body).Id, host);
          } catch {
            // Not JSON: nothing to remember; the client gets it as it is.
          }
          res.end(body);
        });
        return;
      }
      r.pipe(res);
      r.on('end', () => {
        if (!containerCall) return;
        const x = decodeURIComponent(containerCall[1]);
        const removed = req.method === 'DELETE' && !containerCall[2] && r.statusCode < 300;
        const autoRemoved = containerCall[2] === '/wait' && r.statusCode === 200 && this.isAutoRemove(x);
        if (removed || autoRemoved) this.forget(x);
      });
    });
    // The client leaving (an abandoned wait, a stopped logs -f) ends the
    // server request too, so they do not pile up on the servers.
    res.on('close', () => up.destroy());
    up.on('error', (e) => {
      if (!res.headersSent) sendJson(res, 502, { message: `${host}: ${e.message}` });
      else res.destroy();
    });
    req.pipe(up);
  }

  isAutoRemove(x) {
    const name = this.nameOf(x);
    return name !== undefined && this.autoRemove.has(name);
  }

  /** The route name of container `x` (a name or an ID made here). */
  nameOf(x) {
    if (this.routes.containers[x]) return x;
    return this.names.get(x);
  }

  /** The container is gone from its server: its ports and name are free again. */
  forget(x) {
    const name = this.nameOf(x);
    if (name !== undefined) {
      this.routes.containers[name] = { ...this.routes.containers[name], state: 'removed' };
      this.autoRemove.delete(name);
    }
    this.ids.delete(x);
  }

  /** attach and exec start: an HTTP upgrade spliced to the server's. */
  async upgrade(req, socket, head) {
    const rest = req.url.replace(/^\/v[0-9.]+(?=\/)/, '');
    const refuse = (status, message) => {
      const body = JSON.stringify({ message });
      socket.end(
        `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\n` +
          `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    };
    // exec start has a body ({"Detach": false, "Tty": false}) that the
    // server reads before it answers 101: read it off the client first, and
    // keep whatever follows it for after the upgrade.
    socket.pause();
    const length = Number(req.headers['content-length'] || 0);
    let buffered = head;
    while (buffered.length < length) {
      const chunk = await new Promise((resolve, reject) => {
        const onData = (c) => {
          socket.off('end', onEnd);
          resolve(c);
        };
        const onEnd = () => {
          socket.off('data', onData);
          reject(new Error('the client ended inside the request body'));
        };
        socket.once('data', onData);
        socket.once('end', onEnd);
        socket.resume();
      });
      socket.pause();
      buffered = Buffer.concat([buffered, chunk]);
    }
    const body = buffered.subarray(0, length);
    head = buffered.subarray(length);
    const host = await this.target(rest);
    if (!host) return refuse(404, `No such container or exec: ${rest.split('?')[0]}`);
    // A connection of its own (agent: false): the upgraded socket is ours
    // from the 101 on and must not go back to a pool.
    const up = http.request({
      ...endpoint(this.byHost.get(host)),
      method: req.method,
      path: req.url,
      headers: forwardHeaders(req.headers, true),
      agent: false,
    });
    up.on('upgrade', (r, upSocket, upHead) => {
      const lines = [`HTTP/1.1 101 ${r.statusMessage || 'UPGRADED'}`];
      for (let i = 0; i < r.rawHeaders.length; i += 2) lines.push(`${r.rawHeaders[i]}: ${r.rawHeaders[i + 1]}`);
      socket.write(lines.join('\r\n') + '\r\n\r\n');
      if (upHead.length) socket.write(upHead);
      if (head.length) upSocket.write(head);
      // pipe() ends the destination when the source ends: that end() is the
      // half-close that carries each side's EOF across, while the other
      // direction keeps flowing.
      upSocket.pipe(socket);
      socket.pipe(upSocket);
      const close = () => {
        socket.destroy();
        upSocket.destroy();
      };
      socket.on('error', close);
      upSocket.on('error', close);
      // Both directions done: nothing more can pass.
      let ended = 0;
      const done = () => {
        if (++ended === 2) close();
      };
      socket.on('end', done);
      upSocket.on('end', done);
    });
    // The server refused the upgrade (a 404, a 409 for a command that cannot
    // run): pass its answer on as a plain response, and log why.
    up.on('response', (r) => {
      const chunks = [];
      r.on('data', (c) => chunks.push(c));
      r.on('end', () => {
        const body = Buffer.concat(chunks);
        console.error(`node-proxy: ${host} refused the upgrade of ${rest}: ${r.statusCode} ${body}`);
        const lines = [`HTTP/1.1 ${r.statusCode} ${r.statusMessage}`, `content-length: ${body.length}`, 'connection: close'];
        if (r.headers['content-type']) lines.push(`content-type: ${r.headers['content-type']}`);
        socket.write(lines.join('\r\n') + '\r\n\r\n');
        socket.end(body);
      });
    });
    up.on('error', (e) => refuse(502, `${host}: ${e.message}`));
    socket.on('error', () => up.destroy());
    up.end(body);
  }
}

async function main() {
  const opts = args(process.argv.slice(2));
  const inventory = JSON.parse(fs.readFileSync(opts.inventory, 'utf8'));
  if (!Array.isArray(inventory) || inventory.length === 0) throw new Error(`${opts.inventory}: not a list of servers`);
  const proxy = new Proxy(inventory);
  await proxy.negotiate();
  const server = http.createServer((req, res) => {
    proxy.handle(req, res).catch((e) => {
      console.error(`node-proxy: ${req.method} ${req.url}: ${e.stack || e}`);
      if (!res.headersSent) sendJson(res, e.status || (e instanceof SyntaxError ? 400 : 502), { message: `flocker node proxy: ${e.message}` });
      else res.destroy();
    });
  });
  server.on('upgrade', (req, socket, head) => {
    proxy.upgrade(req, socket, head).catch((e) => {
      console.error(`node-proxy: upgrade ${req.url}: ${e.stack || e}`);
      socket.destroy();
    });
  });
  const i = opts.listen.lastIndexOf(':');
  server.listen(Number(opts.listen.slice(i + 1)), opts.listen.slice(0, i), () => {
    console.error(`node-proxy: listening on ${opts.listen} for ${inventory.length} servers (API ${proxy.apiVersion})`);
  });
}

main().catch((e) => {
  console.error(`node-proxy: ${e.message}`);
  process.exit(1);
});
