package history_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/history"
	"github.com/pushdeploy/pushdeploy/history/historytest"
	"github.com/pushdeploy/pushdeploy/internal/pgtest"
)

// TestMain stops the tests' PostgreSQL server after them.
func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// TestPostgres runs the conformance suite on a real PostgreSQL: each
// database is a new one on the tests' server.
func TestPostgres(t *testing.T) {
	historytest.Run(t, func(t *testing.T) historytest.Opener {
		dbURL := pgtest.New(t)
		return func(ctx context.Context, opts history.Options) (history.Store, error) {
			return history.OpenPostgres(ctx, dbURL, opts)
		}
	})
}

// schemaVersion reads a component's version in the database at dbURL.
func schemaVersion(t *testing.T, db *sql.DB, component string) int {
	t.Helper()
	var v int
	if err := db.QueryRow(`SELECT version FROM `+history.SchemaTable+` WHERE component = $1`, component).Scan(&v); err != nil {
		t.Fatalf("schema version of %s: %v", component, err)
	}
	return v
}

func sqlDB(t *testing.T, dbURL string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestPostgresMigratesOnce: migrations of several processes starting at
// the same moment run one after another: a step that fails when run twice
// runs once, and every one of them succeeds.
func TestPostgresMigratesOnce(t *testing.T) {
	dbURL := pgtest.New(t)
	const n = 8
	steps := []string{
		`CREATE TABLE once (id INTEGER PRIMARY KEY)`,
		// Slow enough that without the lock the others would run it too.
		`SELECT pg_sleep(0.2); INSERT INTO once (id) VALUES (1)`,
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			db := sqlDB(t, dbURL)
			errs[i] = history.MigratePostgres(ctx, db, "test", steps)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migration %d of %d at once: %v", i+1, n, err)
		}
	}
	db := sqlDB(t, dbURL)
	if v := schemaVersion(t, db, "test"); v != len(steps) {
		t.Errorf("version %d, want %d", v, len(steps))
	}
	var rows int
	if err := db.QueryRow(`SELECT count(*) FROM once`).Scan(&rows); err != nil || rows != 1 {
		t.Errorf("%d rows (%v): the second step ran %[1]d times, want once", rows, err)
	}
	// A component of its own keeps its own version beside the history's.
	st, err := history.OpenPostgres(ctx, dbURL, history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if v := schemaVersion(t, db, "test"); v != len(steps) {
		t.Errorf("test's version %d after the history migrated, want %d", v, len(steps))
	}
	if v := schemaVersion(t, db, "history"); v < 1 {
		t.Errorf("history's version %d", v)
	}
}

func TestPostgresNewerSchemaRefused(t *testing.T) {
	dbURL := pgtest.New(t)
	st, err := history.OpenPostgres(ctx, dbURL, history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	db := sqlDB(t, dbURL)
	if _, err := db.Exec(`UPDATE ` + history.SchemaTable + ` SET version = version + 1 WHERE component = 'history'`); err != nil {
		t.Fatal(err)
	}
	if _, err := history.OpenPostgres(ctx, dbURL, history.Options{}); !errors.Is(err, history.ErrNewerSchema) {
		t.Fatalf("Open of a newer database: %v, want ErrNewerSchema", err)
	}
}

// TestPostgresErrorsHideThePassword: a database that cannot be reached,
// or a URL that is not one, is reported without the password.
func TestPostgresErrorsHideThePassword(t *testing.T) {
	const secret = "s3cr3t-pa55"
	for _, dbURL := range []string{
		"postgres://deployer:" + secret + "@127.0.0.1:1/history?sslmode=disable&connect_timeout=2",
		"postgres://deployer@127.0.0.1:1/history?sslmode=disable&connect_timeout=2&password=" + secret,
		"postgres://deployer:" + secret + "@127.0.0.1:99999999/history",
	} {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, err := history.OpenPostgres(ctx, dbURL, history.Options{})
		cancel()
		if err == nil {
			t.Fatalf("OpenPostgres(%s) succeeded", history.RedactURL(dbURL))
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the error shows the password: %v", err)
		}
		if !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("the error does not name the database: %v", err)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:pw@db:5432/h", "postgres://u:xxxxx@db:5432/h"},
		{"postgresql://u@db/h?sslmode=require&password=pw", "postgresql://u@db/h?password=xxxxx&sslmode=require"},
		{"postgres://db/h", "postgres://db/h"},
		{"host=db password=pw", "(DEPLOY_DATABASE_URL)"},
		{"postgres://u:pw@db:5432/h\x7f", "(DEPLOY_DATABASE_URL)"},
	} {
		if got := history.RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestPostgresDownDuringADeployment: the database crashes (an immediate
// shutdown) and starts again while a deployment runs; the deployment goes
// on, and once the database is back it is recorded as it ended, through
// the same store (its pool reconnects).
func TestPostgresDownDuringADeployment(t *testing.T) {
	srv := pgtest.Start(t)
	dbURL := srv.NewDatabase(t)
	st, err := history.OpenPostgres(ctx, dbURL, history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec := history.NewRecorder(st, nil)
	rec.RetryEvery = 50 * time.Millisecond
	rec.Start()
	evs, want := historytest.Script(-1)
	half := len(evs) / 2
	for _, ev := range evs[:half] {
		rec.Observe(ev)
	}
	// The first half is in the database before it goes.
	deadline := time.Now().Add(time.Minute)
	for {
		d, ok, err := st.Deployment(ctx, want.ID)
		if err == nil && ok && d.Status == deploy.StatusRunning && len(d.Hosts) > 0 && len(d.Hosts[0].Steps) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first half of the deployment never recorded: %v %v %v", d, ok, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.Kill(t)
	for _, ev := range evs[half:] {
		rec.Observe(ev)
	}
	if err := st.Check(ctx); err == nil {
		t.Error("Check passed with the database down")
	}
	srv.Start(t)
	historytest.WaitRecorded(t, st, want)
	rec.Close()
	if err := st.Check(ctx); err != nil {
		t.Errorf("Check after the database came back: %v", err)
	}
}
