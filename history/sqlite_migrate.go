package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// MigrateSQLite brings the tables of component (the queue, the event log)
// in a SQLite file shared with the history up to date: it runs the steps
// not run yet, in one immediate transaction (SQLiteDSN's _txlock), so that
// processes opening the file at the same moment migrate one after
// another, each after the first finding nothing to do. The version is in
// a table of the component's own, COMPONENT_schema (the history owns the
// file's user_version). A file several processes create at the same moment
// can answer SQLITE_BUSY at once, without waiting for busy_timeout, while
// one of them turns it to WAL mode: it is tried again shortly, a bounded
// number of times.
func MigrateSQLite(ctx context.Context, db *sql.DB, component string, steps []string) error {
	var err error
	for try := 0; try < 50; try++ {
		if err = migrateSQLiteOnce(ctx, db, component, steps); !isBusy(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
	return err
}

// isBusy is SQLite's "database is locked" (SQLITE_BUSY, and its extended
// codes).
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

func migrateSQLiteOnce(ctx context.Context, db *sql.DB, component string, steps []string) error {
	table := component + "_schema" // a constant of the caller's, never input
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+table+` (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var version int
	err = tx.QueryRowContext(ctx, `SELECT version FROM `+table).Scan(&version)
	if errors.Is(err, sql.ErrNoRows) {
		_, err = tx.ExecContext(ctx, `INSERT INTO `+table+` (version) VALUES (0)`)
	}
	if err != nil {
		return fmt.Errorf("migrate: schema version: %w", err)
	}
	if version > len(steps) {
		return fmt.Errorf("%w: %s schema version %d, this one knows up to %d", ErrNewerSchema, component, version, len(steps))
	}
	for v := version; v < len(steps); v++ {
		if _, err := tx.ExecContext(ctx, steps[v]); err != nil {
			return fmt.Errorf("migrate %s to schema version %d: %w", component, v+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET version = ?`, len(steps)); err != nil {
		return fmt.Errorf("migrate: set schema version: %w", err)
	}
	return tx.Commit()
}
