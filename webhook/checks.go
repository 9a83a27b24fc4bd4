package webhook

import (
	"context"
	"sync"
	"time"
)

// Checker is something the deployer needs that /healthz checks: the
// history in PostgreSQL (history.Store), the deployment queue. Check
// returns nil when it works, else an error naming what failed; it must be
// safe for concurrent use and return when ctx ends.
type Checker interface {
	Check(ctx context.Context) error
}

// Check is one named Checker of Config.Checks.
type Check struct {
	// Name is what /healthz calls it, e.g. "database": shown to anyone,
	// so never a URL or a host.
	Name string
	// Target is what is checked, e.g. the database URL with its password
	// hidden: shown, with the error, only to a request that carries the
	// API token.
	Target  string
	Checker Checker
}

// checkTimeout bounds one check: /healthz answers within it even when the
// database does not answer at all (a network cut).
const checkTimeout = 5 * time.Second

// checkJSON is one check in /healthz. Target and Error only with the API
// token: the error of a database may name its host and user.
type checkJSON struct {
	Name    string  `json:"name"`
	Status  string  `json:"status"` // "ok" or "unavailable"
	Latency float64 `json:"latency_ms"`
	Target  string  `json:"target,omitempty"`
	Error   string  `json:"error,omitempty"`
}

// checked is a Check and its last result, which /healthz (public and
// polled) reuses for historyCheckEvery: each check may be a write.
type checked struct {
	Check
	mu      sync.Mutex
	at      time.Time
	err     error
	latency time.Duration
}

func newChecks(list []Check) []*checked {
	out := make([]*checked, 0, len(list))
	for _, c := range list {
		if c.Checker != nil {
			out = append(out, &checked{Check: c})
		}
	}
	return out
}

// run returns the check's result: its last one when that is recent.
// changed is set when this run turned it from passing to failing or
// back (the first run counts as a change only when it fails).
func (c *checked) run(ctx context.Context) (latency time.Duration, changed bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < historyCheckEvery {
		return c.latency, false, c.err
	}
	// Not cut short by the client that asked going away: the result is
	// kept for the next ones.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkTimeout)
	defer cancel()
	start := time.Now()
	wasFailing := c.err != nil
	c.err = c.Checker.Check(ctx)
	c.at = time.Now()
	c.latency = c.at.Sub(start)
	return c.latency, (c.err != nil) != wasFailing, c.err
}

// runChecks runs every check of the configuration; detail adds each one's
// target and error. failed names the checks that failed. A check that
// starts or stops failing is logged, with its error.
func (s *Server) runChecks(ctx context.Context, detail bool) (out []checkJSON, failed []string) {
	for _, c := range s.checks {
		latency, changed, err := c.run(ctx)
		switch {
		case changed && err != nil:
			s.log.Error("health: "+c.Name+" unavailable", "check", c.Name, "target", c.Target, "error", err)
		case changed:
			s.log.Info("health: "+c.Name+" available again", "check", c.Name, "target", c.Target, "latency", latency)
		}
		j := checkJSON{Name: c.Name, Status: "ok", Latency: float64(latency.Microseconds()) / 1000}
		if detail {
			j.Target = c.Target
		}
		if err != nil {
			j.Status = "unavailable"
			failed = append(failed, c.Name)
			if detail {
				j.Error = err.Error()
			}
		}
		out = append(out, j)
	}
	return out, failed
}
