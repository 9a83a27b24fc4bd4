package queue_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/queue"
)

// testConcurrentDeployers: four deployers share the database; producers
// send webhooks to random deployers, each delivered twice (the second time
// to another deployer, at the same moment); every deployer claims and
// finishes jobs of three apps in several goroutines. No two jobs of an app
// ever run at once, every job runs once, every redelivery is a duplicate
// of its first delivery, and every accepted request is carried out.
func testConcurrentDeployers(t *testing.T, b backend) {
	const (
		deployers  = 4
		producers  = 6
		deliveries = 25 // per producer
		claimers   = 2  // per deployer
	)
	apps := []string{"web", "api", "worker"}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	qs := make([]*queue.Queue, deployers)
	for i := range qs {
		o := opts(fmt.Sprintf("d%d", i))
		o.MaxQueue = 10000
		qs[i] = b.open(t, o)
	}

	type sent struct{ first, again deploy.Ticket }
	var (
		mu      sync.Mutex
		tickets = map[string]*sent{} // by delivery id
		errs    []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		cancel() // a job left running would hold its app for good
	}
	var prod sync.WaitGroup
	for p := range producers {
		prod.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(p), 1))
			for n := range deliveries {
				app := apps[rng.IntN(len(apps))]
				did := fmt.Sprintf("p%d-%d", p, n)
				req := delivery(tip(), "github", did, fmt.Sprintf("c%d-%d", p, n))
				switch rng.IntN(5) {
				case 0:
					req.Action = deploy.ActionRollback
				case 1:
					req.Push.Commit = fmt.Sprintf("%040x", rng.IntN(3)) // pinned: coalesces with equals
				}
				i := rng.IntN(deployers)
				var s sent
				var two sync.WaitGroup
				two.Go(func() {
					tk, err := qs[i].Enqueue(ctx, app, did+"-a", req)
					if err != nil {
						fail(err)
					}
					s.first = tk
				})
				two.Go(func() {
					tk, err := qs[(i+1)%deployers].Enqueue(ctx, app, did+"-b", req)
					if err != nil {
						fail(err)
					}
					s.again = tk
				})
				two.Wait()
				mu.Lock()
				tickets[did] = &s
				mu.Unlock()
			}
		})
	}
	producing := make(chan struct{})
	go func() { prod.Wait(); close(producing) }()

	var (
		running = map[string]*atomic.Int32{}
		claimed sync.Map // job id -> claims
		runs    atomic.Int64
	)
	for _, a := range apps {
		running[a] = new(atomic.Int32)
	}
	var cons sync.WaitGroup
	for _, q := range qs {
		for range claimers {
			cons.Go(func() {
				for ctx.Err() == nil {
					done := false
					select {
					case <-producing:
						done = true
					default:
					}
					empty, ran := 0, false
					for _, app := range apps {
						c, err := q.Claim(ctx, app)
						var busy *queue.BusyError
						switch {
						case errors.Is(err, queue.ErrEmpty):
							empty++
							continue
						case errors.As(err, &busy):
							continue
						case err != nil:
							fail(err)
							return
						}
						if n := running[app].Add(1); n != 1 {
							fail(fmt.Errorf("app %s: %d jobs running at once (claimed %s)", app, n, c.ID))
						}
						if n, _ := claimed.LoadOrStore(c.ID, new(atomic.Int32)); n.(*atomic.Int32).Add(1) != 1 {
							fail(fmt.Errorf("job %s claimed twice", c.ID))
						}
						// The work: a round trip to the database.
						if err := q.Renew(ctx, c); err != nil {
							fail(err)
						}
						running[app].Add(-1)
						if err := q.Finish(ctx, c, deploy.StatusSucceeded); err != nil {
							fail(err)
						}
						runs.Add(1)
						ran = true
					}
					if done && empty == len(apps) {
						return
					}
					if !ran {
						time.Sleep(5 * time.Millisecond) // nothing to do yet
					}
				}
			})
		}
	}
	cons.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if ctx.Err() != nil {
		t.Fatal("the deployers did not drain the queues")
	}

	queued, coalesced := 0, 0
	for did, s := range tickets {
		if s.first.ID != s.again.ID {
			t.Errorf("delivery %s: tickets for %s and %s; a redelivery must name the first delivery's job", did, s.first.ID, s.again.ID)
		}
		statuses := map[string]int{s.first.Status: 1}
		statuses[s.again.Status]++
		if statuses[queue.Duplicate] != 1 {
			t.Errorf("delivery %s: statuses %s and %s, want exactly one duplicate", did, s.first.Status, s.again.Status)
		}
		switch {
		case statuses[queue.Queued] == 1:
			queued++
		case statuses[queue.Coalesced] == 1:
			coalesced++
		}
		if _, ok := claimed.Load(s.first.ID); !ok {
			t.Errorf("delivery %s: its job %s never ran", did, s.first.ID)
		}
	}
	if int64(queued) != runs.Load() {
		t.Errorf("%d jobs queued, %d ran", queued, runs.Load())
	}
	checkNoOverlap(t, b)
	t.Logf("%d deliveries (each twice): %d jobs, %d coalesced; %d runs", len(tickets), queued, coalesced, runs.Load())
}

// checkNoOverlap reads the runs back from the database: per app, each job
// started after the one before it finished.
func checkNoOverlap(t *testing.T, b backend) {
	t.Helper()
	rows, err := b.raw(t).Query(`SELECT app, id, started_ms, finished_ms FROM queue_jobs
		WHERE started_ms IS NOT NULL ORDER BY app, started_ms, finished_ms`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lastApp, lastID string
	var lastEnd int64
	for rows.Next() {
		var app, id string
		var start, end int64
		if err := rows.Scan(&app, &id, &start, &end); err != nil {
			t.Fatal(err)
		}
		if app == lastApp && start < lastEnd {
			t.Errorf("app %s: job %s started at %d, before %s finished at %d", app, id, start, lastID, lastEnd)
		}
		lastApp, lastID, lastEnd = app, id, end
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// testConcurrentMigrations: eight deployers open a new database at the
// same moment; the schema is made once and every one of them works.
func testConcurrentMigrations(t *testing.T, b backend) {
	const n = 8
	start := make(chan struct{})
	qs := make([]*queue.Queue, n)
	var wg sync.WaitGroup
	for i := range qs {
		wg.Go(func() {
			<-start
			qs[i] = b.open(t, opts(fmt.Sprintf("d%d", i)))
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}
	var rows, version int
	if err := b.raw(t).QueryRow(b.version).Scan(&rows, &version); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || version != queue.SchemaVersion() {
		t.Errorf("queue_schema: %d rows, version %d; want 1 row, version %d", rows, version, queue.SchemaVersion())
	}
	for i, q := range qs {
		enqueue(t, q, "web", fmt.Sprintf("job-%d", i), rollback())
	}
	for range qs {
		finish(t, qs[0], claim(t, qs[0], "web"))
	}
}
