package eventlog

import (
	"fmt"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// BenchmarkObserve measures what the log costs a deployment: one output
// line handed to Observe (ns/op: the writes happen in the log's
// goroutine), and how far the database is behind when a deployment has
// printed b.N lines as fast as it can (ms-behind: from the last Observe
// until it is written), on each engine. Beyond 5,000 lines the oldest give
// way, as in the hub.
func BenchmarkObserve(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			l := e.open(b, e.db(b), Options{})
			id := fmt.Sprintf("bench-%d", b.N)
			l.Observe(deploy.Event{Seq: 1, Kind: deploy.EventDeployment, DeploymentID: id, App: "web", Status: deploy.StatusRunning})
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				l.Observe(deploy.Event{Seq: i + 2, Kind: deploy.EventOutput, DeploymentID: id, App: "web", Host: "web1", Step: "pip",
					Time: start, Line: "Collecting flask==3.0.3 (from -r requirements.txt (line 1))"})
			}
			b.StopTimer()
			observed := time.Since(start)
			waitWritten(b, l, id, b.N+1)
			b.ReportMetric(float64((time.Since(start) - observed).Milliseconds()), "ms-behind")
		})
	}
}
