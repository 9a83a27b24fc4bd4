package eventlog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// batch is what one write does to one deployment's rows.
type batch struct {
	id, app string
	// trimTo > 0: the output rows up to that Seq go first (the oldest
	// lines forgotten), and markers (every "output truncated" row the
	// deployment has) take their places.
	trimTo  int
	markers []row
	rows    []row // new events, by Seq
	lastSeq int
	ended   bool
	state   []byte // stateJSON
}

// row is one event as stored.
type row struct {
	seq     int
	kind    deploy.EventKind
	dropped int
	event   []byte
}

// rowsPerInsert bounds one INSERT's rows (5 parameters each).
const rowsPerInsert = 200

// write applies bs in one transaction and notifies their followers. It
// is idempotent: after an error it is tried again as it was.
func (l *Log) write(ctx context.Context, bs []batch, now time.Time) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("event log %s: %w", l.name, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	for _, b := range bs {
		if err := l.writeOne(ctx, tx, b, now); err != nil {
			return fmt.Errorf("event log %s: deployment %s: %w", l.name, b.id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("event log %s: commit: %w", l.name, err)
	}
	for _, b := range bs {
		l.wake(b.id) // this process's followers (SQLite has no NOTIFY)
	}
	return nil
}

func (l *Log) writeOne(ctx context.Context, tx *sql.Tx, b batch, now time.Time) error {
	if b.trimTo > 0 {
		if _, err := tx.ExecContext(ctx, l.sql(`DELETE FROM eventlog_events WHERE deployment_id = ? AND kind = ? AND seq <= ?`),
			b.id, string(deploy.EventOutput), b.trimTo); err != nil {
			return fmt.Errorf("trim: %w", err)
		}
	}
	rows := append(append([]row(nil), b.markers...), b.rows...)
	for len(rows) > 0 {
		n := min(len(rows), rowsPerInsert)
		if err := l.insert(ctx, tx, b.id, rows[:n]); err != nil {
			return err
		}
		rows = rows[n:]
	}
	ended := 0
	if b.ended {
		ended = 1
	}
	if _, err := tx.ExecContext(ctx, l.sql(`INSERT INTO eventlog_deployments (deployment_id, app, last_seq, ended, updated_ms, state)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (deployment_id) DO UPDATE SET
			last_seq = excluded.last_seq, ended = excluded.ended, updated_ms = excluded.updated_ms, state = excluded.state`),
		b.id, b.app, b.lastSeq, ended, now.UnixMilli(), string(b.state)); err != nil {
		return fmt.Errorf("deployment row: %w", err)
	}
	if l.dollar {
		// Delivered when the transaction commits.
		if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, notifyChannel, b.id); err != nil {
			return fmt.Errorf("notify: %w", err)
		}
	}
	return nil
}

func (l *Log) insert(ctx context.Context, tx *sql.Tx, id string, rows []row) error {
	var q strings.Builder
	q.WriteString(`INSERT INTO eventlog_events (deployment_id, seq, kind, dropped, event) VALUES `)
	args := make([]any, 0, 5*len(rows))
	for i, r := range rows {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?)")
		args = append(args, id, r.seq, string(r.kind), r.dropped, string(r.event))
	}
	q.WriteString(` ON CONFLICT (deployment_id, seq) DO UPDATE SET kind = excluded.kind, dropped = excluded.dropped, event = excluded.event`)
	if _, err := tx.ExecContext(ctx, l.sql(q.String()), args...); err != nil {
		return fmt.Errorf("events %d to %d: %w", rows[0].seq, rows[len(rows)-1].seq, err)
	}
	return nil
}

// known tells whether the log has deployment id.
func (l *Log) known(ctx context.Context, id string) (bool, error) {
	var seq int
	err := l.db.QueryRowContext(ctx, l.sql(`SELECT last_seq FROM eventlog_deployments WHERE deployment_id = ?`), id).Scan(&seq)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("event log %s: deployment %s: %w", l.name, id, err)
	}
	return true, nil
}

// readLimit bounds the events one read returns.
const readLimit = 500

// read returns deployment id's events after Seq after, in order, at most
// readLimit, and whether the deployment had ended before they were read
// (so that no events after them will come).
func (l *Log) read(ctx context.Context, id string, after int) ([]deploy.Event, bool, error) {
	var ended int
	err := l.db.QueryRowContext(ctx, l.sql(`SELECT ended FROM eventlog_deployments WHERE deployment_id = ?`), id).Scan(&ended)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		ended = 1 // forgotten (pruned): nothing will come
	case err != nil:
		return nil, false, fmt.Errorf("event log %s: deployment %s: %w", l.name, id, err)
	}
	evs, err := l.readEvents(ctx, id, after)
	return evs, ended == 1, err
}

func (l *Log) readEvents(ctx context.Context, id string, after int) ([]deploy.Event, error) {
	rs, err := l.db.QueryContext(ctx, l.sql(`SELECT seq, event FROM eventlog_events
		WHERE deployment_id = ? AND seq > ? ORDER BY seq LIMIT ?`), id, after, readLimit)
	if err != nil {
		return nil, fmt.Errorf("event log %s: deployment %s: %w", l.name, id, err)
	}
	defer rs.Close()
	var evs []deploy.Event
	for rs.Next() {
		var (
			seq int
			raw string
		)
		if err := rs.Scan(&seq, &raw); err != nil {
			return nil, fmt.Errorf("event log %s: deployment %s: %w", l.name, id, err)
		}
		ev, err := decodeEvent(id, seq, []byte(raw))
		if err != nil {
			return nil, fmt.Errorf("event log %s: %w", l.name, err)
		}
		evs = append(evs, ev)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("event log %s: deployment %s: %w", l.name, id, err)
	}
	return evs, nil
}

// prune forgets the deployments beyond the newest Keep ended ones, and
// those that wrote nothing since before stale without ending (their
// deployer died). Several deployers may prune at once.
func (l *Log) prune(ctx context.Context, stale time.Time) error {
	old, err := l.ids(ctx, l.opts.Keep, `SELECT deployment_id FROM eventlog_deployments
		WHERE ended = 1 ORDER BY updated_ms DESC, deployment_id DESC`)
	if err != nil {
		return err
	}
	gone, err := l.ids(ctx, 0, `SELECT deployment_id FROM eventlog_deployments WHERE ended = 0 AND updated_ms < ?`, stale.UnixMilli())
	if err != nil {
		return err
	}
	for _, id := range append(old, gone...) {
		if err := l.forget(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// ids returns the deployment ids query selects, but the first skip.
func (l *Log) ids(ctx context.Context, skip int, query string, args ...any) ([]string, error) {
	rs, err := l.db.QueryContext(ctx, l.sql(query), args...)
	if err != nil {
		return nil, fmt.Errorf("event log %s: prune: %w", l.name, err)
	}
	defer rs.Close()
	var ids []string
	for i := 0; rs.Next(); i++ {
		var id string
		if err := rs.Scan(&id); err != nil {
			return nil, fmt.Errorf("event log %s: prune: %w", l.name, err)
		}
		if i >= skip {
			ids = append(ids, id)
		}
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("event log %s: prune: %w", l.name, err)
	}
	return ids, nil
}

// forget deletes deployment id's rows.
func (l *Log) forget(ctx context.Context, id string) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("event log %s: prune %s: %w", l.name, id, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	for _, q := range []string{`DELETE FROM eventlog_events WHERE deployment_id = ?`, `DELETE FROM eventlog_deployments WHERE deployment_id = ?`} {
		if _, err := tx.ExecContext(ctx, l.sql(q), id); err != nil {
			return fmt.Errorf("event log %s: prune %s: %w", l.name, id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("event log %s: prune %s: %w", l.name, id, err)
	}
	return nil
}

// runningEvery is how long Running's answer for an app is reused: every
// overview stream asks several times a second.
const runningEvery = time.Second

type runningEntry struct {
	at time.Time
	d  *deploy.Deployment
}

// Running returns app's deployment that another deployer (or a
// command-line deploy) runs, as its events tell: its status, release and
// each host's status and step; false when none runs. A deployment the
// record (Options.Records) says is over is not running (its deployer
// died). The answer is at most a second old; one that cannot be read is
// none.
func (l *Log) Running(ctx context.Context, app string) (*deploy.Deployment, bool) {
	l.runMu.Lock()
	defer l.runMu.Unlock()
	if e, ok := l.running[app]; ok && time.Since(e.at) < runningEvery {
		return e.d, e.d != nil
	}
	ctx, cancel := context.WithTimeout(ctx, lookTimeout)
	defer cancel()
	d, err := l.readRunning(ctx, app)
	if err != nil {
		l.opts.Logger.Debug("event log: running", "app", app, "error", err)
	}
	if len(l.running) > 1000 {
		clear(l.running) // apps come and go: bounded
	}
	l.running[app] = runningEntry{at: time.Now(), d: d}
	return d, d != nil
}

func (l *Log) readRunning(ctx context.Context, app string) (*deploy.Deployment, error) {
	var id, raw string
	err := l.db.QueryRowContext(ctx, l.sql(`SELECT deployment_id, state FROM eventlog_deployments
		WHERE app = ? AND ended = 0 AND updated_ms > ? ORDER BY updated_ms DESC LIMIT 1`),
		app, time.Now().Add(-l.opts.Stale).UnixMilli()).Scan(&id, &raw)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("event log %s: app %s: %w", l.name, app, err)
	}
	var st stateJSON
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return nil, fmt.Errorf("event log %s: deployment %s: state: %w", l.name, id, err)
	}
	if l.isOver(ctx, id) {
		return nil, nil
	}
	return st.deployment(), nil
}
