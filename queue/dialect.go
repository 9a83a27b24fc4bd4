package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
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
	// lock serialises migrations of one database; nil when the
	// transaction itself does (SQLite's BEGIN IMMEDIATE).
	lock string
}

var (
	sqliteDialect = &dialect{
		name:  "sqlite",
		nowMS: `CAST(unixepoch('subsec') * 1000 AS INTEGER)`,
	}
	postgresDialect = &dialect{
		name:   "postgres",
		dollar: true,
		// clock_timestamp, not now(): now() is when the transaction began,
		// which may be long before the lock it waited for was granted.
		nowMS:     `CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT)`,
		forUpdate: `FOR UPDATE`,
		// Any constant the history store does not use; hashtext is stable.
		lock: `SELECT pg_advisory_xact_lock(hashtext('pushdeploy queue schema'))`,
	}
)

// sql renders a statement for the dialect.
func (d *dialect) sql(s string) string {
	s = strings.ReplaceAll(s, "NOW_MS", d.nowMS)
	s = strings.ReplaceAll(s, "FOR_UPDATE", d.forUpdate)
	if !d.dollar {
		return s
	}
	var b strings.Builder
	n := 0
	for _, r := range s {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
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
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	// FULL: a commit survives the machine losing power, as the 202 that
	// follows promises (NORMAL could lose the last transactions).
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+q.Encode())
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

// OpenPostgres connects to the PostgreSQL database at url
// (postgres://user:password@host/db?…) and brings the queue's schema up to
// date; several deployers may open the same database at the same moment.
// Errors do not repeat the URL (it holds the password).
func OpenPostgres(ctx context.Context, url string, opts Options) (*Queue, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		// pgx's parse errors quote the URL; say only what kind of mistake.
		return nil, errors.New("queue database: the URL is not a valid PostgreSQL URL")
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(10)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("queue database: %w", err)
	}
	q, err := newQueue(ctx, db, postgresDialect, opts)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("queue database: %w", err)
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
}

// ErrNewerSchema is a database whose queue tables a newer pushdeploy wrote.
var ErrNewerSchema = errors.New("the queue's tables were written by a newer pushdeploy")

// migrate runs the migrations not run yet, in one transaction that first
// takes a lock only one opener holds at a time: deployers starting
// together migrate once, the others wait and find the schema done.
func (q *Queue) migrate(ctx context.Context) error {
	return q.tx(ctx, func(tx *sql.Tx) error {
		if q.d.lock != "" {
			if _, err := tx.ExecContext(ctx, q.d.lock); err != nil {
				return fmt.Errorf("migrate: lock: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS queue_schema (version BIGINT NOT NULL)`); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		var version int
		err := tx.QueryRowContext(ctx, `SELECT version FROM queue_schema`).Scan(&version)
		if errors.Is(err, sql.ErrNoRows) {
			_, err = tx.ExecContext(ctx, `INSERT INTO queue_schema (version) VALUES (0)`)
		}
		if err != nil {
			return fmt.Errorf("migrate: schema version: %w", err)
		}
		if version > len(migrations) {
			return fmt.Errorf("%w: schema version %d, this one knows up to %d", ErrNewerSchema, version, len(migrations))
		}
		for v := version; v < len(migrations); v++ {
			// One statement per Exec: PostgreSQL's extended protocol
			// takes one at a time.
			for _, stmt := range strings.Split(migrations[v], ";") {
				if strings.TrimSpace(stmt) == "" {
					continue
				}
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("migrate to schema version %d: %w", v+1, err)
				}
			}
		}
		if _, err := tx.ExecContext(ctx, q.d.sql(`UPDATE queue_schema SET version = ?`), len(migrations)); err != nil {
			return fmt.Errorf("migrate: set schema version: %w", err)
		}
		return nil
	})
}
