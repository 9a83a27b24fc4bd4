package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Postgres is the history in a PostgreSQL database (DEPLOY_DATABASE_URL),
// shared by every deployer (and CLI deploy) that names it. Its methods are
// safe for concurrent use.
//
// The owner of a deployment is the process that runs it, as with SQLite:
// a deployer that opens the history marks interrupted the deployments of
// processes of its own machine that are gone (Owner.Alive). It never marks
// another machine's: a deployer that died elsewhere is noticed by the
// deployment queue, which holds each app's lock.
type Postgres struct {
	*records
}

var _ Store = (*Postgres)(nil)

// postgresPool bounds the connections one store opens: the recorder
// writes one event at a time, and the API reads a few things at once.
const postgresPool = 8

// OpenPostgres connects to the PostgreSQL database at dbURL (postgres://
// or postgresql://, or key=value settings), brings its schema up to date,
// marks the deployments of processes that are gone as interrupted and
// removes the rows older than opts.Days. Errors name the database without
// its password.
func OpenPostgres(ctx context.Context, dbURL string, opts Options) (*Postgres, error) {
	name := RedactURL(dbURL)
	db, _, err := PostgresDB(dbURL, postgresPool)
	if err != nil {
		return nil, fmt.Errorf("history database %s: %w", name, err)
	}
	opts, log := opts.withDefaults()
	s := &Postgres{records: &records{db: db, name: name, dollar: true, opts: opts, log: log}}
	if err := migratePostgres(ctx, db, postgresMigrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("history database %s: %w", name, err)
	}
	if err := s.start(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("history database %s: %w", name, err)
	}
	return s, nil
}

// ErrBadURL is a database URL that PostgreSQL's driver cannot read: a
// configuration error (the CLI's exit status 2), never worth trying again.
var ErrBadURL = errors.New("not a PostgreSQL URL (postgres://USER:PASSWORD@HOST:5432/DB; parameters such as sslmode=verify-full)")

// PostgresDB opens a pool of at most conns connections on the PostgreSQL
// database at dbURL, as every component that keeps tables there (the
// history, the queue, the event log) opens it: a 10 s connect timeout
// unless the URL sets one. It returns the parsed configuration too (for a
// LISTEN connection of its own). The only error is one wrapping
// ErrBadURL: pgx's message may quote the URL, password and all, so it is
// not passed on.
func PostgresDB(dbURL string, conns int) (*sql.DB, *pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return nil, nil, ErrBadURL
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	db := stdlib.OpenDB(*cfg.Copy())
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, cfg, nil
}

// RedactURL returns a database URL fit for messages and logs: without the
// password, in the user part or the query. What is not a URL is not shown.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return "(DEPLOY_DATABASE_URL)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// postgresMigrations are the history's migrations (the same list as
// SQLite's, so that a version means the same schema on both engines) in
// PostgreSQL's types: SQLite's REAL is a double, PostgreSQL's a float4
// (durations would lose their milliseconds).
var postgresMigrations = forPostgres(migrations)

var sqliteReal = regexp.MustCompile(`\bREAL\b`)

func forPostgres(steps []string) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = sqliteReal.ReplaceAllString(s, "DOUBLE PRECISION")
	}
	return out
}

// SchemaTable is the table holding each component's schema version in a
// PostgreSQL database (the history's row is "history").
const SchemaTable = "pushdeploy_schema"

// migrateLock is the key of the transaction-level advisory lock that
// migrations take: deployers starting at the same moment migrate one after
// another, and each after the first finds nothing left to do.
const migrateLock int64 = 0x7075_7368_6d69_6772 // "pushmigr"

// migratePostgres runs the history's migrations the database has not run
// yet, in one transaction that holds migrateLock.
func migratePostgres(ctx context.Context, db *sql.DB, steps []string) error {
	return MigratePostgres(ctx, db, "history", steps)
}

// MigratePostgres brings component's tables in a PostgreSQL database up to
// date: steps[i] takes them from version i to i+1 (append only). It runs in
// one transaction holding an advisory lock, so that however many
// processes start at once, each migration runs once; a database whose
// version for component is newer than len(steps) is refused with
// ErrNewerSchema. Other components (the deployment queue) keep their
// version in the same table.
func MigratePostgres(ctx context.Context, db *sql.DB, component string, steps []string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLock); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+SchemaTable+` (
		component TEXT PRIMARY KEY, version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var version int
	err = tx.QueryRowContext(ctx, `SELECT version FROM `+SchemaTable+` WHERE component = $1`, component).Scan(&version)
	if err != nil && err != sql.ErrNoRows {
		return fmt.Errorf("migrate: schema version: %w", err)
	}
	if version > len(steps) {
		return fmt.Errorf("%w: %s schema version %d, this one knows up to %d", ErrNewerSchema, component, version, len(steps))
	}
	if version == len(steps) {
		return nil
	}
	for v := version; v < len(steps); v++ {
		if _, err := tx.ExecContext(ctx, steps[v]); err != nil {
			return fmt.Errorf("migrate %s to schema version %d: %w", component, v+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+SchemaTable+` (component, version) VALUES ($1, $2)
		ON CONFLICT (component) DO UPDATE SET version = excluded.version`, component, len(steps)); err != nil {
		return fmt.Errorf("migrate: set schema version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
