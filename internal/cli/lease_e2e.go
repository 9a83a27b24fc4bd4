//go:build e2e

package cli

import (
	"os"
	"time"
)

// queueLeaseFor, in the binary the end-to-end tests build (go build -tags
// e2e; a release build has lease.go instead), is
// PUSHDEPLOY_E2E_QUEUE_LEASE (a Go duration) when set, else queueLease.
// The tests of several deployers set a short one, so that a deployer
// takes over from one killed or cut from the database within seconds
// rather than half a minute.
func queueLeaseFor() time.Duration {
	s := os.Getenv("PUSHDEPLOY_E2E_QUEUE_LEASE")
	if s == "" {
		return queueLease
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		panic("PUSHDEPLOY_E2E_QUEUE_LEASE: want a positive duration, got " + s)
	}
	return d
}
