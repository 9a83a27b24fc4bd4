//go:build !bench

// Command webhook is a benchmark of `pushdeploy serve`'s webhook path under
// load while a deploy runs. It starts real test hosts (internal/testhosts),
// which only the demo and the tests may import (layers_test.go), so the
// benchmark itself is built only with the bench tag:
//
//	go run -tags bench ./bench/webhook -rate 500 -duration 10s
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "bench/webhook: build with the bench tag: go run -tags bench ./bench/webhook [-rate 500] [-duration 10s] [-hosts 2]")
	os.Exit(2)
}
