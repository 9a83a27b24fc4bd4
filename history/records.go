package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// records is what both engines share: the record's SQL, written once in
// the SQL that SQLite and PostgreSQL both speak, on a database/sql pool
// (modernc.org/sqlite; pgx's stdlib driver). The engines differ in how
// they connect, their schema's types and how they migrate it, and their
// placeholders, which rebind translates. Its methods are safe for
// concurrent use.
type records struct {
	db *sql.DB
	// name is the database in error messages: the file, or the URL
	// without its password.
	name string
	// dollar numbers the placeholders ($1, $2…), as PostgreSQL wants
	// them; else they stay ?.
	dollar bool
	opts   Options
	log    *slog.Logger
}

// start does what every Open does once the schema is up to date: mark
// the deployments of processes that are gone as interrupted, and prune.
func (r *records) start(ctx context.Context) error {
	n, err := r.markInterrupted(ctx)
	if err != nil {
		return fmt.Errorf("interrupted deployments: %w", err)
	}
	if n > 0 {
		r.log.Warn("deployments interrupted: their deployer stopped before they finished", "count", n)
	}
	if _, err := r.Prune(ctx); err != nil {
		return err
	}
	return nil
}

// Close closes the database.
func (r *records) Close() error { return r.db.Close() }

// Owner is the owner recorded for this process's deployments.
func (r *records) Owner() Owner { return r.opts.Self }

// q returns query, written with ? placeholders, in the engine's.
func (r *records) q(query string) string {
	if !r.dollar {
		return query
	}
	return Dollars(query)
}

// Dollars rewrites the ? placeholders of a statement written for SQLite as
// PostgreSQL's $1, $2 … : every component that keeps tables in both
// engines (the history, the queue, the event log) writes its SQL once so.
// The statements are constants of theirs, with no ? inside a literal.
func Dollars(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Check proves the database can be written: it updates a row of its own.
// The health endpoint calls it.
func (r *records) Check(ctx context.Context) error {
	_, err := r.db.ExecContext(ctx, r.q(`INSERT INTO health (id, checked) VALUES (1, ?)
		ON CONFLICT (id) DO UPDATE SET checked = excluded.checked`), fmtTime(r.opts.Now()))
	if err != nil {
		return fmt.Errorf("history database %s is not writable: %w", r.name, err)
	}
	return nil
}

// prunable selects the deployments Prune removes: those that ended before
// the cutoff. A deployment refused (promotion) or cancelled without a
// finish time ended when it was queued.
const prunable = `status NOT IN ('queued', 'running') AND COALESCE(finished, queued) < ?`

// Prune deletes the deployments (with their hosts and steps) that ended
// more than Options.Days ago, and returns how many. Running and queued
// deployments are never pruned.
func (r *records) Prune(ctx context.Context) (int, error) {
	if r.opts.Days <= 0 {
		return 0, nil
	}
	cutoff := fmtTime(r.opts.Now().AddDate(0, 0, -r.opts.Days))
	var n int64
	err := r.tx(ctx, func(tx *sql.Tx) error {
		old := `SELECT id FROM deployments WHERE ` + prunable
		for _, table := range []string{"steps", "deployment_hosts"} {
			if _, err := tx.ExecContext(ctx, r.q(`DELETE FROM `+table+` WHERE deployment_id IN (`+old+`)`), cutoff); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, r.q(`DELETE FROM deployments WHERE `+prunable), cutoff)
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
		r.log.Info("old deployments removed from the history", "count", n, "days", r.opts.Days)
	}
	return int(n), nil
}

// tx runs f in a write transaction.
func (r *records) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}

// timeLayout is fixed-width UTC with nanoseconds: the text sorts as the
// time does, and reads well in sqlite3 and psql. PostgreSQL keeps the same
// text rather than a timestamptz, which holds microseconds: the API merges
// the worker's copies of deployments (to the nanosecond) with their
// records, and pages by (queued, id).
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
