package main

import (
	"context"
	"database/sql"
	_ "embed"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
	_ "modernc.org/sqlite"             // the "sqlite" driver

	"github.com/pushdeploy/pushdeploy/internal/pgtest"
)

// The benchmark reads the queue's own tables (queue/queue.go), the way an
// administrator would check them, not through serve.
var (
	//go:embed sql/deliveries.sql
	deliveriesSQL string
	//go:embed sql/jobs.sql
	jobsSQL string
)

// store is the database the deployers share, opened by the benchmark only
// to read what they committed.
type store struct {
	engine string // "postgres" or "sqlite"
	url    string // DEPLOY_DATABASE_URL (postgres); "" with sqlite
	db     *sql.DB
	pg     *pgtest.Server // the benchmark's PostgreSQL; nil with sqlite
}

// openStore starts a PostgreSQL of the benchmark's own (engine postgres;
// fsync: as in production), or opens, read-only, the SQLite queue that the
// one deployer keeps in dataDir once it runs.
func openStore(ctx context.Context, engine, dataDir string, fsync bool) (*store, error) {
	if engine == "sqlite" {
		// The file of internal/cli's openQueue (queueFile).
		path := filepath.Join(dataDir, "queue.db")
		db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro&_pragma=busy_timeout(10000)")
		if err != nil {
			return nil, fmt.Errorf("sqlite %s: %w", path, err)
		}
		return &store{engine: engine, db: db}, nil
	}
	note("starting PostgreSQL (fsync %v)", fsync)
	pg, err := pgtest.StartServer(ctx, pgtest.ServerOptions{Durable: fsync})
	if err != nil {
		return nil, err
	}
	u, err := pg.CreateDatabase(ctx, "pushdeploy")
	if err != nil {
		pg.Close()
		return nil, err
	}
	db, err := sql.Open("pgx", u)
	if err != nil {
		pg.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return &store{engine: engine, url: u, db: db, pg: pg}, nil
}

func (st *store) close() {
	st.db.Close()
	if st.pg != nil {
		if err := st.pg.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "bench/webhook:", err)
		}
	}
}

// deliveryRow is a row of queue_deliveries.
type deliveryRow struct{ app, provider, id, job string }

func (st *store) deliveries(ctx context.Context) ([]deliveryRow, error) {
	return query(ctx, st, "queue_deliveries", deliveriesSQL, func(rows *sql.Rows, d *deliveryRow) error {
		return rows.Scan(&d.app, &d.provider, &d.id, &d.job)
	})
}

// jobRow is a row of queue_jobs.
type jobRow struct{ id, app, state, owner string }

func (st *store) jobs(ctx context.Context) ([]jobRow, error) {
	return query(ctx, st, "queue_jobs", jobsSQL, func(rows *sql.Rows, j *jobRow) error {
		return rows.Scan(&j.id, &j.app, &j.state, &j.owner)
	})
}

// query runs q (reading table) and scans each row into a T.
func query[T any](ctx context.Context, st *store, table, q string, scan func(*sql.Rows, *T) error) ([]T, error) {
	rows, err := st.db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", st.engine, table, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := scan(rows, &v); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", st.engine, table, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", st.engine, table, err)
	}
	return out, nil
}

// waitRunning waits until job id runs and returns the deployer that
// claimed it.
func (st *store) waitRunning(ctx context.Context, id string, limit time.Duration) (string, error) {
	deadline := time.Now().Add(limit)
	for {
		jobs, err := st.jobs(ctx)
		// SQLite: the file appears when the deployer has started.
		if err != nil && time.Now().After(deadline) {
			return "", err
		}
		for _, j := range jobs {
			switch {
			case j.id != id:
			case j.state == "running":
				return j.owner, nil
			case j.state != "waiting":
				return "", fmt.Errorf("deployment %s is %s, not running", id, j.state)
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("deployment %s not running after %v", id, limit)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// cpu is the CPU time PostgreSQL has used: the postmaster's, its
// backends' that have ended (counted in its children's time), and its live
// backends'. 0 with SQLite (serve's own).
func (st *store) cpu() time.Duration {
	if st.pg == nil {
		return 0
	}
	pid := st.pg.Pid()
	total := procCPU(pid, true)
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		child, err := strconv.Atoi(d.Name())
		if err != nil || parentPid(child) != pid {
			continue
		}
		total += procCPU(child, false)
	}
	return total
}

// procFields are the fields of /proc/PID/stat after the command's name
// (field 3, the state, first).
func procFields(pid int) []string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(raw)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
}

func parentPid(pid int) int {
	f := procFields(pid)
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// procCPU is pid's user+system time, with its waited-for children's when
// children is set (clock ticks of 10 ms: USER_HZ on Linux).
func procCPU(pid int, children bool) time.Duration {
	f := procFields(pid)
	if len(f) < 15 {
		return 0
	}
	n := 0
	last := 12
	if children {
		last = 14
	}
	for _, v := range f[11 : last+1] {
		t, _ := strconv.Atoi(v)
		n += t
	}
	return time.Duration(n) * 10 * time.Millisecond
}
