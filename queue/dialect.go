package queue

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pushdeploy/pushdeploy/history"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// dialect is what differs between SQLite and PostgreSQL. The statements are
// written once, with ? for parameters and two words the dialect replaces:
// NOW_MS (the database's clock in Unix milliseconds) and FOR_UPDATE (a row
// lock; SQLite's write transaction already holds the whole database).
type dialect struct {
	name      string
	dollar    bool // parameters are $1, $2 … (PostgreSQL)
	nowMS     string
	forUpdate string
	// migrate brings the queue's tables up to date.
	migrate func(ctx context.Context, db *sql.DB) error
}

var (
	sqliteDialect = &dialect{
		name:    "sqlite",
		nowMS:   `CAST(unixepoch('subsec') * 1000 AS INTEGER)`,
		migrate: migrateSQLite,
	}
	postgresDialect = &dialect{
		name:   "postgres",
		dollar: true,
		// clock_timestamp, not now(): now() is when the transaction began,
		// which may be long before the lock it waited for was granted.
		nowMS:     `CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT)`,
		forUpdate: `FOR UPDATE`,
		// One schema table and one migration lock for every component
		// that keeps tables in the database.
		migrate: func(ctx context.Context, db *sql.DB) error {
			return history.MigratePostgres(ctx, db, "queue", migrations)
		},
	}
)

// sql renders a statement for the dialect.
func (d *dialect) sql(s string) string {
	s = strings.ReplaceAll(s, "NOW_MS", d.nowMS)
	s = strings.ReplaceAll(s, "FOR_UPDATE", d.forUpdate)
	if !d.dollar {
		return s
	}
	return history.Dollars(s)
}

// OpenSQLite opens (creating it, mode 0600, when needed) the queue in the
// SQLite database file path and brings its schema up to date. The file may
// be the history's: the queue's tables are its own (queue_*).
func OpenSQLite(ctx context.Context, path string, opts Options) (*Queue, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("queue database: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("queue database: %w", err)
	}
	// FULL: a commit survives the machine losing power, as the 202 that
	// follows promises (NORMAL could lose the last transactions).
	db, err := sql.Open("sqlite", history.SQLiteDSN(path, "FULL", 10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("queue database %s: %w", path, err)
	}
	qu, err := newQueue(ctx, db, sqliteDialect, opts)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("queue database %s: %w", path, err)
	}
	return qu, nil
}

// OpenPostgres connects to the PostgreSQL database at dbURL
// (postgres://user:password@host/db?…) and brings the queue's schema up to
// date; several deployers may open the same database at the same moment.
// The queue's tables (queue_*) live beside the history's, and its schema
// version in the same table (history.SchemaTable, component "queue").
// Errors name the database without its password.
func OpenPostgres(ctx context.Context, dbURL string, opts Options) (*Queue, error) {
	name := history.RedactURL(dbURL)
	db, _, err := history.PostgresDB(dbURL, 10)
	if err != nil {
		return nil, fmt.Errorf("queue database %s: %w", name, err)
	}
	q, err := newQueue(ctx, db, postgresDialect, opts)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("queue database %s: %w", name, err)
	}
	return q, nil
}

// migrations take the schema from version i to i+1 (queue_schema.version).
// Append only: a released migration is never edited. The same statements
// run on both engines: times are Unix milliseconds (BIGINT), by the
// database's clock.
var migrations = []string{
	// 1: apps (the lock row, the order of jobs, the fencing tokens), jobs,
	// delivery ids.
	`CREATE TABLE queue_apps (
		app   TEXT PRIMARY KEY,
		seq   BIGINT NOT NULL DEFAULT 0,
		fence BIGINT NOT NULL DEFAULT 0
	);
	CREATE TABLE queue_jobs (
		id             TEXT PRIMARY KEY,
		app            TEXT NOT NULL,
		seq            BIGINT NOT NULL,
		action         TEXT NOT NULL,
		request        TEXT NOT NULL,
		state          TEXT NOT NULL,
		queued_ms      BIGINT NOT NULL,
		started_ms     BIGINT,
		finished_ms    BIGINT,
		owner          TEXT NOT NULL DEFAULT '',
		token          BIGINT NOT NULL DEFAULT 0,
		lease_until_ms BIGINT,
		outcome        TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX queue_jobs_app_state ON queue_jobs (app, state, seq);
	CREATE UNIQUE INDEX queue_jobs_one_running ON queue_jobs (app) WHERE state = 'running';
	CREATE TABLE queue_deliveries (
		app         TEXT NOT NULL,
		provider    TEXT NOT NULL,
		delivery_id TEXT NOT NULL,
		job_id      TEXT NOT NULL,
		created_ms  BIGINT NOT NULL,
		PRIMARY KEY (app, provider, delivery_id)
	);
	CREATE INDEX queue_deliveries_created ON queue_deliveries (created_ms);`,
	// 2: jobs that only one owner runs (a command line's deploy).
	`ALTER TABLE queue_jobs ADD COLUMN reserved_by TEXT NOT NULL DEFAULT ''`,
	// 3: turns (TakeTurn): which deployer polls an app's branch.
	`CREATE TABLE queue_turns (
		turn     TEXT PRIMARY KEY,
		owner    TEXT NOT NULL,
		until_ms BIGINT NOT NULL
	)`,
}

// migrateSQLite brings the queue's tables in a SQLite file up to date
// (their version in queue_schema).
func migrateSQLite(ctx context.Context, db *sql.DB) error {
	return history.MigrateSQLite(ctx, db, "queue", migrations)
}
