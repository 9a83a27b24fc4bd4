package history_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/history"
	"github.com/pushdeploy/pushdeploy/internal/pgtest"
)

// TestUnreachable: OpenPostgres's error is Unreachable when the database
// cannot be reached (nothing listens, the server is stopped), so that
// serve waits for it, and not when the database answers no (a wrong
// password, no such database): trying again would not help.
func TestUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dbURL := pgtest.New(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	wrongPassword, noDatabase, closed := *u, *u, *u
	wrongPassword.User = url.UserPassword(u.User.Username(), "not-the-password")
	noDatabase.Path = "/no_such_database"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed.Host = ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		name string
		url  string
		want bool
	}{
		{"nothing listens", closed.String(), true},
		{"wrong password", wrongPassword.String(), false},
		{"no such database", noDatabase.String(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := history.OpenPostgres(ctx, tc.url, history.Options{})
			if err == nil {
				st.Close()
				t.Fatal("opened")
			}
			if got := history.Unreachable(err); got != tc.want {
				t.Errorf("Unreachable(%v) = %v, want %v", err, got, tc.want)
			}
		})
	}
	for _, err := range []error{nil, errors.New("migrate: syntax error"), fmt.Errorf("x: %w", history.ErrNewerSchema)} {
		if history.Unreachable(err) {
			t.Errorf("Unreachable(%v) = true", err)
		}
	}

	// A server that is stopped, then a store whose server goes away.
	srv := pgtest.Start(t)
	own := srv.NewDatabase(t)
	st, err := history.OpenPostgres(ctx, own, history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv.Stop(t)
	if _, err := history.OpenPostgres(ctx, own, history.Options{}); !history.Unreachable(err) {
		t.Errorf("server stopped: OpenPostgres: %v, want unreachable", err)
	}
	if err := st.Check(ctx); !history.Unreachable(err) {
		t.Errorf("server stopped: Check: %v, want unreachable", err)
	}
	srv.Start(t)
}
