package history

import (
	"context"
	"database/sql"
	"fmt"
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
	*records
	path string
}

var _ Store = (*SQLite)(nil)

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
	s := &SQLite{records: &records{db: db, name: path, opts: opts, log: log}, path: path}
	if err := migrate(ctx, s.db, migrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("history database %s: %w", path, err)
	}
	if err := s.start(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("history database %s: %w", path, err)
	}
	return s, nil
}

func dsn(path string) string { return SQLiteDSN(path, "NORMAL", busyTimeout) }

// SQLiteDSN is how every component that keeps tables in a SQLite file (the
// history, the queue, the event log) opens it with database/sql's "sqlite"
// driver: WAL (readers do not wait for the writer), a busy timeout
// (writers of two processes take turns), write transactions that take the
// write lock when they begin, so that two of them never deadlock upgrading
// a read lock; the given synchronous mode (NORMAL, or FULL where a commit
// must survive a power cut) and how long a statement waits for the lock.
func SQLiteDSN(path, synchronous string, busy time.Duration) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+synchronous+")")
	q.Set("_txlock", "immediate")
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// Path is the database file.
func (s *SQLite) Path() string { return s.path }
