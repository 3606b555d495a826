// Command flocker-place sends one placement request to flocker serve and
// prints where the container goes.
//
//	echo '{"name":"web.1","container":{"Image":"nginx"}}' | flocker-place -url http://127.0.0.1:8640
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	flocker "github.com/flocker/flocker/bindings/go/serveclient"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8640", "flocker serve address")
	decideOnly := flag.Bool("decide", false, "decide without saving")
	flag.Parse()

	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "flocker-place:", err)
		os.Exit(2)
	}
	var req flocker.Request
	if err := json.Unmarshal(in, &req); err != nil {
		fmt.Fprintln(os.Stderr, "flocker-place: stdin is not a request:", err)
		os.Exit(2)
	}
	c := flocker.New(*url)
	call := c.Place
	if *decideOnly {
		call = c.Decide
	}
	d, err := call(context.Background(), req)
	var de *flocker.DecisionError
	switch {
	case errors.As(err, &de):
		fmt.Fprintf(os.Stderr, "refused (%s): %s\n", de.Kind, de.Message)
		os.Exit(1)
	case err != nil:
		fmt.Fprintln(os.Stderr, "flocker-place:", err)
		os.Exit(3)
	}
	fmt.Printf("%s -> %s (%s)\n", req.Name, d.Server.Hostname, d.Server.Docker)
	if d.Route != nil {
		for port, host := range d.Route.Ports {
			fmt.Printf("  %s published on %s:%d\n", port, d.Server.Address, host)
		}
	}
}
