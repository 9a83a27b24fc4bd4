package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/internal/pgtest"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// TestDatabaseURLIsAConfigurationError: a DEPLOY_DATABASE_URL that is not
// a PostgreSQL URL is a configuration error of every command that opens
// the history: exit 2, naming the variable, what is wrong and how to
// write it, never the password.
func TestDatabaseURLIsAConfigurationError(t *testing.T) {
	const password = "pw-that-must-not-show-5b1e"
	for _, tc := range []struct {
		url, want string
		// byDriver: only PostgreSQL's driver finds it wrong, as the
		// history opens; serve has made DEPLOY_DATA_DIR by then.
		byDriver bool
	}{
		{"mysql://deployer:" + password + "@10.0.0.5/pushdeploy", "is not a postgres:// or postgresql:// URL; write postgres://USER:PASSWORD@HOST:5432/DB", false},
		{"postgres://deployer:" + password + "@10.0.0.5:5432:5432/pushdeploy", "names a host with more than one ':'; write postgres://USER:PASSWORD@HOST:5432/DB", false},
		{"postgres://deployer:" + password + "@/pushdeploy", "names no host", false},
		{"deployer:" + password + "@10.0.0.5", "is not a postgres:// or postgresql:// URL", false},
		{"postgres://deployer:" + password + "@127.0.0.1:1/pushdeploy?sslmode=sometimes", "is not a PostgreSQL URL (postgres://USER:PASSWORD@HOST:5432/DB; parameters such as sslmode=verify-full)", true},
	} {
		cmds := [][]string{{"serve"}, {"history"}, {"deploy"}, {"rollback"}, {"releases"}}
		if tc.byDriver {
			cmds = cmds[:4] // releases never opens the history
		}
		for _, args := range cmds {
			t.Run(args[0]+" "+tc.url[:12], func(t *testing.T) {
				c := newServeCmd(t)
				c.secrets = append(c.secrets, password)
				t.Setenv("DEPLOY_WEBHOOK_INSECURE", "true")
				t.Setenv("DEPLOY_DATABASE_URL", tc.url)
				var stdout, stderr bytes.Buffer
				err := run(t.Context(), append(args, "--env-file", c.envFile), &stdout, &stderr)
				code := exitCode(err, &stderr)
				if code != 2 || !strings.Contains(stderr.String(), "DEPLOY_DATABASE_URL: ") || !strings.Contains(stderr.String(), tc.want) {
					t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %q", code, stderr.String(), tc.want)
				}
				c.noSecrets(t, "stderr", stderr.String())
				if _, err := os.Stat(c.dataDir); err == nil && !tc.byDriver {
					t.Errorf("DEPLOY_DATA_DIR was created: the configuration is refused before anything is done")
				}
			})
		}
	}
}

// TestHistoryCommandDatabaseUnreachable: the CLI does not wait for a
// database it cannot reach: it says so, naming DEPLOY_DATABASE_URL
// without the password, and exits 1 (not a configuration error: the URL
// is right, the database is down).
func TestHistoryCommandDatabaseUnreachable(t *testing.T) {
	c := newServeCmd(t)
	const password = "pw-that-must-not-show-77a0"
	c.secrets = append(c.secrets, password)
	t.Setenv("DEPLOY_DATABASE_URL", "postgres://deployer:"+password+"@127.0.0.1:"+closedPort(t)+"/pushdeploy?sslmode=disable")
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := exitCode(run(t.Context(), []string{"history", "--env-file", c.envFile}, &stdout, &stderr), &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "pushdeploy: DEPLOY_DATABASE_URL: history database postgres://deployer:xxxxx@127.0.0.1:") ||
		!strings.Contains(stderr.String(), "(the database cannot be reached: is PostgreSQL running there") {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1 saying the database cannot be reached", code, stderr.String())
	}
	t.Logf("history gave up after %s", time.Since(start).Round(time.Millisecond))
	c.noSecrets(t, "stderr", stderr.String())
}

// startServe runs serve (--json) with c's configuration until ctx ends;
// the returned channel gets its error.
func startServe(ctx context.Context, c *serveCmd, stderr io.Writer) <-chan error {
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--json", "--env-file", c.envFile, "--grace", "5s"}, io.Discard, stderr)
	}()
	return done
}

// awaitLog waits (a minute at most) for serve's log to hold n lines with
// msg starting with prefix, and returns them.
func awaitLog(t *testing.T, stderr *testhosts.Buffer, done <-chan error, prefix string, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var found []map[string]any
		for _, l := range logLines(t, stderr.String()) {
			if msg, _ := l["msg"].(string); strings.HasPrefix(msg, prefix) {
				found = append(found, l)
			}
		}
		if len(found) >= n {
			return found
		}
		select {
		case err := <-done:
			t.Fatalf("serve returned (%v) before %d lines %q:\n%s", err, n, prefix, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %d lines %q after a minute:\n%s", n, prefix, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// healthz GETs /healthz from addr, with the API token when token is set.
func healthz(t *testing.T, addr, token string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/healthz", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	return resp.StatusCode, out
}

// awaitHealth waits (a minute at most) for /healthz to answer code.
func awaitHealth(t *testing.T, addr string, code int) map[string]any {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got, out := healthz(t, addr, "")
		if got == code {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz still %d %v after a minute, want %d", got, out, code)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestServeWaitsForTheDatabase: serve started while its PostgreSQL is
// down logs, naming DEPLOY_DATABASE_URL without the password, and tries
// again and again, then starts once the database is up on that port;
// /healthz is 503 naming the database when the database goes away, with
// the URL and the error only for the API token, and 200 when it is back.
func TestServeWaitsForTheDatabase(t *testing.T) {
	srv := pgtest.Start(t)
	dbURL := srv.NewDatabase(t)
	srv.Stop(t)
	defer func(b backoff) { dbBackoff = b }(dbBackoff)
	dbBackoff = backoff{First: 50 * time.Millisecond, Max: 200 * time.Millisecond}

	c := newServeCmd(t)
	c.secrets = append(c.secrets, strings.TrimPrefix(strings.SplitN(dbURL, "@", 2)[0], "postgres://pgtest:"))
	t.Setenv("DEPLOY_WEBHOOK_INSECURE", "true")
	t.Setenv("DEPLOY_DATABASE_URL", dbURL)
	t.Setenv("DEPLOY_NODE_NAME", "deploy7")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stderr := &testhosts.Buffer{}
	done := startServe(ctx, c, stderr)

	waits := awaitLog(t, stderr, done, "DEPLOY_DATABASE_URL: the database cannot be reached", 3)
	redacted := config.RedactDatabaseURL(dbURL)
	for _, l := range waits {
		if l["level"] != "ERROR" || l["database"] != redacted || !strings.Contains(fmt.Sprint(l["error"]), "connect") {
			t.Errorf("waiting line %v, want an error naming %s and the cause", l, redacted)
		}
	}
	if strings.Contains(stderr.String(), `"msg":"serving"`) {
		t.Fatalf("serving without the database:\n%s", stderr.String())
	}

	srv.Start(t)
	serving := awaitLog(t, stderr, done, "serving", 1)[0]
	addr, _ := serving["listen"].(string)
	if serving["node"] != "deploy7" {
		t.Errorf("serving line %v, want node deploy7", serving)
	}
	code, out := healthz(t, addr, "")
	if code != http.StatusOK || !strings.Contains(mustMarshal(t, out["checks"]), `"name":"database","status":"ok"`) {
		t.Errorf("/healthz with the database up: %d %v", code, out)
	}

	srv.Stop(t)
	out = awaitHealth(t, addr, http.StatusServiceUnavailable)
	if out["reason"] != "database unavailable" || strings.Contains(mustMarshal(t, out), "127.0.0.1") {
		t.Errorf("/healthz with the database down: %v, want the database named, and not where it is", out)
	}
	_, detail := healthz(t, addr, c.secrets[1])
	if d := mustMarshal(t, detail["checks"]); !strings.Contains(d, redacted) || !strings.Contains(d, `"error":"`) {
		t.Errorf("/healthz with the API token: checks %s, want the URL without the password, and the error", d)
	}
	srv.Start(t)
	awaitHealth(t, addr, http.StatusOK)
	down := awaitLog(t, stderr, done, "health: database unavailable", 1)[0]
	awaitLog(t, stderr, done, "health: database available again", 1)
	if down["level"] != "ERROR" || down["target"] != redacted || down["error"] == nil {
		t.Errorf("the log line of the database going away: %v", down)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("serve did not stop within a minute")
	}
	c.noSecrets(t, "serve's log", stderr.String())
}

// TestServeStopsWaitingForTheDatabase: SIGTERM (ctx) ends serve's wait
// for an unreachable database at once, even in a long wait, and serve
// exits 0.
func TestServeStopsWaitingForTheDatabase(t *testing.T) {
	defer func(b backoff) { dbBackoff = b }(dbBackoff)
	dbBackoff = backoff{First: time.Hour, Max: time.Hour}
	c := newServeCmd(t)
	t.Setenv("DEPLOY_WEBHOOK_INSECURE", "true")
	t.Setenv("DEPLOY_DATABASE_URL", "postgres://deployer:pw@127.0.0.1:"+closedPort(t)+"/pushdeploy?sslmode=disable")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stderr := &testhosts.Buffer{}
	done := startServe(ctx, c, stderr)
	awaitLog(t, stderr, done, "DEPLOY_DATABASE_URL: the database cannot be reached", 1)
	cancel()
	select {
	case err := <-done:
		if code := exitCode(err, io.Discard); code != 0 {
			t.Errorf("serve stopped while waiting: %v (exit %d), want exit 0", err, code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve still waits for the database 30 s after it was told to stop")
	}
	if !strings.Contains(stderr.String(), "stopped before the database could be reached") {
		t.Errorf("no line saying why serve stopped:\n%s", stderr.String())
	}
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
