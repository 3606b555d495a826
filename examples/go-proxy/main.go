// Command go-proxy is a small Docker API proxy that places containers with
// the flocker engine in-process (package flocker on wazero): each
// `POST /containers/create` is decided against the inventory and the
// routes this proxy saved, and the rewritten create body goes to the
// chosen server. Later calls go where their container is, by id or name;
// attach and exec upgrades pass through (Go >= 1.25's ReverseProxy keeps
// each direction open until it half-closes). Routes live in memory only.
//
//	go-proxy -inventory servers.json -listen 127.0.0.1:2375
//	docker -H tcp://127.0.0.1:2375 run -d --name web.1 nginx
//
// The first line on stdout is "listening on tcp://ADDR".
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"

	flocker "github.com/flocker/flocker/bindings/go"
)

// server is one inventory record, as the SPEC writes it, kept raw so the
// engine sees every field; hostname and docker are read for routing.
type server struct {
	raw      json.RawMessage
	hostname string
	backend  *url.URL
}

type proxy struct {
	policy  *flocker.Policy
	servers []server
	byHost  map[string]*server

	mu     sync.Mutex                 // routes, where, seq
	routes map[string]json.RawMessage // container name -> route record
	where  map[string]*container      // container id and name -> container
	seq    int
}

// container is one container this proxy created.
type container struct{ name, id, host string }

// maxBody bounds a create body read into memory.
const maxBody = 16 << 20

func main() {
	listen := flag.String("listen", "127.0.0.1:2375", "address to listen on")
	inv := flag.String("inventory", "", "JSON array of server records (SPEC section 2)")
	flag.Parse()
	if *inv == "" {
		log.Fatal("go-proxy: -inventory is required")
	}
	data, err := os.ReadFile(*inv)
	if err != nil {
		log.Fatal(err)
	}
	p, err := newProxy(context.Background(), data)
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on tcp://%s\n", ln.Addr())
	log.Fatal(http.Serve(ln, p))
}

func newProxy(ctx context.Context, inventory []byte) (*proxy, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(inventory, &raws); err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	p := &proxy{byHost: map[string]*server{}, routes: map[string]json.RawMessage{}, where: map[string]*container{}}
	for _, r := range raws {
		var s struct{ Hostname, Address, Docker string }
		if err := json.Unmarshal(r, &s); err != nil || s.Hostname == "" {
			return nil, fmt.Errorf("inventory: a record without hostname: %s", r)
		}
		if s.Docker == "" {
			s.Docker = "tcp://" + s.Address + ":2375"
		}
		u, err := url.Parse(strings.Replace(s.Docker, "tcp://", "http://", 1))
		if err != nil || u.Scheme != "http" {
			return nil, fmt.Errorf("inventory: %s: only tcp:// daemons are supported here, not %q", s.Hostname, s.Docker)
		}
		p.servers = append(p.servers, server{raw: r, hostname: s.Hostname, backend: u})
	}
	if len(p.servers) == 0 {
		return nil, fmt.Errorf("inventory: no servers")
	}
	for i := range p.servers {
		p.byHost[p.servers[i].hostname] = &p.servers[i]
	}
	var err error
	p.policy, err = flocker.New(ctx)
	return p, err
}

var (
	versionPrefix = regexp.MustCompile(`^/v[0-9]+\.[0-9]+`)
	containerPath = regexp.MustCompile(`^/containers/([^/]+)(/.*)?$`)
)

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := versionPrefix.ReplaceAllString(r.URL.Path, "")
	switch {
	case path == "/_ping":
		w.Header().Set("API-Version", "1.41")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if r.Method != http.MethodHead {
			io.WriteString(w, "OK")
		}
	case path == "/version":
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{
			"Version": "flocker-go-proxy", "ApiVersion": "1.41", "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64",
		})
	case path == "/containers/create" && r.Method == http.MethodPost:
		p.create(w, r)
	default:
		target := p.servers[0].hostname
		if m := containerPath.FindStringSubmatch(path); m != nil && m[1] != "json" {
			p.mu.Lock()
			c := p.lookup(m[1])
			p.mu.Unlock()
			if c == nil {
				dockerError(w, http.StatusNotFound, "No such container: "+m[1])
				return
			}
			target = c.host
			if r.Method == http.MethodDelete && m[2] == "" {
				p.forward(w, r, target, nil, func(resp *http.Response) error {
					if resp.StatusCode/100 == 2 {
						p.removed(m[1])
					}
					return nil
				})
				return
			}
		}
		p.forward(w, r, target, nil, nil)
	}
}

// create decides the request in-process, forwards the rewritten body to
// the chosen server and saves the route once the server created it.
func (p *proxy) create(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		dockerError(w, http.StatusBadRequest, "reading the create body: "+err.Error())
		return
	}
	q := r.URL.Query()
	// SPEC 6: every container gets a name before it is decided, so each
	// has a route. One create at a time: the next decision must see this
	// one's route (its ports, its place in its service).
	p.mu.Lock()
	defer p.mu.Unlock()
	name := strings.TrimPrefix(q.Get("name"), "/")
	if name == "" {
		p.seq++
		name = fmt.Sprintf("goproxy_%d", p.seq)
		q.Set("name", name)
	}
	input, err := p.input(r.Context(), name, body)
	if err != nil {
		dockerError(w, http.StatusBadRequest, err.Error())
		return
	}
	out, err := p.policy.Decide(r.Context(), input)
	if err != nil {
		dockerError(w, http.StatusServiceUnavailable, "flocker: "+err.Error())
		return
	}
	d, err := flocker.ParseResult(out)
	if de, ok := err.(*flocker.DecisionError); ok {
		status := http.StatusConflict
		if de.Kind == "invalid_request" || de.Kind == "invalid_name" {
			status = http.StatusBadRequest
		}
		dockerError(w, status, fmt.Sprintf("flocker %s: %s", de.Kind, de.Message))
		return
	} else if err != nil {
		dockerError(w, http.StatusBadGateway, err.Error())
		return
	}
	r.URL.RawQuery = q.Encode()
	host := d.Server.Hostname
	route, _ := json.Marshal(d.Route)
	p.forward(w, r, host, d.Container, func(resp *http.Response) error {
		if resp.StatusCode != http.StatusCreated {
			return nil
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(data))
		var created struct{ Id string }
		_ = json.Unmarshal(data, &created)
		c := &container{name: name, id: created.Id, host: host}
		p.where[name] = c
		if c.id != "" {
			p.where[c.id] = c
		}
		if d.Route != nil {
			p.routes[name] = route
		}
		log.Printf("placed %s on %s (%s)", name, host, d.Explain.Summary)
		return nil
	})
}

// input builds the SPEC input: the create body as sent, the image's
// inspect (for its exposed ports and env) when a server has it, the
// inventory and the saved routes.
func (p *proxy) input(ctx context.Context, name string, body []byte) ([]byte, error) {
	var c struct{ Image string }
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, fmt.Errorf("the create body is not JSON: %v", err)
	}
	in := map[string]any{"name": name, "container": json.RawMessage(body)}
	if img := p.inspectImage(ctx, c.Image); img != nil {
		in["image"] = img
	}
	inv := make([]json.RawMessage, len(p.servers))
	for i, s := range p.servers {
		inv[i] = s.raw
	}
	in["inventory"] = inv
	in["routes"] = map[string]any{"containers": p.routes, "volumes": map[string]string{}}
	return json.Marshal(in)
}

func (p *proxy) inspectImage(ctx context.Context, image string) json.RawMessage {
	if image == "" {
		return nil
	}
	u := *p.servers[0].backend
	u.Path = "/images/" + image + "/json"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil || resp.StatusCode != http.StatusOK || !json.Valid(data) {
		return nil
	}
	return data
}

// removed marks a removed container's route removed (its host ports are
// free again) and forgets where it was.
func (p *proxy) removed(idOrName string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.lookup(idOrName)
	if c == nil {
		return
	}
	if raw, ok := p.routes[c.name]; ok {
		var rt map[string]any
		if json.Unmarshal(raw, &rt) == nil {
			rt["state"] = "removed"
			p.routes[c.name], _ = json.Marshal(rt)
		}
	}
	delete(p.where, c.name)
	delete(p.where, c.id)
}

// lookup finds a container by name, full id or unique id prefix, as the
// Docker daemon does. Callers hold p.mu.
func (p *proxy) lookup(key string) *container {
	key = strings.TrimPrefix(key, "/")
	if c, ok := p.where[key]; ok {
		return c
	}
	var found *container
	for k, c := range p.where {
		if len(k) == 64 && strings.HasPrefix(k, key) {
			if found != nil && found != c {
				return nil
			}
			found = c
		}
	}
	return found
}

// forward proxies r to the server's daemon; body, when set, replaces the
// request body. modify sees the response before the client does.
func (p *proxy) forward(w http.ResponseWriter, r *http.Request, hostname string, body []byte, modify func(*http.Response) error) {
	s, ok := p.byHost[hostname]
	if !ok {
		dockerError(w, http.StatusBadGateway, "flocker chose "+hostname+", which is not in the inventory")
		return
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(s.backend)
			pr.Out.Host = s.backend.Host
			if body != nil {
				pr.Out.Body = io.NopCloser(bytes.NewReader(body))
				pr.Out.ContentLength = int64(len(body))
				pr.Out.Header.Set("Content-Length", fmt.Sprint(len(body)))
			}
		},
		// Logs and attach streams have no length: pass each write on.
		FlushInterval:  -1,
		ModifyResponse: modify,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			dockerError(w, http.StatusBadGateway, hostname+": "+err.Error())
		},
	}
	rp.ServeHTTP(w, r)
}

// dockerError answers as the Docker API does: {"message": "..."}.
func dockerError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"message": msg})
}
