package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/metrics"
)

// seedHostMetrics reads every host's current release once, in the
// background, so that pushdeploy_host_commit (and the hosts-disagree gauge)
// exist before the first deployment. A host that cannot be read gets its
// series from its next deployment. The returned func waits for the read,
// which ends with ctx.
func seedHostMetrics(ctx context.Context, m *metrics.Collector, w *deploy.Worker, log *slog.Logger) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		asOf := time.Now()
		hosts, err := w.Releases(ctx)
		if err != nil {
			log.Warn("metrics: the hosts' current commits are unknown until the next deployment", "error", err)
			return
		}
		for _, h := range hosts {
			if h.Err != nil {
				log.Warn("metrics: a host's current commit is unknown until its next deployment", "host", h.Host.String(), "error", h.Err)
			}
		}
		m.SeedHosts(hosts, asOf)
	}()
	return func() { <-done }
}
