package queue_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/internal/pgtest"
	"github.com/pushdeploy/pushdeploy/queue"
)

// The database stops (an administrator's restart) while a deployer holds
// a claim, and crashes right after accepting a request: the claim carries
// on once the database is back, and the accepted request is there.
func TestPostgresRestartAndCrash(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Start(t)
	b := postgresBackend(srv.NewDatabase(t))
	q := b.open(t, opts("d1"))
	enqueue(t, q, "web", "job-1", pinned("a1"))
	c := claim(t, q, "web")

	srv.Stop(t)
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := q.Renew(short, c)
	cancel()
	if err == nil || errors.Is(err, queue.ErrLost) {
		t.Fatalf("renew with the database stopped: %v, want a connection error (the claim is not known lost)", err)
	}
	if err := q.Check(ctx); err == nil {
		t.Error("Check with the database stopped: no error")
	}
	srv.Start(t)
	// The pool's connections died with the server; new ones are made.
	waitFor(t, "renew after the restart", func() (bool, error) {
		err := q.Renew(ctx, c)
		if errors.Is(err, queue.ErrLost) {
			return false, err
		}
		return err == nil, nil
	})
	finish(t, q, c)

	// Accepted, then the database crashes: the job survives.
	tk := enqueue(t, q, "web", "job-2", delivery(tip(), "github", "g2", "c2"))
	srv.Kill(t)
	srv.Start(t)
	q2 := b.open(t, opts("d2"))
	if got := claim(t, q2, "web"); got.ID != tk.ID {
		t.Errorf("after the crash claimed %s, want %s", got.ID, tk.ID)
	}
}

// A deployer's network to the database is cut while it holds a claim:
// another deployer takes the app over once the lease ends, and when the
// network comes back the first one's claim is refused (fencing).
func TestPostgresNetworkCut(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t)
	srv := pgtest.Shared(t)
	proxy := srv.Proxy(t)
	cutOff := opts("d1")
	cutOff.Lease = 500 * time.Millisecond
	q1 := postgresBackend(proxy.Via(t, url)).open(t, cutOff)
	q2 := postgresBackend(url).open(t, opts("d2"))
	enqueue(t, q2, "web", "job-1", pinned("a1"))
	enqueue(t, q2, "web", "job-2", pinned("a2"))
	c1 := claim(t, q1, "web")

	proxy.Cut()
	short, cancel := context.WithTimeout(ctx, time.Second)
	err := q1.Renew(short, c1)
	cancel()
	if err == nil || errors.Is(err, queue.ErrLost) {
		t.Fatalf("renew through the cut network: %v, want a timeout", err)
	}
	waitFor(t, "d2 to expire d1's claim", func() (bool, error) {
		exp, err := q2.Expire(ctx)
		return len(exp) == 1 && exp[0].ID == "job-1", err
	})
	c2 := claim(t, q2, "web")

	proxy.Restore()
	waitFor(t, "d1 to hear its claim is lost", func() (bool, error) {
		err := q1.Renew(ctx, c1)
		if err != nil && !errors.Is(err, queue.ErrLost) && !strings.Contains(err.Error(), "conn") {
			return false, err
		}
		return errors.Is(err, queue.ErrLost), nil
	})
	if err := q1.Finish(ctx, c1, deploy.StatusSucceeded); !errors.Is(err, queue.ErrLost) {
		t.Errorf("finish after the take-over: %v, want ErrLost", err)
	}
	finish(t, q2, c2)
}

// Hold ends its context, cause ErrLost (a deploy.LapsedError that says
// how long no renewal got through), before the database's lease ends
// when renewals stop getting through: the holder stops working before
// another deployer can take over.
func TestPostgresHoldNoticesFirst(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t)
	proxy := pgtest.Shared(t).Proxy(t)
	o := opts("d1")
	o.Lease = 2 * time.Second
	q1 := postgresBackend(proxy.Via(t, url)).open(t, o)
	q2 := postgresBackend(url).open(t, opts("d2"))
	enqueue(t, q2, "web", "job-1", tip())
	c := claim(t, q1, "web")
	held, stop := q1.Hold(ctx, c)
	defer stop()
	ended := make(chan time.Time, 1)
	context.AfterFunc(held, func() { ended <- time.Now() })
	proxy.Cut()
	var expired []*queue.Job
	waitFor(t, "d2 to expire the claim", func() (bool, error) {
		var err error
		expired, err = q2.Expire(ctx)
		return len(expired) > 0, err
	})
	select {
	case at := <-ended:
		// The database's clock is this machine's here.
		if !at.Before(expired[0].Expires) {
			t.Errorf("held ended at %s, after the lease ended at %s", at, expired[0].Expires)
		}
		cause := context.Cause(held)
		lapsed, ok := errors.AsType[*deploy.LapsedError](cause)
		if !errors.Is(cause, queue.ErrLost) || !ok || lapsed.For < o.Lease*8/10 || lapsed.For > o.Lease {
			t.Errorf("held's cause: %v, want ErrLost, a *deploy.LapsedError of about nine tenths of the %s lease", cause, o.Lease)
		}
	default:
		t.Fatal("the claim was taken over while its holder still held it")
	}
	proxy.Restore()
}

// OpenPostgres's errors never show the URL's password.
func TestPostgresOpenErrorsHideThePassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, url := range []string{
		"postgres://u:s3cretpw@127.0.0.1:1/db?sslmode=disable", // nothing listens on port 1
		"postgres://u:s3cretpw@127.0.0.1:99999/db",             // not a port
		"postgres://u:s3cretpw@127.0.0.1/db?sslmode=nonsense",
	} {
		_, err := queue.OpenPostgres(ctx, url, opts("d1"))
		if err == nil {
			t.Errorf("open %s: no error", url)
			continue
		}
		if strings.Contains(err.Error(), "s3cretpw") {
			t.Errorf("open: error shows the password: %v", err)
		}
	}
}
