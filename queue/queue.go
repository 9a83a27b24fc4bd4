// Package queue owns the deployment queue and the delivery ids in a
// database, so that a request is durable once it is accepted and several
// deployers can share one queue: SQLite (modernc.org/sqlite) for one
// deployer, PostgreSQL (jackc/pgx v5) for several. The same code and the
// same schema run on both; only a few phrases of SQL differ (dialect.go).
//
// # The model
//
// A job is one deployment asked for: waiting, then running, then finished
// or interrupted. Enqueue commits the job (or joins a waiting one, or
// recognises a redelivered webhook) before it returns, so the deployer can
// answer 202 knowing a crash loses nothing.
//
// At most one job of an app runs at a time, across every deployer. Three
// things of the database's own make it so; nothing is coordinated between
// the deployers themselves (no leader, no heartbeats between them):
//
//   - Each app has a row in queue_apps that Enqueue and Claim lock (SELECT
//     … FOR UPDATE on PostgreSQL; SQLite's write transactions take the
//     whole database, BEGIN IMMEDIATE). Claims of one app, and enqueues
//     with their coalescing and delivery-id checks, happen one after
//     another; other apps are not held up.
//   - A unique index on queue_jobs (app) WHERE state = 'running' makes a
//     second running job of an app impossible even if the code above were
//     wrong: the database refuses the row.
//   - A claim is a lease with a fencing token. Claim sets the job's
//     lease_until by the database's clock (the deployers' clocks do not
//     matter) and gives it the app's next token. The holder renews the
//     lease (Renew) well before it ends. Renew and Finish change the row
//     only when it still carries the holder's token and is running, so a
//     deployer that lost its claim (it was paused, or cut from the
//     database, for longer than the lease) learns it from ErrLost and never
//     records an outcome over another deployer's run. Expire marks the jobs
//     whose lease ended as interrupted, once each (the one UPDATE that
//     matches a row wins), and the app's next job can then be claimed.
//
// Why leases rather than holding a row lock or an advisory lock for the
// whole deployment: a lock lives as long as a database session, and a
// deployment (minutes, over SSH) must outlive a session that drops, a
// database restart, or a failover of the database. Neither kind of lock
// can tell the holder it has lost it while it works, nor tell the others
// who holds the app; a lease row does both, and its expiry is the stated
// bound within which another deployer takes over. Row locks (FOR UPDATE)
// are held only for the few statements of a claim or an enqueue.
//
// A deployer's loop is: Expire (record what it returns as interrupted),
// Claim an app's next job, Hold it while the deployment runs, stop the
// hold, Finish. Hold's context ends a tenth of a lease before the lease
// can end, counted on the holder's own clock from when its last renewal
// was sent, so a holder cut from the database learns first; it then stops
// the deployment at its next safe point. The host locks stay the second
// line of defence for a safe point that comes later than the lease's end.
//
// The methods of a Queue are safe for concurrent use, from any number of
// processes sharing the database.
package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// State is where a job is.
type State string

const (
	StateWaiting     State = "waiting"
	StateRunning     State = "running"
	StateFinished    State = "finished"
	StateInterrupted State = "interrupted" // its claim (or reservation) expired before it finished
	StateCancelled   State = "cancelled"   // withdrawn before it ran (see Wait)
)

// Ticket statuses, as deploy.Ticket has them.
const (
	Queued    = "queued"
	Coalesced = "coalesced"
	Duplicate = "duplicate"
)

// Job is one deployment in the queue.
type Job struct {
	ID      string
	App     string
	Request deploy.Request
	State   State
	// Queued is when it was first enqueued, by the database's clock.
	Queued time.Time
	// Owner and Token are the claim's while it runs, and the last claim's
	// afterwards; Owner is "" and Token 0 before the first claim.
	Owner string
	Token int64
	// Expires is the end of the running job's lease (database clock).
	Expires time.Time
	// Outcome is what Finish recorded (a deploy.Status), "" otherwise.
	Outcome string
	// ReservedBy is, for a job only one owner may run (a command line's
	// deploy, see Wait), that owner; "" when any deployer may.
	ReservedBy string
}

// Claim is a running job held by this Queue's Owner.
type Claim struct {
	Job
	// renewed is when the request that last began or extended the lease
	// was sent, by this machine's clock: the lease ends no earlier than
	// renewed + Lease (the database started it later), whatever the
	// database's clock says.
	renewed time.Time
}

var (
	// ErrEmpty means no job of the app is waiting.
	ErrEmpty = errors.New("queue: no deployment waiting")
	// ErrLost means the claim is no longer this holder's: its lease ended
	// and another deployer may have taken the app over. Stop the work.
	// It is deploy.ErrClaimLost.
	ErrLost = deploy.ErrClaimLost
	// ErrQueueFull is deploy.ErrQueueFull: too many deployments of the
	// app wait.
	ErrQueueFull = deploy.ErrQueueFull
)

// BusyError is the answer to Claim while a job of the app runs.
type BusyError struct {
	App     string
	ID      string    // the running job, or the reserved one that is next
	Owner   string    // the deployer running it, or the one it is reserved for
	Expires time.Time // its lease's end, database clock
	// Waiting is set when the job is not running yet but reserved for
	// its owner, whose turn it is.
	Waiting bool
}

func (e *BusyError) Error() string {
	switch {
	case e.Waiting && e.Owner == "":
		return fmt.Sprintf("app %s: deployment %s is waiting", e.App, e.ID)
	case e.Waiting:
		return fmt.Sprintf("app %s: deployment %s of %s is next", e.App, e.ID, e.Owner)
	}
	return fmt.Sprintf("app %s: deployment %s is running on %s", e.App, e.ID, e.Owner)
}

// Options tune a Queue.
type Options struct {
	// Owner names this deployer in claims (DEPLOY_NODE_NAME, or
	// hostname:pid). Required.
	Owner string
	// Lease is how long a claim lasts without Renew (default 1m): the
	// bound within which another deployer takes over from one that died.
	// Renew every Lease/3 or so.
	Lease time.Duration
	// MaxQueue bounds the jobs waiting per app (default 20).
	MaxQueue int
}

// Queue is the queue in one database.
type Queue struct {
	db    *sql.DB
	d     *dialect
	owner string
	lease time.Duration
	max   int
}

func newQueue(ctx context.Context, db *sql.DB, d *dialect, opts Options) (*Queue, error) {
	if opts.Owner == "" {
		return nil, errors.New("queue: Options.Owner is required")
	}
	q := &Queue{db: db, d: d, owner: opts.Owner, lease: opts.Lease, max: opts.MaxQueue}
	if q.lease <= 0 {
		q.lease = time.Minute
	}
	if q.max <= 0 {
		q.max = 20
	}
	if err := d.migrate(ctx, db); err != nil {
		return nil, err
	}
	return q, nil
}

// Owner is the name this Queue claims under.
func (q *Queue) Owner() string { return q.owner }

// Close closes the database.
func (q *Queue) Close() error { return q.db.Close() }

// Check proves the database answers (for /healthz).
func (q *Queue) Check(ctx context.Context) error {
	if err := q.db.PingContext(ctx); err != nil {
		return fmt.Errorf("queue database: %w", err)
	}
	return nil
}

// tx runs f in a transaction that commits when f returns nil.
func (q *Queue) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}

func msTime(ms sql.NullInt64) time.Time {
	if !ms.Valid {
		return time.Time{}
	}
	return time.UnixMilli(ms.Int64).UTC()
}
