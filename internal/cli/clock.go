//go:build !e2e

package cli

import "time"

// deployerClock is the clock the deployer names releases and times
// deployments by: nil, which means time.Now. The binary the end-to-end
// tests build has another (clock_e2e.go).
func deployerClock() func() time.Time { return nil }
