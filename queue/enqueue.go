package queue

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// Enqueue adds a job for req to app's queue and commits it before it
// returns, as deploy.Worker.Submit does in memory:
//
//   - a delivery id (req.Provider, req.DeliveryID) already seen for the
//     app, by any deployer, answers Duplicate with the job it made;
//   - a deploy that would do exactly what a waiting one does (same push,
//     same hosts; no rollback waiting after it) joins it: Coalesced, and
//     the waiting job takes req's payload commit and actor;
//   - otherwise a new waiting job with the caller's id (from
//     deploy.NewDeployment): Queued. ErrQueueFull when MaxQueue wait.
//
// The ticket's Commit is left for the caller to fill.
func (q *Queue) Enqueue(ctx context.Context, app, id string, req deploy.Request) (deploy.Ticket, error) {
	if err := deploy.ValidDeliveryID(req.DeliveryID); err != nil {
		return deploy.Ticket{}, &deploy.RequestError{Msg: err.Error()}
	}
	if req.Action == "" {
		req.Action = deploy.ActionDeploy
	}
	if len(req.Hosts) == 0 {
		req.Hosts = nil // as slices.Equal sees it: nil and empty are the same
	}
	var ticket deploy.Ticket
	err := q.tx(ctx, func(tx *sql.Tx) error {
		seq, _, err := q.lockApp(ctx, tx, app)
		if err != nil {
			return err
		}
		if req.DeliveryID != "" {
			var jobID string
			err := tx.QueryRowContext(ctx, q.d.sql(`SELECT job_id FROM queue_deliveries
				WHERE app = ? AND provider = ? AND delivery_id = ?`), app, req.Provider, req.DeliveryID).Scan(&jobID)
			if err == nil {
				ticket = deploy.Ticket{ID: jobID, Status: Duplicate}
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("delivery id: %w", err)
			}
		}
		waiting, err := q.waiting(ctx, tx, app)
		if err != nil {
			return err
		}
		if j := waitingFor(waiting, req); j != nil {
			if req.PayloadCommit != "" {
				j.Request.PayloadCommit, j.Request.Actor = req.PayloadCommit, req.Actor
				if err := q.setRequest(ctx, tx, j); err != nil {
					return err
				}
			}
			ticket = deploy.Ticket{ID: j.ID, Status: Coalesced}
		} else {
			if len(waiting) >= q.max {
				return ErrQueueFull
			}
			if err := q.insertJob(ctx, tx, app, id, seq+1, req); err != nil {
				return err
			}
			ticket = deploy.Ticket{ID: id, Status: Queued}
		}
		if req.DeliveryID == "" {
			return nil
		}
		_, err = tx.ExecContext(ctx, q.d.sql(`INSERT INTO queue_deliveries (app, provider, delivery_id, job_id, created_ms)
			VALUES (?, ?, ?, ?, NOW_MS)`), app, req.Provider, req.DeliveryID, ticket.ID)
		if err != nil {
			return fmt.Errorf("delivery id: %w", err)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrQueueFull) {
			return deploy.Ticket{}, err
		}
		return deploy.Ticket{}, fmt.Errorf("app %s: enqueue: %w", app, err)
	}
	return ticket, nil
}

// lockApp makes sure app has its row and locks it until the transaction
// ends: enqueues and claims of one app take turns.
func (q *Queue) lockApp(ctx context.Context, tx *sql.Tx, app string) (seq, fence int64, err error) {
	if _, err := tx.ExecContext(ctx, q.d.sql(`INSERT INTO queue_apps (app) VALUES (?) ON CONFLICT (app) DO NOTHING`), app); err != nil {
		return 0, 0, fmt.Errorf("lock app: %w", err)
	}
	err = tx.QueryRowContext(ctx, q.d.sql(`SELECT seq, fence FROM queue_apps WHERE app = ? FOR_UPDATE`), app).Scan(&seq, &fence)
	if err != nil {
		return 0, 0, fmt.Errorf("lock app: %w", err)
	}
	return seq, fence, nil
}

// waiting lists app's waiting jobs, oldest first.
func (q *Queue) waiting(ctx context.Context, tx querier, app string) ([]*Job, error) {
	return q.jobs(ctx, tx, `WHERE app = ? AND state = 'waiting' ORDER BY seq`, app)
}

// waitingFor is deploy.Worker's rule: the waiting job that would do
// exactly what req asks (same push, same hosts), looking from the newest
// back to the newest rollback. Rollbacks never coalesce. A job reserved
// for a command line (Wait) is a barrier like a rollback: it runs its own
// request, and nothing asked for after it may overtake it.
func waitingFor(waiting []*Job, req deploy.Request) *Job {
	if req.Action == deploy.ActionRollback {
		return nil
	}
	for i := len(waiting) - 1; i >= 0; i-- {
		j := waiting[i]
		if j.Request.Action == deploy.ActionRollback || j.ReservedBy != "" {
			return nil
		}
		if r := j.Request; r.Push == req.Push && slices.Equal(r.Hosts, req.Hosts) {
			return j
		}
	}
	return nil
}

func (q *Queue) insertJob(ctx context.Context, tx *sql.Tx, app, id string, seq int64, req deploy.Request) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	_, err = tx.ExecContext(ctx, q.d.sql(`INSERT INTO queue_jobs (id, app, seq, action, request, state, queued_ms)
		VALUES (?, ?, ?, ?, ?, 'waiting', NOW_MS)`), id, app, seq, string(req.Action), string(body))
	if err != nil {
		return fmt.Errorf("job %s: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, q.d.sql(`UPDATE queue_apps SET seq = ? WHERE app = ?`), seq, app); err != nil {
		return fmt.Errorf("job %s: %w", id, err)
	}
	return nil
}

func (q *Queue) setRequest(ctx context.Context, tx *sql.Tx, j *Job) error {
	body, err := json.Marshal(j.Request)
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	if _, err := tx.ExecContext(ctx, q.d.sql(`UPDATE queue_jobs SET request = ? WHERE id = ?`), string(body), j.ID); err != nil {
		return fmt.Errorf("job %s: %w", j.ID, err)
	}
	return nil
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

const jobColumns = `id, app, request, state, queued_ms, owner, token, lease_until_ms, outcome, reserved_by`

// jobs reads the jobs that where (a WHERE … ORDER BY clause) selects.
func (q *Queue) jobs(ctx context.Context, db querier, where string, args ...any) ([]*Job, error) {
	rows, err := db.QueryContext(ctx, q.d.sql(`SELECT `+jobColumns+` FROM queue_jobs `+where), args...)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return scanJobs(rows)
}

func scanJobs(rows *sql.Rows) ([]*Job, error) {
	defer rows.Close()
	var out []*Job
	for rows.Next() {
		var (
			j        Job
			body     string
			queued   int64
			leaseEnd sql.NullInt64
		)
		if err := rows.Scan(&j.ID, &j.App, &body, &j.State, &queued, &j.Owner, &j.Token, &leaseEnd, &j.Outcome, &j.ReservedBy); err != nil {
			return nil, fmt.Errorf("jobs: %w", err)
		}
		if err := json.Unmarshal([]byte(body), &j.Request); err != nil {
			return nil, fmt.Errorf("job %s: request: %w", j.ID, err)
		}
		j.Queued = msTime(sql.NullInt64{Int64: queued, Valid: true})
		j.Expires = msTime(leaseEnd)
		out = append(out, &j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return out, nil
}
