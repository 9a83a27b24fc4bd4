package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// Claim takes app's oldest waiting job for this Queue's Owner, with a
// lease of Options.Lease and the app's next fencing token, unless a job of
// the app runs (a *BusyError naming it and its deployer, even when its
// lease has ended: Expire ends it first), the oldest waiting job is
// reserved for another owner (a *BusyError with Waiting set: a command
// line's deploy waits for its turn, see Wait), or none waits (ErrEmpty).
func (q *Queue) Claim(ctx context.Context, app string) (*Claim, error) {
	return q.claim(ctx, app, "")
}

// errNotYet: the job a Wait claims is not the oldest waiting one yet.
var errNotYet = errors.New("not its turn yet")

// next is what a claim of app may take, given the running job and the
// oldest waiting one (nil when none): the head, or why not. only, when
// set, is the one job the claimer takes.
func (q *Queue) next(app string, running, head *Job, only string) (*Job, error) {
	switch {
	case running != nil:
		return nil, &BusyError{App: app, ID: running.ID, Owner: running.Owner, Expires: running.Expires}
	case head == nil:
		return nil, ErrEmpty
	case head.ReservedBy != "" && head.ReservedBy != q.owner:
		return nil, &BusyError{App: app, ID: head.ID, Owner: head.ReservedBy, Expires: head.Expires, Waiting: true}
	case only != "" && head.ID != only:
		return nil, errNotYet
	}
	return head, nil
}

func (q *Queue) claim(ctx context.Context, app, only string) (*Claim, error) {
	sent := time.Now()
	// A read first: a deployer polling an idle or busy app takes no lock
	// (on SQLite, a write transaction takes the whole database).
	running, waiting, err := q.Pending(ctx, app)
	if err != nil {
		return nil, err
	}
	if _, err := q.next(app, running, first(waiting), only); err != nil {
		return nil, err
	}
	var claim *Claim
	err = q.tx(ctx, func(tx *sql.Tx) error {
		_, fence, err := q.lockApp(ctx, tx, app)
		if err != nil {
			return err
		}
		running, err := q.jobs(ctx, tx, `WHERE app = ? AND state = 'running'`, app)
		if err != nil {
			return err
		}
		head, err := q.jobs(ctx, tx, `WHERE app = ? AND state = 'waiting' ORDER BY seq LIMIT 1`, app)
		if err != nil {
			return err
		}
		j, err := q.next(app, first(running), first(head), only)
		if err != nil {
			return err
		}
		j.State, j.Owner, j.Token = StateRunning, q.owner, fence+1
		var leaseEnd int64
		err = tx.QueryRowContext(ctx, q.d.sql(`UPDATE queue_jobs
			SET state = 'running', owner = ?, token = ?, started_ms = NOW_MS, lease_until_ms = NOW_MS + ?
			WHERE id = ? AND state = 'waiting' RETURNING lease_until_ms`), j.Owner, j.Token, q.lease.Milliseconds(), j.ID).Scan(&leaseEnd)
		if err != nil {
			return fmt.Errorf("claim %s: %w", j.ID, err)
		}
		j.Expires = time.UnixMilli(leaseEnd).UTC()
		if _, err := tx.ExecContext(ctx, q.d.sql(`UPDATE queue_apps SET fence = ? WHERE app = ?`), j.Token, app); err != nil {
			return fmt.Errorf("claim %s: %w", j.ID, err)
		}
		claim = &Claim{Job: *j, renewed: sent}
		return nil
	})
	var busy *BusyError
	if errors.Is(err, ErrEmpty) || errors.Is(err, errNotYet) || errors.As(err, &busy) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("app %s: claim: %w", app, err)
	}
	return claim, nil
}

func first(jobs []*Job) *Job {
	if len(jobs) == 0 {
		return nil
	}
	return jobs[0]
}

// Renew extends c's lease by Options.Lease from now (database clock) and
// updates c.Expires. ErrLost when the lease has already ended or the job
// is no longer c's (another deployer expired it): stop working on it.
func (q *Queue) Renew(ctx context.Context, c *Claim) error {
	sent := time.Now()
	var leaseEnd int64
	err := q.db.QueryRowContext(ctx, q.d.sql(`UPDATE queue_jobs SET lease_until_ms = NOW_MS + ?
		WHERE id = ? AND token = ? AND state = 'running' AND lease_until_ms >= NOW_MS
		RETURNING lease_until_ms`), q.lease.Milliseconds(), c.ID, c.Token).Scan(&leaseEnd)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("deployment %s: %w", c.ID, ErrLost)
	}
	if err != nil {
		return fmt.Errorf("deployment %s: renew claim: %w", c.ID, err)
	}
	c.Expires, c.renewed = time.UnixMilli(leaseEnd).UTC(), sent
	return nil
}

// Finish records that c's job ended with outcome and frees the app for
// its next job. ErrLost when the job is no longer c's: another deployer
// expired it (it is recorded as interrupted, and the app has moved on). A
// lease that ended but that nobody expired yet still finishes: the run was
// the only one.
func (q *Queue) Finish(ctx context.Context, c *Claim, outcome deploy.Status) error {
	res, err := q.db.ExecContext(ctx, q.d.sql(`UPDATE queue_jobs
		SET state = 'finished', outcome = ?, finished_ms = NOW_MS
		WHERE id = ? AND token = ? AND state = 'running'`), string(outcome), c.ID, c.Token)
	if err != nil {
		return fmt.Errorf("deployment %s: finish: %w", c.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("deployment %s: finish: %w", c.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("deployment %s: %w", c.ID, ErrLost)
	}
	c.State, c.Outcome = StateFinished, string(outcome)
	return nil
}

// Expire marks every running job whose lease has ended (its deployer died,
// or lost the database for longer than the lease), and every reserved
// waiting job whose owner stopped waiting for it (see Wait), as
// interrupted, and
// returns them, each to exactly one caller however many deployers expire
// at once: that caller records the interruption (history, log). The apps'
// next jobs can be claimed from then on.
func (q *Queue) Expire(ctx context.Context) ([]*Job, error) {
	return q.expire(ctx, `lease_until_ms < NOW_MS`)
}

// ExpireAll is Expire whatever the leases, for a process that knows no
// other process uses the queue (serve's SQLite queue in its own data
// folder, at start): every running job, and every reserved waiting one,
// is then a process's that died, and waiting out its lease would only hold
// up the app.
func (q *Queue) ExpireAll(ctx context.Context) ([]*Job, error) {
	return q.expire(ctx, `1 = 1`)
}

// expire marks interrupted the running and reserved jobs that also meet
// cond (SQL).
func (q *Queue) expire(ctx context.Context, cond string) ([]*Job, error) {
	rows, err := q.db.QueryContext(ctx, q.d.sql(`UPDATE queue_jobs SET state = 'interrupted', finished_ms = NOW_MS
		WHERE (state = 'running' OR (state = 'waiting' AND reserved_by <> '')) AND `+cond+`
		RETURNING `+jobColumns))
	if err != nil {
		return nil, fmt.Errorf("expire claims: %w", err)
	}
	jobs, err := scanJobs(rows)
	if err != nil {
		return nil, fmt.Errorf("expire claims: %w", err)
	}
	return jobs, nil
}

// Pending returns app's running job (nil when none runs) and its waiting
// jobs, oldest first.
func (q *Queue) Pending(ctx context.Context, app string) (running *Job, waiting []*Job, err error) {
	jobs, err := q.jobs(ctx, q.db, `WHERE app = ? AND state IN ('running', 'waiting') ORDER BY seq`, app)
	if err != nil {
		return nil, nil, fmt.Errorf("app %s: %w", app, err)
	}
	for _, j := range jobs {
		if j.State == StateRunning {
			running = j
		} else {
			waiting = append(waiting, j)
		}
	}
	return running, waiting, nil
}

// Job returns job id, whatever its state; ok is false when there is none.
func (q *Queue) Job(ctx context.Context, id string) (j *Job, ok bool, err error) {
	jobs, err := q.jobs(ctx, q.db, `WHERE id = ?`, id)
	if err != nil || len(jobs) == 0 {
		return nil, false, err
	}
	return jobs[0], true, nil
}

// Prune deletes the finished, interrupted and cancelled jobs and the delivery ids
// older than age (database clock), and returns how many rows went. Keep
// delivery ids longer than a forge redelivers (hours; a day is plenty).
func (q *Queue) Prune(ctx context.Context, age time.Duration) (int64, error) {
	var n int64
	err := q.tx(ctx, func(tx *sql.Tx) error {
		for _, stmt := range []string{
			`DELETE FROM queue_jobs WHERE state IN ('finished', 'interrupted', 'cancelled') AND finished_ms < NOW_MS - ?`,
			`DELETE FROM queue_deliveries WHERE created_ms < NOW_MS - ?`,
		} {
			res, err := tx.ExecContext(ctx, q.d.sql(stmt), age.Milliseconds())
			if err != nil {
				return err
			}
			m, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n += m
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune queue: %w", err)
	}
	return n, nil
}
