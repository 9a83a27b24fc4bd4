package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// migrations bring the schema from one version to the next: migrations[i]
// takes a database at version i (PRAGMA user_version) to version i+1.
// Append only: a released migration is never edited, since databases out
// there have already run it.
//
// Column names avoid SQL keywords (trigger, commit, release), so that
// sqlite3 and psql users need no quoting.
//
// PostgreSQL runs the same list (postgresMigrations), its REAL read as a
// double: each step must be SQL both engines speak. Times are text (see
// timeLayout) on both.
var migrations = []string{
	// 1: deployments and their steps.
	`CREATE TABLE deployments (
		id                TEXT PRIMARY KEY,
		action            TEXT NOT NULL,
		triggered_by      TEXT NOT NULL,
		provider          TEXT NOT NULL DEFAULT '',
		delivery_id       TEXT NOT NULL DEFAULT '',
		actor             TEXT NOT NULL DEFAULT '',
		branch            TEXT NOT NULL DEFAULT '',
		requested_commit  TEXT NOT NULL DEFAULT '',
		requested_release TEXT NOT NULL DEFAULT '',
		requested_hosts   TEXT NOT NULL DEFAULT '',
		payload_commit    TEXT NOT NULL DEFAULT '',
		deployed_commit   TEXT NOT NULL DEFAULT '',
		release_name      TEXT NOT NULL DEFAULT '',
		status            TEXT NOT NULL,
		queued            TEXT NOT NULL,
		started           TEXT,
		finished          TEXT,
		error             TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX deployments_newest ON deployments (queued DESC, id DESC);
	CREATE TABLE steps (
		deployment_id TEXT NOT NULL,
		host          TEXT NOT NULL,
		idx           INTEGER NOT NULL,
		step          TEXT NOT NULL,
		status        TEXT NOT NULL,
		started       TEXT,
		duration_s    REAL NOT NULL DEFAULT 0,
		error         TEXT NOT NULL DEFAULT '',
		output_tail   TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (deployment_id, host, idx)
	);`,
	// 2: each host's status per deployment, the owner of each deployment
	// (to tell an interrupted one from one another process still runs),
	// and the health probe's row.
	`CREATE TABLE deployment_hosts (
		deployment_id TEXT NOT NULL,
		host          TEXT NOT NULL,
		idx           INTEGER NOT NULL,
		status        TEXT NOT NULL,
		duration_s    REAL NOT NULL DEFAULT 0,
		PRIMARY KEY (deployment_id, host)
	);
	ALTER TABLE deployments ADD COLUMN owner_pid INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE deployments ADD COLUMN owner_host TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN owner_start TEXT NOT NULL DEFAULT '';
	CREATE INDEX deployments_unfinished ON deployments (status) WHERE finished IS NULL;
	CREATE TABLE health (id INTEGER PRIMARY KEY, checked TEXT NOT NULL);`,
	// 3: the app each deployment belongs to (several apps in one
	// deployer); the rows of before are the one app's, "default". The
	// second index serves promotion's look-up of a commit in an app.
	`ALTER TABLE deployments ADD COLUMN app TEXT NOT NULL DEFAULT 'default';
	CREATE INDEX deployments_app_newest ON deployments (app, queued DESC, id DESC);
	CREATE INDEX deployments_app_commit ON deployments (app, deployed_commit);`,
	// 4: the commit the branch pointed to when each deployment started
	// (polling, DEPLOY_POLL_INTERVAL, deploys only another one); empty
	// for the rows of before, and when it could not be read.
	`ALTER TABLE deployments ADD COLUMN branch_tip TEXT NOT NULL DEFAULT '';`,
	// 5: the deployer that ran each deployment (DEPLOY_NODE_NAME, else
	// HOSTNAME:PID), for several deployers on one database; empty for
	// the rows of before, and for a deployment that never started.
	`ALTER TABLE deployments ADD COLUMN node TEXT NOT NULL DEFAULT '';`,
}

// ErrNewerSchema is a database written by a newer pushdeploy.
var ErrNewerSchema = errors.New("the history database was written by a newer pushdeploy")

// migrate runs the migrations the database has not run yet, all in one
// transaction that holds the write lock: two processes opening the same
// new database at once do not both migrate it.
func migrate(ctx context.Context, db *sql.DB, steps []string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	var version int
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return fmt.Errorf("migrate: schema version: %w", err)
	}
	if version > len(steps) {
		return fmt.Errorf("%w: schema version %d, this one knows up to %d", ErrNewerSchema, version, len(steps))
	}
	for v := version; v < len(steps); v++ {
		if _, err := tx.ExecContext(ctx, steps[v]); err != nil {
			return fmt.Errorf("migrate to schema version %d: %w", v+1, err)
		}
	}
	if version == len(steps) {
		return nil
	}
	// PRAGMA takes no bound parameters; len(steps) is ours.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, len(steps))); err != nil {
		return fmt.Errorf("migrate: set schema version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
