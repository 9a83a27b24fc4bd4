package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// FileName is the database's name in the data folder.
const FileName = "history.db"

// busyTimeout is how long a statement waits for another process (a CLI
// deploy beside serve) to finish its write.
const busyTimeout = 5 * time.Second

// SQLite is the history in an SQLite database in the deployer's data
// folder. Both `serve` and the command line write to it, at the same time
// if need be: SQLite's WAL mode and a busy timeout let the processes take
// turns. Its methods are safe for concurrent use.
type SQLite struct {
	db   *sql.DB
	path string
	opts Options
	log  *slog.Logger
}

// Open opens (creating it when needed, mode 0600) the history database in
// dir, brings its schema up to date, marks the deployments of processes
// that are gone as interrupted and removes the rows older than
// opts.Days. dir must exist.
func Open(ctx context.Context, dir string, opts Options) (*SQLite, error) {
	path := filepath.Join(dir, FileName)
	// SQLite would create the file with the umask's mode: create it
	// private first. Its -wal and -shm files take the same mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("history database: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("history database: %w", err)
	}
	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return nil, fmt.Errorf("history database %s: %w", path, err)
	}
	opts, log := opts.withDefaults()
	s := &SQLite{db: db, path: path, opts: opts, log: log}
	if err := s.open(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("history database %s: %w", path, err)
	}
	return s, nil
}

// dsn asks for WAL (readers do not wait for the writer), a busy timeout
// (writers of two processes take turns), and write transactions that take
// the write lock when they begin, so that two of them never deadlock
// upgrading a read lock.
func dsn(path string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

func (s *SQLite) open(ctx context.Context) error {
	if err := migrate(ctx, s.db, migrations); err != nil {
		return err
	}
	n, err := s.markInterrupted(ctx)
	if err != nil {
		return fmt.Errorf("interrupted deployments: %w", err)
	}
	if n > 0 {
		s.log.Warn("deployments interrupted: their deployer stopped before they finished", "count", n)
	}
	if _, err := s.Prune(ctx); err != nil {
		return err
	}
	return nil
}

var _ Store = (*SQLite)(nil)

// Path is the database file.
func (s *SQLite) Path() string { return s.path }

// Close closes the database.
func (s *SQLite) Close() error { return s.db.Close() }

// Owner is the owner recorded for this process's deployments.
func (s *SQLite) Owner() Owner { return s.opts.Self }

// Check proves the database can be written: it updates a row of its own.
// The health endpoint calls it.
func (s *SQLite) Check(ctx context.Context) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO health (id, checked) VALUES (1, ?)
		ON CONFLICT (id) DO UPDATE SET checked = excluded.checked`, fmtTime(s.opts.Now()))
	if err != nil {
		return fmt.Errorf("history database %s is not writable: %w", s.path, err)
	}
	return nil
}

// Prune deletes the deployments (with their hosts and steps) that ended
// more than Options.Days ago, and returns how many. Running and queued
// deployments are never pruned.
func (s *SQLite) Prune(ctx context.Context) (int, error) {
	if s.opts.Days <= 0 {
		return 0, nil
	}
	cutoff := fmtTime(s.opts.Now().AddDate(0, 0, -s.opts.Days))
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		old := `SELECT id FROM deployments WHERE ` + prunable
		for _, table := range []string{"steps", "deployment_hosts"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE deployment_id IN (`+old+`)`, cutoff); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM deployments WHERE `+prunable, cutoff)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune history: %w", err)
	}
	if n > 0 {
		s.log.Info("old deployments removed from the history", "count", n, "days", s.opts.Days)
	}
	return int(n), nil
}

// prunable selects the deployments Prune removes: those that ended before
// the cutoff. A deployment refused (promotion) or cancelled without a
// finish time ended when it was queued.
const prunable = `status NOT IN ('queued', 'running') AND COALESCE(finished, queued) < ?`

// tx runs f in a write transaction.
func (s *SQLite) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}

// timeLayout is fixed-width UTC with nanoseconds: the text sorts as the
// time does, and reads well in sqlite3.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func fmtTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// nullTime is NULL for the zero time.
func nullTime(t time.Time) sql.NullString {
	if t.IsZero() {
		return sql.NullString{}
	}
	return sql.NullString{String: fmtTime(t), Valid: true}
}

func parseTime(s sql.NullString) (time.Time, error) {
	if !s.Valid || s.String == "" {
		return time.Time{}, nil
	}
	return time.Parse(timeLayout, s.String)
}
