package queue_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/internal/pgtest"
	"github.com/pushdeploy/pushdeploy/queue"
)

// BenchmarkEnqueue measures the durable accept: an Enqueue of a new
// delivery of the tip (it coalesces with the waiting job after the first),
// committed, from 8 goroutines over 2 deployers. Reports p50 and p99.
func BenchmarkEnqueue(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			var be backend
			if name == "sqlite" {
				be = sqliteBackend(b)
			} else {
				be = postgresBackend(pgtest.New(b))
			}
			qs := []*queue.Queue{be.open(b, opts("d1")), be.open(b, opts("d2"))}
			var (
				mu   sync.Mutex
				lat  []time.Duration
				n    atomic.Int64
				errs atomic.Int64
			)
			b.SetParallelism(4) // 4 × GOMAXPROCS goroutines
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					i := n.Add(1)
					q := qs[i%2]
					start := time.Now()
					_, err := q.Enqueue(context.Background(), "web", fmt.Sprintf("job-%d", i),
						delivery(tip(), "github", fmt.Sprintf("d-%d", i), "c"))
					mine = append(mine, time.Since(start))
					if err != nil {
						errs.Add(1)
					}
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			if errs.Load() > 0 {
				b.Fatalf("%d enqueues failed", errs.Load())
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
