package queue_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/queue"
)

func cliDeploy() deploy.Request {
	return deploy.Request{Trigger: deploy.TriggerCLI, Push: deploy.Push{Branch: "main"}}
}

type waited struct {
	c   *queue.Claim
	err error
}

// startWait runs q.Wait in a goroutine; the result arrives on the channel
// and the holders it heard of are in *heard.
func startWait(ctx context.Context, q *queue.Queue, id string) (<-chan waited, func() []string) {
	var mu sync.Mutex
	var heard []string
	out := make(chan waited, 1)
	go func() {
		c, err := q.Wait(ctx, "web", id, cliDeploy(), func(b *queue.BusyError) {
			mu.Lock()
			heard = append(heard, b.ID+"@"+b.Owner)
			mu.Unlock()
		})
		out <- waited{c, err}
	}()
	return out, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), heard...) }
}

func testWaitTakesItsTurn(t *testing.T, b backend) {
	ctx := context.Background()
	d1, d2, cli := b.open(t, opts("d1")), b.open(t, opts("d2")), b.open(t, opts("cli"))
	enqueue(t, d1, "web", "job-1", pinned("a1"))
	c1 := claim(t, d1, "web")
	enqueue(t, d1, "web", "job-2", delivery(tip(), "github", "g2", "c2"))
	result, heard := startWait(ctx, cli, "cli-1")
	waitFor(t, "the command line to queue its job", func() (bool, error) {
		_, waiting, err := d2.Pending(ctx, "web")
		return len(waiting) == 2 && waiting[1].ID == "cli-1" && waiting[1].ReservedBy == "cli", err
	})
	// Nothing asked for after the command line's job overtakes it.
	wantTicket(t, enqueue(t, d2, "web", "job-3", delivery(tip(), "github", "g3", "c3")), "job-3", queue.Queued)
	waitFor(t, "the command line to hear who runs the app", func() (bool, error) {
		h := heard()
		return len(h) > 0 && h[0] == "job-1@d1", nil
	})
	finish(t, d1, c1)
	c2 := claim(t, d2, "web") // job-2 was first
	if c2.ID != "job-2" {
		t.Fatalf("claimed %s, want job-2", c2.ID)
	}
	finish(t, d2, c2)
	// Now the command line's turn: no deployer takes its job.
	var busy *queue.BusyError
	// (Whether the command line has claimed it yet or not.)
	if _, err := d1.Claim(ctx, "web"); !errors.As(err, &busy) || busy.ID != "cli-1" || busy.Owner != "cli" {
		t.Fatalf("claim while the command line's job is next: %v, want busy with cli-1 of cli", err)
	}
	var w waited
	select {
	case w = <-result:
	case <-time.After(time.Minute):
		t.Fatal("the command line did not get its turn within a minute")
	}
	if w.err != nil || w.c.ID != "cli-1" || w.c.Owner != "cli" {
		t.Fatalf("wait: %+v %v, want cli-1 claimed by cli", w.c, w.err)
	}
	finish(t, cli, w.c)
	if c := claim(t, d1, "web"); c.ID != "job-3" {
		t.Errorf("after the command line claimed %s, want job-3", c.ID)
	}
}

func testWaitWithdrawn(t *testing.T, b backend) {
	ctx := context.Background()
	d1, cli := b.open(t, opts("d1")), b.open(t, opts("cli"))
	enqueue(t, d1, "web", "job-1", pinned("a1"))
	c1 := claim(t, d1, "web")
	wctx, cancel := context.WithCancel(ctx)
	result, _ := startWait(wctx, cli, "cli-1")
	waitFor(t, "the command line to queue its job", func() (bool, error) {
		_, ok, err := d1.Job(ctx, "cli-1")
		return ok, err
	})
	enqueue(t, d1, "web", "job-2", rollback())
	cancel() // ^C
	if w := <-result; !errors.Is(w.err, context.Canceled) {
		t.Fatalf("wait after cancel: %+v %v, want context.Canceled", w.c, w.err)
	}
	if j, _, err := d1.Job(ctx, "cli-1"); err != nil || j.State != queue.StateCancelled {
		t.Fatalf("the withdrawn job: %+v %v, want cancelled", j, err)
	}
	finish(t, d1, c1)
	if c := claim(t, d1, "web"); c.ID != "job-2" {
		t.Errorf("after the withdrawn job claimed %s, want job-2", c.ID)
	}
}

func testWaitOfAGoneCommandLineExpires(t *testing.T, b backend) {
	ctx := context.Background()
	short := opts("cli")
	short.Lease = 600 * time.Millisecond
	d1, cli := b.open(t, opts("d1")), b.open(t, short)
	enqueue(t, d1, "web", "job-1", pinned("a1"))
	c1 := claim(t, d1, "web")
	result, _ := startWait(ctx, cli, "cli-1")
	waitFor(t, "the command line to queue its job", func() (bool, error) {
		_, ok, err := d1.Job(ctx, "cli-1")
		return ok, err
	})
	cli.Close() // the command line's process is gone: nothing renews, nothing withdraws
	if w := <-result; w.err == nil {
		t.Fatal("wait on a closed queue: no error")
	}
	enqueue(t, d1, "web", "job-2", rollback())
	finish(t, d1, c1)
	var expired []*queue.Job
	waitFor(t, "the reservation to expire", func() (bool, error) {
		var err error
		expired, err = d1.Expire(ctx)
		return len(expired) > 0, err
	})
	if expired[0].ID != "cli-1" || expired[0].State != queue.StateInterrupted {
		t.Errorf("expired %+v, want cli-1 interrupted", expired[0])
	}
	if c := claim(t, d1, "web"); c.ID != "job-2" {
		t.Errorf("after the expired reservation claimed %s, want job-2", c.ID)
	}
}

func testClaimNow(t *testing.T, b backend) {
	ctx := context.Background()
	d1, cli := b.open(t, opts("d1")), b.open(t, opts("cli"))
	c, err := cli.ClaimNow(ctx, "web", "cli-1", cliDeploy())
	if err != nil || c.ID != "cli-1" || c.Owner != "cli" || c.State != queue.StateRunning {
		t.Fatalf("claim now of an idle app: %+v %v", c, err)
	}
	enqueue(t, d1, "web", "job-1", delivery(tip(), "github", "g1", "c1"))
	var busy *queue.BusyError
	if _, err := d1.Claim(ctx, "web"); !errors.As(err, &busy) || busy.ID != "cli-1" || busy.Owner != "cli" {
		t.Fatalf("claim while the command line runs: %v, want busy naming cli-1 on cli", err)
	}
	if _, err := cli.ClaimNow(ctx, "web", "cli-2", cliDeploy()); !errors.As(err, &busy) || busy.ID != "cli-1" || busy.Waiting {
		t.Fatalf("second claim now: %v, want busy naming the running cli-1", err)
	}
	finish(t, cli, c)
	// Something waits: --no-wait refuses, naming it.
	if _, err := cli.ClaimNow(ctx, "web", "cli-3", cliDeploy()); !errors.As(err, &busy) || busy.ID != "job-1" || !busy.Waiting {
		t.Fatalf("claim now with job-1 waiting: %v, want busy naming job-1, waiting", err)
	}
	if _, ok, _ := d1.Job(ctx, "cli-3"); ok {
		t.Error("a refused claim now left a job")
	}
	if c := claim(t, d1, "web"); c.ID != "job-1" || c.Token <= 1 {
		t.Errorf("claimed %s token %d, want job-1 with a token above the command line's", c.ID, c.Token)
	}
}
