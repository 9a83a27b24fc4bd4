package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

const deploymentColumns = `id, app, action, triggered_by, provider, delivery_id, actor, branch, requested_commit,
	requested_release, requested_hosts, payload_commit, deployed_commit, release_name, status, queued, started,
	finished, error, branch_tip, node`

// Deployments returns the deployments f selects, newest first, without
// their hosts.
func (r *records) Deployments(ctx context.Context, f deploy.Filter) ([]*deploy.Deployment, error) {
	var where []string
	var args []any
	if f.App != "" {
		where, args = append(where, `app = ?`), append(args, f.App)
	}
	if f.Status != "" {
		where, args = append(where, `status = ?`), append(args, string(f.Status))
	}
	if f.Commit != "" {
		where = append(where, `(substr(deployed_commit, 1, ?) = ? OR (deployed_commit = '' AND substr(requested_commit, 1, ?) = ?))`)
		args = append(args, len(f.Commit), f.Commit, len(f.Commit), f.Commit)
	}
	if !f.Since.IsZero() {
		where, args = append(where, `queued >= ?`), append(args, fmtTime(f.Since))
	}
	if f.BeforeID != "" {
		where, args = append(where, `(queued, id) < (?, ?)`), append(args, fmtTime(f.BeforeQueued), f.BeforeID)
	}
	q := `SELECT ` + deploymentColumns + ` FROM deployments`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY queued DESC, id DESC`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := r.db.QueryContext(ctx, r.q(q), args...)
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	defer rows.Close()
	var out []*deploy.Deployment
	for rows.Next() {
		d, err := scanDeployment(rows)
		if err != nil {
			return nil, fmt.Errorf("list deployments: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	return out, nil
}

// Deployment returns one deployment with its hosts and their steps; false
// when there is none with that id.
func (r *records) Deployment(ctx context.Context, id string) (*deploy.Deployment, bool, error) {
	d, err := scanDeployment(r.db.QueryRowContext(ctx, r.q(`SELECT `+deploymentColumns+` FROM deployments WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("deployment %s: %w", id, err)
	}
	if err := r.readHosts(ctx, d); err != nil {
		return nil, false, fmt.Errorf("deployment %s: %w", id, err)
	}
	return d, true, nil
}

func (r *records) readHosts(ctx context.Context, d *deploy.Deployment) error {
	rows, err := r.db.QueryContext(ctx, r.q(`SELECT host, status, duration_s FROM deployment_hosts
		WHERE deployment_id = ? ORDER BY idx`), d.ID)
	if err != nil {
		return err
	}
	byName := map[string]*deploy.HostResult{}
	for rows.Next() {
		var name, status string
		var dur float64
		if err := rows.Scan(&name, &status, &dur); err != nil {
			rows.Close()
			return err
		}
		h := &deploy.HostResult{Host: deploy.Host{Name: name}, Status: deploy.Status(status), Duration: seconds(dur)}
		d.Hosts = append(d.Hosts, h)
		byName[name] = h
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = r.db.QueryContext(ctx, r.q(`SELECT host, step, status, started, duration_s, error, output_tail FROM steps
		WHERE deployment_id = ? ORDER BY host, idx`), d.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var host, errText string
		var st deploy.StepResult
		var started sql.NullString
		var dur float64
		if err := rows.Scan(&host, &st.Name, &st.Status, &started, &dur, &errText, &st.Output); err != nil {
			return err
		}
		if st.Started, err = parseTime(started); err != nil {
			return err
		}
		st.Duration = seconds(dur)
		if errText != "" {
			st.Err = errors.New(errText)
		}
		h := byName[host]
		if h == nil {
			// A step heard of before its host's row was written.
			h = &deploy.HostResult{Host: deploy.Host{Name: host}, Status: deploy.StatusRunning}
			d.Hosts = append(d.Hosts, h)
			byName[host] = h
		}
		h.Steps = append(h.Steps, st)
	}
	return rows.Err()
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func scanDeployment(row scanner) (*deploy.Deployment, error) {
	var d deploy.Deployment
	var hosts, errText string
	var queued string
	var started, finished sql.NullString
	r := &d.Request
	err := row.Scan(&d.ID, &d.App, &d.Action, &r.Trigger, &r.Provider, &r.DeliveryID, &r.Actor, &r.Push.Branch,
		&r.Push.Commit, &r.Release, &hosts, &r.PayloadCommit, &d.Release.Commit, &d.ReleaseName, &d.Status,
		&queued, &started, &finished, &errText, &d.BranchTip, &d.Node)
	if err != nil {
		return nil, err
	}
	if d.Action != deploy.ActionDeploy {
		r.Action = d.Action // NewDeployment leaves a deploy's empty
	}
	if d.Release.Commit != "" {
		d.Release.Branch = r.Push.Branch
	}
	if hosts != "" {
		r.Hosts = strings.Split(hosts, ",")
	}
	if errText != "" {
		d.Err = errors.New(errText)
	}
	if d.Queued, err = time.Parse(timeLayout, queued); err != nil {
		return nil, err
	}
	if d.Started, err = parseTime(started); err != nil {
		return nil, err
	}
	if d.Finished, err = parseTime(finished); err != nil {
		return nil, err
	}
	return &d, nil
}

// seconds turns a stored duration back into one, to the nanosecond.
func seconds(s float64) time.Duration { return time.Duration(math.Round(s * 1e9)) }
