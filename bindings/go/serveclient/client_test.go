package serveclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// flockerBin is the flocker binary: $FLOCKER_BIN, else the workspace's debug build.
func flockerBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("FLOCKER_BIN")
	if bin == "" {
		var err error
		bin, err = filepath.Abs("../../../target/debug/flocker")
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no flocker binary at %s (run `cargo build -p flocker-host` or set FLOCKER_BIN): %v", bin, err)
	}
	return bin
}

const inventory = `[
 {"hostname": "node1", "address": "10.0.0.1"},
 {"hostname": "node2", "address": "10.0.0.2"},
 {"hostname": "node3", "address": "10.0.0.3"}
]`

// serve starts `flocker serve` on a free loopback port over a fresh
// embedded store seeded with three servers, and returns a client of it.
func serve(t *testing.T) *Client {
	t.Helper()
	bin := flockerBin(t)
	store := "file:" + filepath.Join(t.TempDir(), "store.redb")
	add := exec.Command(bin, "inventory", "add", "--store", store)
	add.Stdin = strings.NewReader(inventory)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("inventory add: %v: %s", err, out)
	}
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--store", store, "--engine", "native")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the listening line: %v", err)
	}
	addr := strings.TrimPrefix(strings.TrimSpace(line), "listening on ")
	if !strings.HasPrefix(addr, "http://") {
		t.Fatalf("unexpected first line %q", line)
	}
	return New(addr)
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func TestPlaceFollowsLinksAndVolumesFrom(t *testing.T) {
	c := serve(t)
	ctx := context.Background()
	web := raw(`{"Config": {"ExposedPorts": {"80/tcp": {}}}}`)
	a1, err := c.Place(ctx, Request{Name: "auth.1", Container: raw(`{"Image": "acme/auth"}`), Image: web})
	if err != nil {
		t.Fatal(err)
	}
	a2, err := c.Place(ctx, Request{Name: "auth.2", Container: raw(`{"Image": "acme/auth"}`), Image: web})
	if err != nil {
		t.Fatal(err)
	}
	if a1.Server.Hostname == a2.Server.Hostname {
		t.Errorf("auth.1 and auth.2 both on %s", a1.Server.Hostname)
	}
	if p := a1.Route.Ports["80/tcp"]; p < 20000 || p > 29999 {
		t.Errorf("auth.1 published 80/tcp on %d", p)
	}
	data, err := c.Place(ctx, Request{Name: "data.1", Container: raw(`{"Image": "busybox", "HostConfig": {"Binds": ["appdata:/data"]}}`)})
	if err != nil {
		t.Fatal(err)
	}
	app, err := c.Place(ctx, Request{
		Name:      "myapp.1",
		Container: raw(`{"Image": "acme/myapp", "HostConfig": {"Links": ["auth:auth"], "VolumesFrom": ["data.1"]}}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if app.Server.Hostname != data.Server.Hostname {
		t.Errorf("myapp.1 on %s, its volumes are on %s", app.Server.Hostname, data.Server.Hostname)
	}
	env := strings.Join(app.LinksEnv, "\n")
	for _, want := range []string{"AUTH_NAME=/myapp.1/auth", "AUTH_MEMBERS=auth.1,auth.2", "AUTH_PORT_80_TCP_ADDR=" + a2.Server.Address} {
		if !strings.Contains(env, want) {
			t.Errorf("links_env lacks %s:\n%s", want, env)
		}
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(app.Container, &body); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(body["HostConfig"]), "Links") {
		t.Errorf("Links left in the rewritten body: %s", body["HostConfig"])
	}
}

func TestErrorsAreTyped(t *testing.T) {
	c := serve(t)
	ctx := context.Background()
	req := Request{Name: "db.1", Container: raw(`{"Image": "postgres"}`)}
	first, err := c.Place(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Place(ctx, req)
	var de *DecisionError
	if !errors.As(err, &de) || de.Kind != "name_in_use" || de.Status != 422 {
		t.Fatalf("placing db.1 twice: %v", err)
	}
	again, err := c.PlaceRetry(ctx, req)
	if err != nil || again.Server.Hostname != first.Server.Hostname {
		t.Fatalf("retrying db.1's place: %v %+v, first on %s", err, again, first.Server.Hostname)
	}
	_, err = c.PlaceRetry(ctx, Request{Name: "db.1", Container: raw(`{"Image": "mysql"}`)})
	if !errors.As(err, &de) || de.Kind != "name_in_use" {
		t.Fatalf("a different request retried for db.1: %v", err)
	}
	_, err = c.Decide(ctx, Request{Name: "x.1", Container: raw(`{"Image": "x", "Env": ["VIKING_SERVER=ghost"]}`)})
	if !errors.As(err, &de) || de.Kind != "unknown_server" {
		t.Fatalf("VIKING_SERVER=ghost: %v", err)
	}
	_, err = c.Place(ctx, Request{Name: "bad name!", Container: raw(`{"Image": "x"}`)})
	if !errors.As(err, &de) || de.Kind != "invalid_name" {
		t.Fatalf("bad name: %v", err)
	}
}

func TestDecideSavesNothingAndHealthAndMetrics(t *testing.T) {
	c := serve(t)
	ctx := context.Background()
	d, err := c.Decide(ctx, Request{Name: "web.1", Container: raw(`{"Image": "nginx"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if d.Server.Hostname != "node1" {
		t.Errorf("an empty cluster's first choice is node1, got %s", d.Server.Hostname)
	}
	h, err := c.Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.Status != "ok" || h.Servers != 3 || h.Routes != 0 {
		t.Errorf("health after a decide: %+v", h)
	}
	if _, err := c.Place(ctx, Request{Name: "web.1", Container: raw(`{"Image": "nginx"}`)}); err != nil {
		t.Fatal(err)
	}
	m, err := c.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`flocker_decisions_total{endpoint="decide",outcome="decision"} 1`,
		`flocker_decisions_total{endpoint="place",outcome="decision"} 1`,
		`flocker_decision_seconds_bucket{endpoint="place",le="+Inf"} 1`,
		`flocker_place_saved_total 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, m)
		}
	}
}
