package pgtest_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/internal/pgtest"
)

// StartServer is for programs (benchmarks): no testing.TB, a durable
// server on request, stopped by Close.
func TestStartServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL server; skipped under -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, durable := range []bool{true, false} {
		t.Run("durable="+strconv.FormatBool(durable), func(t *testing.T) {
			srv, err := pgtest.StartServer(ctx, pgtest.ServerOptions{Durable: durable})
			if err != nil {
				t.Fatal(err)
			}
			closed := false
			defer func() {
				if !closed {
					srv.Close()
				}
			}()
			if _, err := srv.CreateDatabase(ctx, "x; DROP"); err == nil {
				t.Error("CreateDatabase took a name that is not an identifier")
			}
			url, err := srv.CreateDatabase(ctx, "bench")
			if err != nil {
				t.Fatal(err)
			}
			conn := connect(t, url)
			want := map[bool]string{true: "on", false: "off"}[durable]
			for _, setting := range []string{"fsync", "full_page_writes", "synchronous_commit"} {
				var got string
				if err := conn.QueryRow(ctx, "SELECT current_setting($1)", setting).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if setting == "synchronous_commit" && got != "on" || setting != "synchronous_commit" && got != want {
					t.Errorf("%s = %q (durable %v)", setting, got, durable)
				}
			}
			var db string
			if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil || db != "bench" {
				t.Errorf("connected to %q (%v), want bench", db, err)
			}
			pid := srv.Pid()
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); pid == 0 || err != nil {
				t.Fatalf("Pid %d: %v", pid, err)
			}
			conn.Close(ctx)
			dir := srv.SocketDir()
			if err := srv.Close(); err != nil {
				t.Fatal(err)
			}
			closed = true
			if srv.Pid() != 0 {
				t.Error("Pid after Close is not 0")
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("its folder %s is still there (%v)", dir, err)
			}
		})
	}
}
