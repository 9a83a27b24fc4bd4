//go:build !e2e

package cli

import "time"

// queueLeaseFor is the lease of the deployer's claims: queueLease. The
// binary the end-to-end tests build may have a shorter one
// (lease_e2e.go).
func queueLeaseFor() time.Duration { return queueLease }
