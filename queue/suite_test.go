package queue_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/history"
	"github.com/pushdeploy/pushdeploy/internal/pgtest"
	"github.com/pushdeploy/pushdeploy/queue"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// backend is one database that several deployers (Queues) share.
type backend struct {
	// connect opens a Queue on the database, as one more deployer would.
	connect func(ctx context.Context, opts queue.Options) (*queue.Queue, error)
	// raw is a plain connection to the database, to look behind the API.
	raw func(t testing.TB) *sql.DB
	// version reads the rows of the queue's schema version and the
	// largest; setVersion sets it (%d).
	version, setVersion string
}

// open opens a Queue, closed in t.Cleanup.
func (b backend) open(t testing.TB, opts queue.Options) *queue.Queue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q, err := b.connect(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// The conformance suite: every test runs against SQLite and PostgreSQL.
var suite = []struct {
	name string
	test func(t *testing.T, b backend)
}{
	{"Order", testOrder},
	{"OneRunningPerApp", testOneRunningPerApp},
	{"Coalescing", testCoalescing},
	{"DeliveryDedupe", testDeliveryDedupe},
	{"QueueFull", testQueueFull},
	{"DurableAccept", testDurableAccept},
	{"ExpireAndFencing", testExpireAndFencing},
	{"ExpireAll", testExpireAll},
	{"RenewKeepsTheClaim", testRenewKeepsTheClaim},
	{"FinishAfterLeaseEndedUnexpired", testFinishAfterLeaseEndedUnexpired},
	{"Prune", testPrune},
	{"HoldKeepsTheLease", testHoldKeepsTheLease},
	{"WaitTakesItsTurn", testWaitTakesItsTurn},
	{"WaitWithdrawn", testWaitWithdrawn},
	{"WaitOfAGoneCommandLineExpires", testWaitOfAGoneCommandLineExpires},
	{"ClaimNow", testClaimNow},
	{"ConcurrentDeployers", testConcurrentDeployers},
	{"ConcurrentMigrations", testConcurrentMigrations},
	{"NewerSchemaRefused", testNewerSchemaRefused},
	{"Turns", testTurns},
}

func TestSQLite(t *testing.T) {
	for _, c := range suite {
		t.Run(c.name, func(t *testing.T) { c.test(t, sqliteBackend(t)) })
	}
}

func TestPostgres(t *testing.T) {
	for _, c := range suite {
		t.Run(c.name, func(t *testing.T) { c.test(t, postgresBackend(pgtest.New(t))) })
	}
}

func sqliteBackend(t testing.TB) backend {
	path := filepath.Join(t.TempDir(), "queue.db")
	return backend{
		connect: func(ctx context.Context, opts queue.Options) (*queue.Queue, error) {
			return queue.OpenSQLite(ctx, path, opts)
		},
		raw: func(t testing.TB) *sql.DB {
			db, err := sql.Open("sqlite", "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		},
		version:    `SELECT count(*), max(version) FROM queue_schema`,
		setVersion: `UPDATE queue_schema SET version = %d`,
	}
}

func postgresBackend(url string) backend {
	return backend{
		connect: func(ctx context.Context, opts queue.Options) (*queue.Queue, error) {
			return queue.OpenPostgres(ctx, url, opts)
		},
		raw: func(t testing.TB) *sql.DB {
			db, err := sql.Open("pgx", url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		},
		version:    `SELECT count(*), max(version) FROM ` + history.SchemaTable + ` WHERE component = 'queue'`,
		setVersion: `UPDATE ` + history.SchemaTable + ` SET version = %d WHERE component = 'queue'`,
	}
}

var _ = stdlib.GetDefaultDriver // registers "pgx" for raw

func opts(owner string) queue.Options { return queue.Options{Owner: owner, Lease: time.Minute} }

// ids numbers the jobs of a test.
type ids struct{ n int }

func (i *ids) next() string { i.n++; return fmt.Sprintf("job-%03d", i.n) }

func tip() deploy.Request {
	return deploy.Request{Trigger: deploy.TriggerWebhook, Push: deploy.Push{Branch: "main"}}
}

func rollback() deploy.Request {
	return deploy.Request{Action: deploy.ActionRollback, Trigger: deploy.TriggerAPI, Push: deploy.Push{Branch: "main"}}
}

func pinned(commit string) deploy.Request {
	return deploy.Request{Trigger: deploy.TriggerAPI, Push: deploy.Push{Branch: "main", Commit: commit}}
}

func delivery(req deploy.Request, provider, id, payload string) deploy.Request {
	req.Provider, req.DeliveryID, req.PayloadCommit = provider, id, payload
	return req
}

func enqueue(t *testing.T, q *queue.Queue, app, id string, req deploy.Request) deploy.Ticket {
	t.Helper()
	tk, err := q.Enqueue(context.Background(), app, id, req)
	if err != nil {
		t.Fatalf("enqueue %s: %v", id, err)
	}
	return tk
}

func claim(t *testing.T, q *queue.Queue, app string) *queue.Claim {
	t.Helper()
	c, err := q.Claim(context.Background(), app)
	if err != nil {
		t.Fatalf("claim %s: %v", app, err)
	}
	return c
}

func finish(t *testing.T, q *queue.Queue, c *queue.Claim) {
	t.Helper()
	if err := q.Finish(context.Background(), c, deploy.StatusSucceeded); err != nil {
		t.Fatalf("finish %s: %v", c.ID, err)
	}
}

func wantTicket(t *testing.T, got deploy.Ticket, id, status string) {
	t.Helper()
	if got.ID != id || got.Status != status {
		t.Errorf("ticket = %s %s, want %s %s", got.ID, got.Status, id, status)
	}
}

// waitFor calls f until it reports done, failing the test after a minute.
func waitFor(t *testing.T, what string, f func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		done, err := f()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testOrder(t *testing.T, b backend) {
	ctx := context.Background()
	q := b.open(t, opts("d1"))
	var id ids
	a, r, c := id.next(), id.next(), id.next()
	wantTicket(t, enqueue(t, q, "web", a, pinned("aaaa")), a, queue.Queued)
	wantTicket(t, enqueue(t, q, "web", r, rollback()), r, queue.Queued)
	wantTicket(t, enqueue(t, q, "web", c, pinned("cccc")), c, queue.Queued)
	for _, want := range []string{a, r, c} {
		cl := claim(t, q, "web")
		if cl.ID != want || cl.State != queue.StateRunning || cl.Owner != "d1" {
			t.Fatalf("claimed %s (%s, owner %s), want %s running by d1", cl.ID, cl.State, cl.Owner, want)
		}
		if want == r && cl.Request.Action != deploy.ActionRollback {
			t.Errorf("job %s: action %q, want the rollback", cl.ID, cl.Request.Action)
		}
		finish(t, q, cl)
	}
	if _, err := q.Claim(ctx, "web"); !errors.Is(err, queue.ErrEmpty) {
		t.Errorf("claim of an empty queue: %v, want ErrEmpty", err)
	}
	j, ok, err := q.Job(ctx, a)
	if err != nil || !ok || j.State != queue.StateFinished || j.Outcome != string(deploy.StatusSucceeded) {
		t.Errorf("job %s after finish: %+v, %v, %v", a, j, ok, err)
	}
}

func testOneRunningPerApp(t *testing.T, b backend) {
	ctx := context.Background()
	q1, q2 := b.open(t, opts("d1")), b.open(t, opts("d2"))
	var id ids
	a1, a2, o1 := id.next(), id.next(), id.next()
	enqueue(t, q1, "web", a1, pinned("a1"))
	enqueue(t, q1, "web", a2, pinned("a2"))
	enqueue(t, q2, "api", o1, pinned("o1"))
	c1 := claim(t, q1, "web")
	var busy *queue.BusyError
	if _, err := q2.Claim(ctx, "web"); !errors.As(err, &busy) || busy.ID != a1 || busy.Owner != "d1" {
		t.Fatalf("second claim of web: %v, want a *BusyError naming %s on d1", err, a1)
	}
	// Another app is not held up.
	if c := claim(t, q2, "api"); c.ID != o1 {
		t.Errorf("claimed %s of api, want %s", c.ID, o1)
	}
	running, waiting, err := q2.Pending(ctx, "web")
	if err != nil || running == nil || running.ID != a1 || len(waiting) != 1 || waiting[0].ID != a2 {
		t.Errorf("pending web: running %+v waiting %+v (%v); want %s running, %s waiting", running, waiting, err, a1, a2)
	}
	finish(t, q1, c1)
	if c := claim(t, q2, "web"); c.ID != a2 || c.Owner != "d2" || c.Token <= c1.Token {
		t.Errorf("claim after finish: %s by %s token %d, want %s by d2 with a token above %d", c.ID, c.Owner, c.Token, a2, c1.Token)
	}
	// The database itself refuses a second running job of an app.
	_, err = b.raw(t).ExecContext(ctx, `UPDATE queue_jobs SET state = 'running' WHERE id = '`+a1+`'`)
	if err == nil {
		t.Error("the database took a second running job of web")
	}
}

func testCoalescing(t *testing.T, b backend) {
	q := b.open(t, opts("d1"))
	var id ids
	first, second, web1, rb := id.next(), id.next(), id.next(), id.next()
	wantTicket(t, enqueue(t, q, "web", first, delivery(tip(), "github", "g1", "c1")), first, queue.Queued)
	// A newer push of the tip joins the waiting one, which takes its commit.
	wantTicket(t, enqueue(t, q, "web", second, delivery(tip(), "github", "g2", "c2")), first, queue.Coalesced)
	// Other hosts: another deployment.
	onWeb1 := tip()
	onWeb1.Hosts = []string{"web1"}
	wantTicket(t, enqueue(t, q, "web", web1, onWeb1), web1, queue.Queued)
	// Rollbacks never coalesce, and a deploy after a rollback runs after it.
	wantTicket(t, enqueue(t, q, "web", rb, rollback()), rb, queue.Queued)
	rb2 := id.next()
	wantTicket(t, enqueue(t, q, "web", rb2, rollback()), rb2, queue.Queued)
	after := id.next()
	wantTicket(t, enqueue(t, q, "web", after, tip()), after, queue.Queued)
	// An empty host list is the same as none.
	all := tip()
	all.Hosts = []string{}
	wantTicket(t, enqueue(t, q, "web", id.next(), all), after, queue.Coalesced)

	c := claim(t, q, "web")
	if c.ID != first || c.Request.PayloadCommit != "c2" || c.Request.DeliveryID != "g1" {
		t.Errorf("coalesced job: %s payload %q delivery %q; want %s with the newest payload c2 (delivery g1 kept)",
			c.ID, c.Request.PayloadCommit, c.Request.DeliveryID, first)
	}
	// A running deployment takes no newcomers: a push of the tip now joins
	// the tip deployment waiting after the rollbacks.
	wantTicket(t, enqueue(t, q, "web", "late", delivery(tip(), "github", "g3", "c3")), after, queue.Coalesced)
	finish(t, q, c)
}

func testDeliveryDedupe(t *testing.T, b backend) {
	q1, q2 := b.open(t, opts("d1")), b.open(t, opts("d2"))
	var id ids
	a := id.next()
	wantTicket(t, enqueue(t, q1, "web", a, delivery(pinned("aaaa"), "github", "d-1", "aaaa")), a, queue.Queued)
	// The forge redelivers to another deployer: a duplicate, even once
	// the job has run.
	wantTicket(t, enqueue(t, q2, "web", id.next(), delivery(pinned("aaaa"), "github", "d-1", "aaaa")), a, queue.Duplicate)
	finish(t, q2, claim(t, q2, "web"))
	wantTicket(t, enqueue(t, q2, "web", id.next(), delivery(pinned("aaaa"), "github", "d-1", "aaaa")), a, queue.Duplicate)
	// The same id from another forge, or for another app, is another delivery.
	other := id.next()
	wantTicket(t, enqueue(t, q2, "web", other, delivery(pinned("aaaa"), "bitbucket", "d-1", "aaaa")), other, queue.Queued)
	api := id.next()
	wantTicket(t, enqueue(t, q2, "api", api, delivery(pinned("aaaa"), "github", "d-1", "aaaa")), api, queue.Queued)
	// A coalesced delivery's redelivery names the job it joined.
	tipJob := id.next()
	enqueue(t, q1, "web", tipJob, delivery(tip(), "github", "t-1", "c1"))
	wantTicket(t, enqueue(t, q1, "web", id.next(), delivery(tip(), "github", "t-2", "c2")), tipJob, queue.Coalesced)
	wantTicket(t, enqueue(t, q2, "web", id.next(), delivery(tip(), "github", "t-2", "c2")), tipJob, queue.Duplicate)
	// A delivery id the worker would refuse is refused here too.
	var reqErr *deploy.RequestError
	if _, err := q1.Enqueue(context.Background(), "web", id.next(), delivery(tip(), "github", "a b", "")); !errors.As(err, &reqErr) {
		t.Errorf("delivery id with a space: %v, want a *deploy.RequestError", err)
	}
}

func testQueueFull(t *testing.T, b backend) {
	ctx := context.Background()
	o := opts("d1")
	o.MaxQueue = 2
	q := b.open(t, o)
	var id ids
	a := id.next()
	enqueue(t, q, "web", a, delivery(tip(), "github", "x1", "c1"))
	enqueue(t, q, "web", id.next(), rollback())
	if _, err := q.Enqueue(ctx, "web", id.next(), rollback()); !errors.Is(err, queue.ErrQueueFull) || !errors.Is(err, deploy.ErrQueueFull) {
		t.Fatalf("third waiting job: %v, want ErrQueueFull", err)
	}
	// Full, a redelivery is still a duplicate, and a job that runs frees a place.
	wantTicket(t, enqueue(t, q, "web", id.next(), delivery(tip(), "github", "x1", "c1")), a, queue.Duplicate)
	finish(t, q, claim(t, q, "web"))
	enqueue(t, q, "web", id.next(), rollback())
	// Other apps have their own bound.
	enqueue(t, q, "api", id.next(), rollback())
}

func testDurableAccept(t *testing.T, b backend) {
	q1 := b.open(t, opts("d1"))
	tk := enqueue(t, q1, "web", "job-1", delivery(tip(), "github", "g1", "c1"))
	// The deployer that answered dies: another finds the job and the
	// delivery id.
	q1.Close()
	q2 := b.open(t, opts("d2"))
	wantTicket(t, enqueue(t, q2, "web", "job-2", delivery(tip(), "github", "g1", "c1")), tk.ID, queue.Duplicate)
	if c := claim(t, q2, "web"); c.ID != tk.ID || c.Request.PayloadCommit != "c1" {
		t.Errorf("after the first deployer closed: claimed %s (payload %q), want %s (c1)", c.ID, c.Request.PayloadCommit, tk.ID)
	}
}

// testExpireAll: a deployer alone with its queue, started again after it
// died, ends its dead claim at once, lease or not; waiting jobs stay.
func testExpireAll(t *testing.T, b backend) {
	ctx := context.Background()
	dead := b.open(t, opts("d1"))
	enqueue(t, dead, "web", "job-1", pinned("a1"))
	enqueue(t, dead, "web", "job-2", pinned("a2"))
	c1 := claim(t, dead, "web")
	again := b.open(t, opts("d1-again"))
	expired, err := again.ExpireAll(ctx)
	if err != nil || len(expired) != 1 || expired[0].ID != "job-1" || expired[0].State != queue.StateInterrupted {
		t.Fatalf("ExpireAll: %+v, %v; want job-1 interrupted", expired, err)
	}
	if c := claim(t, again, "web"); c.ID != "job-2" {
		t.Errorf("then claimed %s, want job-2", c.ID)
	}
	if err := dead.Renew(ctx, c1); !errors.Is(err, queue.ErrLost) {
		t.Errorf("the dead claim renewed: %v, want ErrLost", err)
	}
}

func testExpireAndFencing(t *testing.T, b backend) {
	ctx := context.Background()
	short := opts("d1")
	short.Lease = 300 * time.Millisecond
	q1, q2 := b.open(t, short), b.open(t, opts("d2"))
	enqueue(t, q1, "web", "job-1", pinned("a1"))
	enqueue(t, q1, "web", "job-2", pinned("a2"))
	c1 := claim(t, q1, "web")
	// d1 stops renewing (it died, or lost the database): d2 expires the
	// claim once the lease ends, and only then.
	var expired []*queue.Job
	waitFor(t, "the claim to expire", func() (bool, error) {
		var err error
		expired, err = q2.Expire(ctx)
		return len(expired) > 0, err
	})
	if len(expired) != 1 || expired[0].ID != "job-1" || expired[0].Owner != "d1" || expired[0].Token != c1.Token ||
		expired[0].State != queue.StateInterrupted {
		t.Fatalf("expired %+v, want job-1 of d1 interrupted", expired[0])
	}
	if again, err := q2.Expire(ctx); err != nil || len(again) != 0 {
		t.Errorf("second expire: %v %v, want nothing: each claim expires once", again, err)
	}
	c2 := claim(t, q2, "web")
	if c2.ID != "job-2" {
		t.Fatalf("after expiry claimed %s, want job-2", c2.ID)
	}
	// The old holder comes back: fenced off.
	if err := q1.Renew(ctx, c1); !errors.Is(err, queue.ErrLost) {
		t.Errorf("renew of the expired claim: %v, want ErrLost", err)
	}
	if err := q1.Finish(ctx, c1, deploy.StatusSucceeded); !errors.Is(err, queue.ErrLost) {
		t.Errorf("finish of the expired claim: %v, want ErrLost", err)
	}
	if j, _, err := q2.Job(ctx, "job-1"); err != nil || j.State != queue.StateInterrupted || j.Outcome != "" {
		t.Errorf("job-1 after the old holder's finish: %+v %v, want interrupted, no outcome", j, err)
	}
	// A stale claim of the same job with a token of its own is no better:
	// the token decides, not the job id.
	forged := *c2
	forged.Token = c1.Token
	if err := q1.Finish(ctx, &forged, deploy.StatusFailed); !errors.Is(err, queue.ErrLost) {
		t.Errorf("finish with an old token: %v, want ErrLost", err)
	}
	finish(t, q2, c2)
}

func testRenewKeepsTheClaim(t *testing.T, b backend) {
	ctx := context.Background()
	q1, q2 := b.open(t, opts("d1")), b.open(t, opts("d2"))
	enqueue(t, q1, "web", "job-1", tip())
	c := claim(t, q1, "web")
	before := c.Expires
	waitFor(t, "the database clock to move", func() (bool, error) {
		err := q1.Renew(ctx, c)
		return c.Expires.After(before), err
	})
	if exp, err := q2.Expire(ctx); err != nil || len(exp) != 0 {
		t.Errorf("expire of a live claim: %v %v, want nothing", exp, err)
	}
	if c.Expires.Before(time.Now().Add(30 * time.Second)) {
		t.Errorf("lease ends %s, want about a minute from now", c.Expires)
	}
	finish(t, q1, c)
}

func testFinishAfterLeaseEndedUnexpired(t *testing.T, b backend) {
	ctx := context.Background()
	short := opts("d1")
	short.Lease = 200 * time.Millisecond
	q := b.open(t, short)
	enqueue(t, q, "web", "job-1", tip())
	c := claim(t, q, "web")
	// Wait, without renewing, until the lease has ended (the database's
	// clock is this machine's).
	waitFor(t, "the lease to end", func() (bool, error) {
		return time.Now().After(c.Expires.Add(10 * time.Millisecond)), nil
	})
	stale := *c
	if err := q.Renew(ctx, &stale); !errors.Is(err, queue.ErrLost) {
		t.Fatalf("renew after the lease ended: %v, want ErrLost", err)
	}
	// Nobody took the app over: the run was the only one, and its outcome
	// is recorded.
	if err := q.Finish(ctx, c, deploy.StatusFailed); err != nil {
		t.Fatalf("finish after the lease ended, unexpired: %v", err)
	}
	if exp, err := q.Expire(ctx); err != nil || len(exp) != 0 {
		t.Errorf("expire after finish: %v %v, want nothing", exp, err)
	}
}

func testPrune(t *testing.T, b backend) {
	ctx := context.Background()
	q := b.open(t, opts("d1"))
	enqueue(t, q, "web", "job-1", delivery(pinned("a1"), "github", "g1", ""))
	finish(t, q, claim(t, q, "web"))
	enqueue(t, q, "web", "job-2", pinned("a2"))
	if n, err := q.Prune(ctx, time.Hour); err != nil || n != 0 {
		t.Errorf("prune of an hour: %d %v, want 0", n, err)
	}
	// Age 0 would race the clock's millisecond; -1ms is "everything finished".
	n, err := q.Prune(ctx, -time.Millisecond)
	if err != nil || n != 2 {
		t.Errorf("prune of everything: %d %v, want 2 (job-1 and its delivery id)", n, err)
	}
	if _, ok, _ := q.Job(ctx, "job-2"); !ok {
		t.Error("prune removed a waiting job")
	}
}

func testHoldKeepsTheLease(t *testing.T, b backend) {
	ctx := context.Background()
	short := opts("d1")
	short.Lease = 1500 * time.Millisecond
	q1, q2 := b.open(t, short), b.open(t, opts("d2"))
	enqueue(t, q1, "web", "job-1", tip())
	c := claim(t, q1, "web")
	first := c.Expires
	held, stop := q1.Hold(ctx, c)
	// Held for two leases and more: nobody can expire it.
	waitFor(t, "the lease to be renewed past two leases", func() (bool, error) {
		if exp, err := q2.Expire(ctx); err != nil || len(exp) > 0 {
			return false, fmt.Errorf("expired a held claim: %v %v", exp, err)
		}
		if held.Err() != nil {
			return false, fmt.Errorf("held ended: %v", context.Cause(held))
		}
		running, _, err := q2.Pending(ctx, "web")
		if err != nil || running == nil {
			return false, fmt.Errorf("running: %v %v", running, err)
		}
		return running.Expires.After(first.Add(2 * short.Lease)), nil
	})
	stop()
	if held.Err() != nil {
		t.Errorf("held ended before stop: %v", context.Cause(held))
	}
	finish(t, q1, c)
}

func testNewerSchemaRefused(t *testing.T, b backend) {
	b.open(t, opts("d1")).Close()
	if _, err := b.raw(t).Exec(fmt.Sprintf(b.setVersion, 99)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.connect(context.Background(), opts("d2")); !errors.Is(err, history.ErrNewerSchema) {
		t.Errorf("open of a newer schema: %v, want ErrNewerSchema", err)
	}
}
