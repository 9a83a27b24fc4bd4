package history

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// Save writes a snapshot of dep, owned by o: the deployment's row, and its
// hosts and steps as the snapshot has them (replacing what was there).
func (r *records) Save(ctx context.Context, dep *deploy.Deployment, o Owner) error {
	err := r.tx(ctx, func(tx *sql.Tx) error {
		written, err := r.upsertDeployment(ctx, tx, dep, o)
		if err != nil || !written {
			return err
		}
		for _, table := range []string{"deployment_hosts", "steps"} {
			if _, err := tx.ExecContext(ctx, r.q(`DELETE FROM `+table+` WHERE deployment_id = ?`), dep.ID); err != nil {
				return err
			}
		}
		for i, h := range dep.Hosts {
			name := h.Host.String()
			if err := r.upsertHost(ctx, tx, dep.ID, name, i, h.Status, h.Duration); err != nil {
				return err
			}
			for j, st := range h.Steps {
				if err := r.upsertStep(ctx, tx, dep.ID, name, j, st); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save deployment %s: %w", dep.ID, err)
	}
	return nil
}

// upsertDeployment writes d's row; written is false when nothing may go
// back: the record has d as started and d is a queued snapshot (the
// deployer that queued it writes it after the one that runs it did), or
// the record has d finished by another owner (another deployer took over
// from o, which lost its claim, and recorded the interruption: o's late
// write, once the database is back, must not replace that outcome).
func (r *records) upsertDeployment(ctx context.Context, tx *sql.Tx, d *deploy.Deployment, o Owner) (written bool, err error) {
	errText := ""
	if d.Err != nil {
		errText = d.Err.Error()
	}
	req := d.Request
	res, err := tx.ExecContext(ctx, r.q(`INSERT INTO deployments (id, app, action, triggered_by, provider, delivery_id, actor, branch,
			requested_commit, requested_release, requested_hosts, payload_commit, deployed_commit, release_name,
			status, queued, started, finished, error, owner_pid, owner_host, owner_start, branch_tip, node)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET app = excluded.app, action = excluded.action, triggered_by = excluded.triggered_by,
			provider = excluded.provider, delivery_id = excluded.delivery_id, actor = excluded.actor,
			branch = excluded.branch, requested_commit = excluded.requested_commit,
			requested_release = excluded.requested_release, requested_hosts = excluded.requested_hosts,
			payload_commit = excluded.payload_commit, deployed_commit = excluded.deployed_commit,
			release_name = excluded.release_name, status = excluded.status, queued = excluded.queued,
			started = excluded.started, finished = excluded.finished, error = excluded.error,
			owner_pid = excluded.owner_pid, owner_host = excluded.owner_host, owner_start = excluded.owner_start,
			branch_tip = excluded.branch_tip, node = excluded.node
		WHERE (excluded.status <> 'queued' OR deployments.status = 'queued')
			AND (deployments.finished IS NULL OR (deployments.owner_pid = excluded.owner_pid
				AND deployments.owner_host = excluded.owner_host AND deployments.owner_start = excluded.owner_start))`),
		d.ID, appOf(d), string(d.Action), string(req.Trigger), req.Provider, req.DeliveryID, req.Actor, req.Push.Branch,
		req.Push.Commit, req.Release, strings.Join(req.Hosts, ","), req.PayloadCommit, d.Release.Commit, d.ReleaseName,
		string(d.Status), fmtTime(d.Queued), nullTime(d.Started), nullTime(d.Finished), errText,
		o.PID, o.Host, o.Start, d.BranchTip, d.Node)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// appOf is the app a deployment is recorded under: a deployment made
// without a worker (the command line with one app) has none, and belongs
// to the one app, DefaultApp.
func appOf(d *deploy.Deployment) string {
	if d.App == "" {
		return deploy.DefaultApp
	}
	return d.App
}

func (r *records) upsertHost(ctx context.Context, tx *sql.Tx, id, host string, idx int, status deploy.Status, dur time.Duration) error {
	_, err := tx.ExecContext(ctx, r.q(`INSERT INTO deployment_hosts (deployment_id, host, idx, status, duration_s)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (deployment_id, host) DO UPDATE SET status = excluded.status,
			duration_s = CASE WHEN excluded.duration_s > 0 THEN excluded.duration_s ELSE deployment_hosts.duration_s END`),
		id, host, idx, string(status), dur.Seconds())
	return err
}

func (r *records) upsertStep(ctx context.Context, tx *sql.Tx, id, host string, idx int, st deploy.StepResult) error {
	errText := ""
	if st.Err != nil {
		errText = st.Err.Error()
	}
	_, err := tx.ExecContext(ctx, r.q(`INSERT INTO steps (deployment_id, host, idx, step, status, started, duration_s, error, output_tail)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (deployment_id, host, idx) DO UPDATE SET step = excluded.step, status = excluded.status,
			started = COALESCE(excluded.started, steps.started), duration_s = excluded.duration_s,
			error = excluded.error, output_tail = CASE WHEN excluded.output_tail <> '' THEN excluded.output_tail ELSE steps.output_tail END`),
		id, host, idx, st.Name, string(st.Status), nullTime(st.Started), st.Duration.Seconds(), errText, st.Output)
	return err
}

// SaveHost records a host's status in a deployment; idx is its place in
// the deployment's host list.
// A deployment another owner finished is left as it is (see
// upsertDeployment).
func (r *records) SaveHost(ctx context.Context, id, host string, idx int, status deploy.Status) error {
	err := r.tx(ctx, func(tx *sql.Tx) error {
		if other, err := r.finishedByOther(ctx, tx, id); err != nil || other {
			return err
		}
		return r.upsertHost(ctx, tx, id, host, idx, status, 0)
	})
	if err != nil {
		return fmt.Errorf("save host %s of deployment %s: %w", host, id, err)
	}
	return nil
}

// SaveStep records step number idx of host in a deployment, as it starts
// or ends. A deployment another owner finished is left as it is.
func (r *records) SaveStep(ctx context.Context, id, host string, idx int, st deploy.StepResult) error {
	err := r.tx(ctx, func(tx *sql.Tx) error {
		if other, err := r.finishedByOther(ctx, tx, id); err != nil || other {
			return err
		}
		return r.upsertStep(ctx, tx, id, host, idx, st)
	})
	if err != nil {
		return fmt.Errorf("save step %s on %s of deployment %s: %w", st.Name, host, id, err)
	}
	return nil
}

// finishedByOther reports whether the record has deployment id finished
// by an owner other than this store's (a deployer that took over from
// this one, which lost its claim).
func (r *records) finishedByOther(ctx context.Context, tx *sql.Tx, id string) (bool, error) {
	self := r.opts.Self
	var n int
	err := tx.QueryRowContext(ctx, r.q(`SELECT COUNT(*) FROM deployments WHERE id = ? AND finished IS NOT NULL
		AND NOT (owner_pid = ? AND owner_host = ? AND owner_start = ?)`), id, self.PID, self.Host, self.Start).Scan(&n)
	return n > 0, err
}
