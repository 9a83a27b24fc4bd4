package history

import (
	"context"
	"fmt"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// HostsDeployed returns the names of the hosts (sorted, each once) on which
// a deploy of commit (the full hash) in app ended succeeded: promotion
// (DEPLOY_PROMOTE_FROM) compares them with the source app's hosts. Only
// finished deployments count, since a running one may still send its
// hosts back (DEPLOY_ROLLBACK_ON_FAILURE=all); a host of a deployment that
// failed later, on another host, counts when it kept the commit
// (succeeded, not rolled back). Rollbacks do not count.
func (r *records) HostsDeployed(ctx context.Context, app, commit string) ([]string, error) {
	rows, err := r.db.QueryContext(ctx, r.q(`SELECT DISTINCT h.host FROM deployment_hosts h
		JOIN deployments d ON d.id = h.deployment_id
		WHERE d.app = ? AND d.deployed_commit = ? AND d.action <> ? AND d.status NOT IN (?, ?) AND h.status = ?
		ORDER BY h.host`),
		app, commit, string(deploy.ActionRollback), string(deploy.StatusQueued), string(deploy.StatusRunning), string(deploy.StatusSucceeded))
	if err != nil {
		return nil, fmt.Errorf("hosts of app %s that deployed %s: %w", app, commit, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, fmt.Errorf("hosts of app %s that deployed %s: %w", app, commit, err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("hosts of app %s that deployed %s: %w", app, commit, err)
	}
	return out, nil
}

// Latest returns the newest deployment (by queued time, then id) of app,
// without its hosts, whatever its status; false when app has none.
func (r *records) Latest(ctx context.Context, app string) (*deploy.Deployment, bool, error) {
	list, err := r.Deployments(ctx, deploy.Filter{App: app, Limit: 1})
	if err != nil {
		return nil, false, fmt.Errorf("latest deployment of app %s: %w", app, err)
	}
	if len(list) == 0 {
		return nil, false, nil
	}
	return list[0], true, nil
}
