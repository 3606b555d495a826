package flocker_test

import (
	"context"
	"errors"
	"fmt"

	flocker "github.com/flocker/flocker/bindings/go"
)

// Example_decide is the whole round trip: load the embedded module, decide
// a SPEC input, read the typed answer.
func Example_decide() {
	ctx := context.Background()
	p, err := flocker.New(ctx)
	if err != nil {
		panic(err) // a host failure: the embedded module did not load
	}
	defer p.Close(ctx)

	input := []byte(`{"name": "web.1", "container": {"Image": "nginx"},
	  "inventory": [{"hostname": "node1", "address": "10.0.0.1"},
	                {"hostname": "node2", "address": "10.0.0.2", "full": true}]}`)
	out, err := p.Decide(ctx, input)
	if err != nil {
		panic(err) // deadline, memory cap or trap
	}
	d, err := flocker.ParseResult(out)
	var refused *flocker.DecisionError
	if errors.As(err, &refused) {
		fmt.Println("refused:", refused.Kind)
		return
	}
	fmt.Println(d.Server.Hostname, d.Server.Docker, d.Route.Service)
	fmt.Println(d.Explain.Summary)
	// Output:
	// node1 tcp://10.0.0.1:2375 web
	// 1/2 servers eligible: 1 full
}

// Example_snapshot keeps the cluster resident and follows its changes.
func Example_snapshot() {
	ctx := context.Background()
	p, _ := flocker.New(ctx)
	defer p.Close(ctx)
	s, err := p.NewSnapshot(ctx, []byte(`{"inventory": [{"hostname": "node1", "address": "10.0.0.1"}]}`))
	if err != nil {
		panic(err)
	}
	defer s.Close()
	_ = s.Apply(ctx, []byte(`{"op": "upsert_server", "server": {"hostname": "node0", "address": "10.0.0.9"}}`))
	out, _ := s.Decide(ctx, []byte(`{"name": "db.1", "container": {"Image": "postgres"}}`))
	d, _ := flocker.ParseResult(out)
	fmt.Println(d.Server.Hostname)
	// Output: node0
}
