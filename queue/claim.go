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
// lease has ended: Expire ends it first) or none waits (ErrEmpty).
func (q *Queue) Claim(ctx context.Context, app string) (*Claim, error) {
	sent := time.Now()
	// A read first: a deployer polling an idle or busy app takes no lock
	// (on SQLite, a write transaction takes the whole database).
	running, waiting, err := q.Pending(ctx, app)
	if err != nil {
		return nil, err
	}
	if running != nil {
		return nil, &BusyError{App: app, ID: running.ID, Owner: running.Owner, Expires: running.Expires}
	}
	if len(waiting) == 0 {
		return nil, ErrEmpty
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
		if len(running) > 0 {
			r := running[0]
			return &BusyError{App: app, ID: r.ID, Owner: r.Owner, Expires: r.Expires}
		}
		next, err := q.jobs(ctx, tx, `WHERE app = ? AND state = 'waiting' ORDER BY seq LIMIT 1`, app)
		if err != nil {
			return err
		}
		if len(next) == 0 {
			return ErrEmpty
		}
		j := next[0]
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
	if errors.Is(err, ErrEmpty) || errors.As(err, &busy) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("app %s: claim: %w", app, err)
	}
	return claim, nil
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
// or lost the database for longer than the lease) as interrupted, and
// returns them, each to exactly one caller however many deployers expire
// at once: that caller records the interruption (history, log). The apps'
// next jobs can be claimed from then on.
func (q *Queue) Expire(ctx context.Context) ([]*Job, error) {
	rows, err := q.db.QueryContext(ctx, q.d.sql(`UPDATE queue_jobs SET state = 'interrupted', finished_ms = NOW_MS
		WHERE state = 'running' AND lease_until_ms < NOW_MS
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

// Prune deletes the finished and interrupted jobs and the delivery ids
// older than age (database clock), and returns how many rows went. Keep
// delivery ids longer than a forge redelivers (hours; a day is plenty).
func (q *Queue) Prune(ctx context.Context, age time.Duration) (int64, error) {
	var n int64
	err := q.tx(ctx, func(tx *sql.Tx) error {
		for _, stmt := range []string{
			`DELETE FROM queue_jobs WHERE state IN ('finished', 'interrupted') AND finished_ms < NOW_MS - ?`,
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
