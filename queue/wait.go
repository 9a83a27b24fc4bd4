package queue

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// The command line (pushdeploy deploy, rollback) runs its deployment
// itself, with the keys of whoever runs it, and takes part in the queue
// like a deployer: Wait queues the deployment and claims it when its turn
// comes; ClaimNow (--no-wait) claims at once or says who holds the app.

// Wait adds a job for req that only this Queue's Owner will run (a
// reserved job: no deployer claims it, nothing coalesces into it or
// overtakes it), waits until it is the app's oldest waiting job and no job
// of the app runs, and claims it. busy, when not nil, hears each new
// holder of the app while Wait waits (to tell the user). While waiting,
// the reservation is renewed like a claim; a command line that goes away
// leaves it to Expire. When ctx ends first the job is withdrawn
// (cancelled) and Wait returns ctx's error.
func (q *Queue) Wait(ctx context.Context, app, id string, req deploy.Request, busy func(*BusyError)) (*Claim, error) {
	if err := q.reserve(ctx, app, id, req); err != nil {
		return nil, err
	}
	poll := min(time.Second, q.lease/3)
	var last BusyError
	for {
		c, err := q.claim(ctx, app, id)
		var be *BusyError
		switch {
		case err == nil:
			return c, nil
		case errors.As(err, &be):
			if busy != nil && (be.ID != last.ID || be.Owner != last.Owner) {
				busy(be)
			}
			last = *be
		case errors.Is(err, errNotYet):
		default:
			return nil, errors.Join(err, q.withdraw(ctx, id))
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(ctx.Err(), q.withdraw(ctx, id))
		case <-time.After(poll):
		}
		if err := q.renewReservation(ctx, id); err != nil {
			return nil, err
		}
	}
}

// reserve inserts id, reserved for this Queue's owner, at the end of
// app's queue.
func (q *Queue) reserve(ctx context.Context, app, id string, req deploy.Request) error {
	if req.Action == "" {
		req.Action = deploy.ActionDeploy
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	err = q.tx(ctx, func(tx *sql.Tx) error {
		seq, _, err := q.lockApp(ctx, tx, app)
		if err != nil {
			return err
		}
		waiting, err := q.waiting(ctx, tx, app)
		if err != nil {
			return err
		}
		if len(waiting) >= q.max {
			return ErrQueueFull
		}
		_, err = tx.ExecContext(ctx, q.d.sql(`INSERT INTO queue_jobs
			(id, app, seq, action, request, state, queued_ms, reserved_by, lease_until_ms)
			VALUES (?, ?, ?, ?, ?, 'waiting', NOW_MS, ?, NOW_MS + ?)`),
			id, app, seq+1, string(req.Action), string(body), q.owner, q.lease.Milliseconds())
		if err != nil {
			return fmt.Errorf("job %s: %w", id, err)
		}
		_, err = tx.ExecContext(ctx, q.d.sql(`UPDATE queue_apps SET seq = ? WHERE app = ?`), seq+1, app)
		return err
	})
	if errors.Is(err, ErrQueueFull) {
		return err
	}
	if err != nil {
		return fmt.Errorf("app %s: enqueue: %w", app, err)
	}
	return nil
}

// renewReservation extends the lease of a reserved job that waits;
// ErrLost when Expire took it (the reservation was not renewed in time).
func (q *Queue) renewReservation(ctx context.Context, id string) error {
	res, err := q.db.ExecContext(ctx, q.d.sql(`UPDATE queue_jobs SET lease_until_ms = NOW_MS + ?
		WHERE id = ? AND state = 'waiting' AND reserved_by = ?`), q.lease.Milliseconds(), id, q.owner)
	if err != nil {
		return fmt.Errorf("deployment %s: renew reservation: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return errors.Join(fmt.Errorf("deployment %s: %w", id, ErrLost), err)
	}
	return nil
}

// withdraw cancels a reserved job that has not started, even once ctx
// has ended.
func (q *Queue) withdraw(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, err := q.db.ExecContext(ctx, q.d.sql(`UPDATE queue_jobs SET state = 'cancelled', finished_ms = NOW_MS
		WHERE id = ? AND state = 'waiting' AND reserved_by = ?`), id, q.owner)
	if err != nil {
		return fmt.Errorf("deployment %s: withdraw: %w", id, err)
	}
	return nil
}

// ClaimNow adds a job for req and claims it at once, for this Queue's
// Owner, when no job of app runs or waits; otherwise it adds nothing and
// returns a *BusyError naming the running job (or the oldest waiting one,
// Waiting set) and its deployer.
func (q *Queue) ClaimNow(ctx context.Context, app, id string, req deploy.Request) (*Claim, error) {
	if req.Action == "" {
		req.Action = deploy.ActionDeploy
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	sent := time.Now()
	var claim *Claim
	err = q.tx(ctx, func(tx *sql.Tx) error {
		seq, fence, err := q.lockApp(ctx, tx, app)
		if err != nil {
			return err
		}
		jobs, err := q.jobs(ctx, tx, `WHERE app = ? AND state IN ('running', 'waiting') ORDER BY seq LIMIT 2`, app)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if j.State == StateRunning {
				return &BusyError{App: app, ID: j.ID, Owner: j.Owner, Expires: j.Expires}
			}
		}
		if len(jobs) > 0 {
			return &BusyError{App: app, ID: jobs[0].ID, Owner: jobs[0].ReservedBy, Expires: jobs[0].Expires, Waiting: true}
		}
		var leaseEnd, queued int64
		err = tx.QueryRowContext(ctx, q.d.sql(`INSERT INTO queue_jobs
			(id, app, seq, action, request, state, queued_ms, started_ms, owner, token, lease_until_ms, reserved_by)
			VALUES (?, ?, ?, ?, ?, 'running', NOW_MS, NOW_MS, ?, ?, NOW_MS + ?, ?)
			RETURNING lease_until_ms, queued_ms`),
			id, app, seq+1, string(req.Action), string(body), q.owner, fence+1, q.lease.Milliseconds(), q.owner).Scan(&leaseEnd, &queued)
		if err != nil {
			return fmt.Errorf("job %s: %w", id, err)
		}
		if _, err := tx.ExecContext(ctx, q.d.sql(`UPDATE queue_apps SET seq = ?, fence = ? WHERE app = ?`), seq+1, fence+1, app); err != nil {
			return err
		}
		claim = &Claim{Job: Job{
			ID: id, App: app, Request: req, State: StateRunning, Queued: time.UnixMilli(queued).UTC(),
			Owner: q.owner, Token: fence + 1, Expires: time.UnixMilli(leaseEnd).UTC(), ReservedBy: q.owner,
		}, renewed: sent}
		return nil
	})
	var busy *BusyError
	if errors.As(err, &busy) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("app %s: claim: %w", app, err)
	}
	return claim, nil
}
