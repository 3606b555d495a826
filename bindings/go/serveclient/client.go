// Package serveclient is a client of `flocker serve`, the flocker decision
// service, over HTTP (the standard library only, besides the answer types
// of package flocker). For deciding in-process, use package flocker.
//
//	c := serveclient.New("http://127.0.0.1:8640")
//	d, err := c.Place(ctx, serveclient.Request{Name: "web.1", Container: body})
//
// Place decides where a container goes and saves its route; Decide only
// decides. A decision the engine refuses comes back as a *DecisionError
// whose Kind is one of the SPEC error kinds (name_in_use,
// no_eligible_server, ...) or a host kind (store_unavailable,
// save_conflict, policy_failed, invalid_body).
package serveclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	flocker "github.com/flocker/flocker/bindings/go"
)

// Client talks to one flocker serve.
type Client struct {
	// BaseURL is the service, e.g. "http://127.0.0.1:8640".
	BaseURL string
	// HTTP is the client used; New sets one with a 30 second timeout.
	HTTP *http.Client
}

// New returns a client of the service at baseURL.
func New(baseURL string) *Client {
	return &Client{
		BaseURL: strings.TrimRight(baseURL, "/"),
		HTTP:    &http.Client{Timeout: 30 * time.Second},
	}
}

// Request is what a proxy sends for one `docker run`: the container name,
// the create body exactly as the Docker CLI sent it, and the image's
// inspect output (optional).
type Request struct {
	Name      string          `json:"name,omitempty"`
	Container json.RawMessage `json:"container"`
	Image     json.RawMessage `json:"image,omitempty"`
}

// The answer types are the flocker package's, shared with the in-process
// Policy, so a proxy reads both the same way.
type (
	ServerRef     = flocker.ServerRef
	Route         = flocker.Route
	Explain       = flocker.Explain
	Decision      = flocker.Decision
	DecisionError = flocker.DecisionError
)

// Place decides where the container goes and saves its route.
func (c *Client) Place(ctx context.Context, r Request) (*Decision, error) {
	return c.decision(ctx, "/v1/place", r)
}

// PlaceRetry is Place for a request whose earlier Place lost its answer
// (a timeout, a dropped connection, a 503): if the name's live route was
// saved from this very request, the saved decision comes back. Place alone
// answers a taken name with name_in_use, as the contract says, even for
// the request that took it.
func (c *Client) PlaceRetry(ctx context.Context, r Request) (*Decision, error) {
	return c.decision(ctx, "/v1/place?retry=true", r)
}

// Decide decides without saving anything.
func (c *Client) Decide(ctx context.Context, r Request) (*Decision, error) {
	return c.decision(ctx, "/v1/decide", r)
}

func (c *Client) decision(ctx context.Context, path string, r Request) (*Decision, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	status, header, data, err := c.do(ctx, http.MethodPost, path, body)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		var answer struct {
			Error *DecisionError `json:"error"`
		}
		if json.Unmarshal(data, &answer) != nil || answer.Error == nil {
			return nil, fmt.Errorf("flocker: %s answered %d: %s", path, status, bytes.TrimSpace(data))
		}
		answer.Error.Status = status
		return nil, answer.Error
	}
	var d Decision
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("flocker: bad decision from %s: %v", path, err)
	}
	if n, err := strconv.Atoi(header.Get("X-Flocker-Retries")); err == nil {
		d.Retries = n
	}
	return &d, nil
}

// Health is GET /healthz.
type Health struct {
	Status  string `json:"status"`
	Store   string `json:"store"`
	Engine  string `json:"engine"`
	Servers int    `json:"servers"`
	Routes  int    `json:"routes"`
}

// Health asks whether the service and its store are up.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	status, _, data, err := c.do(ctx, http.MethodGet, "/healthz", nil)
	if err != nil {
		return nil, err
	}
	var h Health
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("flocker: bad health answer (%d): %v", status, err)
	}
	if status != http.StatusOK {
		return &h, fmt.Errorf("flocker: unhealthy (%d): %s", status, bytes.TrimSpace(data))
	}
	return &h, nil
}

// Metrics returns the Prometheus text of GET /metrics.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	status, _, data, err := c.do(ctx, http.MethodGet, "/metrics", nil)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("flocker: /metrics answered %d", status)
	}
	return string(data), nil
}

func (c *Client) do(ctx context.Context, method, path string, body []byte) (int, http.Header, []byte, error) {
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, reader)
	if err != nil {
		return 0, nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	httpClient := c.HTTP
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, data, nil
}
