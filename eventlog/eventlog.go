// Package eventlog shares the live events of deployments between the
// deployers of one database: the deployer running a deployment writes its
// events to a table (Log.Observe, beside the live hub), and any deployer
// asked for the events of a deployment its own hub does not hold replays
// them from the table and follows new rows until the deployment ends
// (Log.Follow). Event ids are the deployment's own sequence numbers, so
// a client that reconnects to another deployer with Last-Event-ID resumes
// where it was, without gaps or repeats.
//
// The log keeps what the live hub keeps (package live): per deployment,
// every step, host and deployment event and the newest output lines, up
// to the same bounds (5000 lines, 1 MiB), the oldest giving way to one
// "output truncated" line exactly where the hub puts it; and the newest
// Keep ended deployments (20). So the table stays bounded whatever the
// hosts print.
//
// Writes are batched and never hold up a deployment. While the database
// is unreachable the events wait in memory, within the same bounds (the
// oldest output lines give way first), and are written in order when it
// is back: a follower then gets them late, never out of order.
//
// PostgreSQL followers are woken by LISTEN/NOTIFY and look every Poll
// anyway (a notification may be lost with its connection); SQLite (one
// deployer, and the command line beside it) is polled.
package eventlog

import (
	"context"
	"database/sql"
	_ "embed"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/history"
	"github.com/pushdeploy/pushdeploy/live"
)

// Records tells what the lasting record says of a deployment
// (history.Store): a follower whose deployment stopped writing ends when
// the record says it is over (its deployer died and another marked it
// interrupted). Safe for concurrent use.
type Records interface {
	Deployment(ctx context.Context, id string) (*deploy.Deployment, bool, error)
}

// Options tune a Log; the zero value is the hub's bounds.
type Options struct {
	// OutputLines and OutputBytes bound the output lines kept per
	// deployment (default live.DefaultOutputLines and
	// live.DefaultOutputBytes); Keep is how many ended deployments are
	// kept (default live.DefaultKeep).
	OutputLines, OutputBytes, Keep int
	// Stale is how long a deployment that writes nothing and has not
	// ended is kept (its deployer died): default 24h.
	Stale time.Duration
	// Batch is how long events are gathered before a write (default
	// 100ms); Poll how often a follower looks for new rows (default 1s;
	// a notification wakes it sooner on PostgreSQL).
	Batch, Poll time.Duration
	// Records, when set, ends a follower whose deployment the record
	// says is over.
	Records Records
	Logger  *slog.Logger
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.OutputLines, live.DefaultOutputLines)
	def(&o.OutputBytes, live.DefaultOutputBytes)
	def(&o.Keep, live.DefaultKeep)
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur(&o.Stale, 24*time.Hour)
	defDur(&o.Batch, 100*time.Millisecond)
	defDur(&o.Poll, time.Second)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Log is the event log in one database. It is a deploy.Observer (the
// writer) and follows deployments for the event stream (Follow). Its
// methods are safe for concurrent use; Close it after the deployments it
// observes have ended.
type Log struct {
	db     *sql.DB
	dollar bool   // PostgreSQL's $1 parameters
	name   string // the database, for errors (no password)
	opts   Options

	w writer
	// listenCfg is the PostgreSQL connection the listener opens (nil on
	// SQLite), on the first Follow.
	listenCfg *pgx.ConnConfig
	listening sync.Once
	endGrace  time.Duration // defaultEndGrace; shorter in tests

	runMu   sync.Mutex
	running map[string]runningEntry // per app: what Running said last

	wakeMu sync.Mutex
	wakers map[string]map[chan struct{}]struct{} // per deployment: its followers

	ctx    context.Context // ended by Close: the followers and the listener
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ deploy.Observer = (*Log)(nil)

//go:embed schema.sql
var schemaV1 string

// migrations take the log's tables from version i to i+1. Append only.
var migrations = []string{schemaV1}

// notifyChannel is the PostgreSQL channel a write notifies, with the
// deployment id as payload.
const notifyChannel = "pushdeploy_events"

// OpenSQLite opens (creating it, mode 0600, when needed) the event log in
// the SQLite database file path (the history's: the log's tables are its
// own) and brings its tables up to date.
func OpenSQLite(ctx context.Context, path string, opts Options) (*Log, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("event log: %w", err)
	}
	// NORMAL: a live view; losing the last batch to a power cut is fine.
	db, err := sql.Open("sqlite", history.SQLiteDSN(path, "NORMAL", 10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("event log %s: %w", path, err)
	}
	l := newLog(db, false, path, opts)
	if err := migrateSQLite(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("event log %s: %w", path, err)
	}
	l.start(nil)
	return l, nil
}

// OpenPostgres connects to the PostgreSQL database at dbURL, brings the
// log's tables up to date (schema version in history.SchemaTable,
// component "eventlog") and listens for the other deployers' writes.
// Errors name the database without its password.
func OpenPostgres(ctx context.Context, dbURL string, opts Options) (*Log, error) {
	name := history.RedactURL(dbURL)
	db, cfg, err := history.PostgresDB(dbURL, 4)
	if err != nil {
		return nil, fmt.Errorf("event log %s: %w", name, err)
	}
	l := newLog(db, true, name, opts)
	if err := history.MigratePostgres(ctx, db, "eventlog", migrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("event log %s: %w", name, err)
	}
	l.start(cfg)
	return l, nil
}

func newLog(db *sql.DB, dollar bool, name string, opts Options) *Log {
	l := &Log{db: db, dollar: dollar, name: name, opts: opts.withDefaults(), endGrace: defaultEndGrace, running: map[string]runningEntry{}, wakers: map[string]map[chan struct{}]struct{}{}}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.w.init()
	return l
}

// start runs the writer; on PostgreSQL (listen not nil) the first Follow
// starts the listener (a command-line deploy, which only writes, opens no
// connection for it).
func (l *Log) start(listen *pgx.ConnConfig) {
	l.wg.Add(1)
	go l.writeLoop()
	l.listenCfg = listen
}

// startListening runs the listener, once, on PostgreSQL.
func (l *Log) startListening() {
	l.listening.Do(func() {
		if l.listenCfg != nil {
			l.wg.Add(1)
			go l.listen(l.listenCfg)
		}
	})
}

// Close writes the events still held (waiting at most 10 seconds for the
// database), ends the followers and closes the database.
func (l *Log) Close() error {
	l.w.close(10*time.Second, l.cancel)
	l.cancel()
	l.wg.Wait()
	return l.db.Close()
}

// sql renders a statement written with ? for the engine.
func (l *Log) sql(s string) string {
	if !l.dollar {
		return s
	}
	return history.Dollars(s)
}

// migrateSQLite brings the log's tables in a SQLite file up to date
// (their version in eventlog_schema).
func migrateSQLite(ctx context.Context, db *sql.DB) error {
	return history.MigrateSQLite(ctx, db, "eventlog", migrations)
}
