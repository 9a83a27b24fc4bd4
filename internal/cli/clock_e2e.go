//go:build e2e

package cli

import (
	"os"
	"time"
)

// deployerClock, in the binary the end-to-end tests build (go build -tags
// e2e; a release build has clock.go instead), runs the deployer's clock
// PUSHDEPLOY_E2E_CLOCK_OFFSET (a Go duration) ahead of the real time. The
// tests give each run a second more than the run before, so every
// deployment gets a release name (UTC seconds) of its own that sorts after
// the earlier ones, without waiting for a second to pass between two.
func deployerClock() func() time.Time {
	s := os.Getenv("PUSHDEPLOY_E2E_CLOCK_OFFSET")
	if s == "" {
		return nil
	}
	offset, err := time.ParseDuration(s)
	if err != nil {
		panic("PUSHDEPLOY_E2E_CLOCK_OFFSET: " + err.Error())
	}
	return func() time.Time { return time.Now().Add(offset) }
}
