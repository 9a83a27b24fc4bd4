package queue_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/queue"
)

// take takes turn key for q, failing the test on an error.
func take(t *testing.T, q *queue.Queue, key string, ttl time.Duration) string {
	t.Helper()
	h, err := q.TakeTurn(context.Background(), key, ttl)
	if err != nil {
		t.Fatalf("%s takes %s: %v", q.Owner(), key, err)
	}
	return h
}

// testTurns: one holder per turn among the deployers; the holder keeps it
// by taking it again; it is free once its ttl has passed, by the time the
// database wrote, or once its holder released it; deployers racing for a
// free turn get it once.
func testTurns(t *testing.T, b backend) {
	q1, q2 := b.open(t, opts("d1")), b.open(t, opts("d2"))
	const key = "poll/web"

	t.Run("two owners", func(t *testing.T) {
		if h := take(t, q1, key, time.Hour); h != "d1" {
			t.Fatalf("d1 takes a free turn: held by %q, want d1", h)
		}
		if h := take(t, q2, key, time.Hour); h != "d1" {
			t.Errorf("d2 takes d1's turn: held by %q, want d1", h)
		}
		if h := take(t, q1, key, time.Hour); h != "d1" {
			t.Errorf("d1 takes its own turn again: held by %q, want d1", h)
		}
		if h := take(t, q2, "poll/api", time.Hour); h != "d2" {
			t.Errorf("d2 takes another app's turn: held by %q, want d2", h)
		}
		for _, bad := range []struct {
			key string
			ttl time.Duration
		}{{"", time.Minute}, {key, 0}, {key, time.Microsecond}} {
			if _, err := q1.TakeTurn(context.Background(), bad.key, bad.ttl); err == nil {
				t.Errorf("TakeTurn(%q, %s) did not fail", bad.key, bad.ttl)
			}
		}
	})

	t.Run("expiry", func(t *testing.T) {
		const key = "poll/expiry"
		ttl := 400 * time.Millisecond
		start := time.Now()
		if h := take(t, q1, key, ttl); h != "d1" {
			t.Fatalf("d1: held by %q", h)
		}
		if h := take(t, q2, key, time.Hour); h != "d1" && time.Since(start) < ttl {
			t.Errorf("d2 within the ttl: held by %q, want d1", h)
		}
		waitFor(t, "d1's turn to expire", func() (bool, error) {
			h, err := q2.TakeTurn(context.Background(), key, time.Hour)
			return h == "d2", err
		})
		if took := time.Since(start); took < ttl {
			t.Errorf("d2 had the turn after %s, before d1's ttl %s", took, ttl)
		}
		if h := take(t, q1, key, ttl); h != "d2" {
			t.Errorf("d1 after it lost its turn: held by %q, want d2", h)
		}
	})

	t.Run("by the database clock", func(t *testing.T) {
		// The expiry is the time the database wrote: moved back, the turn
		// is free although the ttl its holder asked for has not passed;
		// moved on, it is not free although that ttl has.
		const key = "poll/clock"
		raw := b.raw(t)
		ctx := context.Background()
		before := time.Now()
		if h := take(t, q1, key, time.Hour); h != "d1" {
			t.Fatalf("d1: held by %q", h)
		}
		var until int64
		if err := raw.QueryRowContext(ctx, `SELECT until_ms FROM queue_turns WHERE turn = 'poll/clock'`).Scan(&until); err != nil {
			t.Fatal(err)
		}
		// The database runs on this machine: its clock is ours, give or
		// take the time the statement took.
		if end := time.UnixMilli(until); end.Before(before.Add(time.Hour-time.Second)) || end.After(time.Now().Add(time.Hour+time.Second)) {
			t.Errorf("turn ends %s, want an hour after it was taken (%s)", end, before)
		}
		if _, err := raw.ExecContext(ctx, `UPDATE queue_turns SET until_ms = until_ms - 3601000 WHERE turn = 'poll/clock'`); err != nil {
			t.Fatal(err)
		}
		taken := time.Now()
		if h := take(t, q2, key, time.Millisecond); h != "d2" {
			t.Fatalf("d2 once the turn ended by the database: held by %q, want d2", h)
		}
		if _, err := raw.ExecContext(ctx, `UPDATE queue_turns SET until_ms = until_ms + 3600000 WHERE turn = 'poll/clock'`); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the ttl d2 asked for to pass", func() (bool, error) { return time.Since(taken) > 10*time.Millisecond, nil })
		if h := take(t, q1, key, time.Hour); h != "d2" {
			t.Errorf("d1 after d2's ttl but before the end the database has: held by %q, want d2", h)
		}
	})

	t.Run("release", func(t *testing.T) {
		const key = "poll/release"
		ctx := context.Background()
		if h := take(t, q1, key, time.Hour); h != "d1" {
			t.Fatalf("d1: held by %q", h)
		}
		// Only the holder's release frees the turn.
		if err := q2.ReleaseTurn(ctx, key); err != nil {
			t.Fatal(err)
		}
		if h := take(t, q2, key, time.Hour); h != "d1" {
			t.Errorf("d2 after its own release of d1's turn: held by %q, want d1", h)
		}
		if err := q1.ReleaseTurn(ctx, key); err != nil {
			t.Fatal(err)
		}
		if h := take(t, q2, key, time.Hour); h != "d2" {
			t.Errorf("d2 after d1 released its turn: held by %q, want d2", h)
		}
		if err := q1.ReleaseTurn(ctx, "poll/none"); err != nil {
			t.Errorf("release of a turn nobody holds: %v", err)
		}
	})

	t.Run("race for a free turn", func(t *testing.T) {
		qs := []*queue.Queue{q1, q2}
		for i := 3; i <= 6; i++ {
			qs = append(qs, b.open(t, opts(fmt.Sprintf("d%d", i))))
		}
		for round := range 5 {
			key := fmt.Sprintf("poll/race-%d", round)
			holders := make([]string, len(qs))
			errs := make([]error, len(qs))
			var start, wg sync.WaitGroup
			start.Add(1)
			for i, q := range qs {
				wg.Go(func() {
					start.Wait()
					holders[i], errs[i] = q.TakeTurn(context.Background(), key, time.Hour)
				})
			}
			start.Done()
			wg.Wait()
			won := 0
			for i, q := range qs {
				if errs[i] != nil {
					t.Fatalf("%s: %v", q.Owner(), errs[i])
				}
				if holders[i] == q.Owner() {
					won++
				}
			}
			if won != 1 {
				t.Errorf("%s: %d deployers got the turn (holders seen %q), want 1", key, won, holders)
			}
		}
	})
}
