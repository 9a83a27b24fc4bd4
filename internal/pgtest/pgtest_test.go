package pgtest_test

import (
	"context"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pushdeploy/pushdeploy/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestNewGivesEachTestItsOwnDatabase(t *testing.T) {
	ctx := context.Background()
	a, b := pgtest.New(t), pgtest.New(t)
	if a == b {
		t.Fatalf("two calls gave the same database %s", a)
	}
	ca, cb := connect(t, a), connect(t, b)
	if _, err := ca.Exec(ctx, "CREATE TABLE x (v int)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := cb.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'x'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("a table made in one database is in the other")
	}
	// Loopback only, unprivileged, fsync off.
	for setting, want := range map[string]string{"listen_addresses": "127.0.0.1", "fsync": "off"} {
		var got string
		if err := ca.QueryRow(ctx, "SELECT current_setting($1)", setting).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
	var pid int
	if err := ca.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat("/proc/" + strconv.Itoa(pid))
	if err != nil {
		t.Fatal(err)
	}
	if st.Sys().(*syscall.Stat_t).Uid == 0 {
		t.Errorf("the server runs as root")
	}
}

func TestStopAndStartKeepsTheData(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	conn := connect(t, url)
	if _, err := conn.Exec(ctx, "CREATE TABLE x (v int); INSERT INTO x VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	srv.Stop(t)
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("a query on a stopped server succeeded")
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if c, err := pgx.Connect(cctx, url); err == nil {
		c.Close(ctx)
		t.Fatal("connected to a stopped server")
	}
	cancel()
	srv.Start(t)
	var v int
	if err := connect(t, url).QueryRow(ctx, "SELECT v FROM x").Scan(&v); err != nil || v != 1 {
		t.Fatalf("after restart: v = %d, %v; want 1", v, err)
	}
	// A crash right after a commit, then a start: what was committed
	// survives (fsync off only matters to the machine crashing).
	if _, err := connect(t, url).Exec(ctx, "UPDATE x SET v = 2"); err != nil {
		t.Fatal(err)
	}
	srv.Kill(t)
	srv.Start(t)
	if err := connect(t, url).QueryRow(ctx, "SELECT v FROM x").Scan(&v); err != nil || v != 2 {
		t.Fatalf("after kill and start: v = %d, %v; want 2", v, err)
	}
}
