package e2e

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// The rig of the tests of several deployers on one PostgreSQL (ha_test.go):
// serve processes that share a database and the hosts, a package index
// that holds a deployment's pip while the test wants it held, and the
// hosts' log of switches.

// haRestart is DEPLOY_RESTART_CMD: it logs each switch (see the script).
//
//go:embed testdata/ha-restart.sh
var haRestart string

// haNode is one deployer: a serve named by DEPLOY_NODE_NAME.
// haLease is the lease of the HA tests' deployers' claims (a release
// build's is 30 s): another deployer takes over from one killed or cut
// from the database within seconds. Renewed every 2 s, it still leaves a
// loaded machine 5 s to get a renewal through.
const haLease = 6 * time.Second

type haNode struct {
	*server
	name string
}

// haNode starts a serve named name on dbURL with e's hosts. Each has a data
// folder of its own (its git mirror), as on a machine of its own. All run
// on the real clock (no PUSHDEPLOY_E2E_CLOCK_OFFSET), so that the times in
// the shared history, the hosts' logs and the test compare. Their claims
// last haLease (PUSHDEPLOY_E2E_QUEUE_LEASE) unless the test set another.
func (e *e2e) haNode(name, dbURL string) *haNode {
	e.t.Helper()
	addr := freePort(e.t)
	s := &server{t: e.t, url: "http://" + addr, secret: "s3cret-for-webhooks", token: "t0ken-for-the-api", stderr: &syncWriter{w: &bytes.Buffer{}}, exited: make(chan error, 1)}
	e.vars["DEPLOY_LISTEN"] = addr
	e.vars["DEPLOY_WEBHOOK_SECRET"] = s.secret
	e.vars["DEPLOY_API_TOKEN"] = s.token
	e.vars["DEPLOY_WEBHOOK_REPO"] = "team/app"
	e.vars["DEPLOY_DATABASE_URL"] = dbURL
	e.vars["DEPLOY_NODE_NAME"] = name
	e.vars["DEPLOY_DATA_DIR"] = e.t.TempDir()
	e.vars["DEPLOY_RESTART_CMD"] = haRestart
	// Every host at once, so that a deployment held in pip is held on all.
	e.vars["DEPLOY_PARALLEL"] = strconv.Itoa(len(e.env.Hosts))
	e.vars["PUSHDEPLOY_E2E_CLOCK_OFFSET"] = "0s" // the last of a duplicate key wins
	if _, set := e.vars["PUSHDEPLOY_E2E_QUEUE_LEASE"]; !set {
		e.vars["PUSHDEPLOY_E2E_QUEUE_LEASE"] = haLease.String()
	}
	s.start(e, io.Discard, "serve", "--json", "--grace", "20s")
	return &haNode{server: s, name: name}
}

// kill SIGKILLs the node's process, by its pid, and waits for its end.
func (n *haNode) kill() {
	n.t.Helper()
	if err := syscall.Kill(n.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		n.t.Fatalf("kill %s (pid %d): %v", n.name, n.cmd.Process.Pid, err)
	}
	select {
	case <-n.exited:
	case <-time.After(time.Minute):
		n.t.Fatalf("%s (pid %d) still runs a minute after SIGKILL", n.name, n.cmd.Process.Pid)
	}
}

// deployment is GET /api/deployments/{id} on n.
func (n *haNode) deployment(id string) map[string]any {
	n.t.Helper()
	code, d := n.api(http.MethodGet, "/api/deployments/"+id)
	if code != http.StatusOK {
		n.t.Fatalf("%s: GET deployment %s: %d %v", n.name, id, code, d)
	}
	return d
}

// deployments is every deployment in the shared history, as n lists them.
func (n *haNode) deployments() []map[string]any {
	n.t.Helper()
	code, list := n.api(http.MethodGet, "/api/deployments")
	if code != http.StatusOK {
		n.t.Fatalf("%s: GET /api/deployments: %d %v", n.name, code, list)
	}
	raw, _ := list["deployments"].([]any)
	var out []map[string]any
	for _, d := range raw {
		out = append(out, d.(map[string]any))
	}
	return out
}

// push sends a signed push of commit to n with its own delivery id.
func (n *haNode) push(delivery, commit string) (int, map[string]any) {
	n.t.Helper()
	return n.webhook(delivery, bitbucketPush("release", commit), true)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// commitTagged commits the app with requirements.txt installing from the
// gate under tag, a name of the commit's own: the gate tells and holds
// this commit's pip runs (each commit a requirements.txt of its own, so no
// venv of another is reused and every deployment runs pip).
func (e *e2e) commitTagged(g *pipGate, tag string) string {
	e.t.Helper()
	files := e.env.AppFiles("1.0")
	files["requirements.txt"] = g.requirements(tag)
	files["NEWS"] = tag + "\n"
	sha, err := e.env.Commit(context.Background(), files, "app "+tag)
	if err != nil {
		e.t.Fatal(err)
	}
	return sha
}

// pipGate is the package index the hosts' pip installs the test
// dependency from (--find-links), over HTTP on 127.0.0.1: a page per
// commit tag and host user, /TAG/USER/, listing the wheels of WheelDir. It
// records each page fetch (pip has started on that host for that commit)
// and, while a tag is held, sends its page one space a second, so pip
// waits (its read timeout does not end) until the tag is released.
type pipGate struct {
	t      *testing.T
	url    string
	wheels string

	mu      sync.Mutex
	held    map[string]chan struct{} // closed on release
	fetches []pipFetch
}

// pipFetch is pip starting on a host: its first request for the page.
type pipFetch struct {
	Tag, User string
	At        time.Time
}

func newPipGate(t *testing.T, env *testhosts.Env) *pipGate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &pipGate{t: t, url: "http://" + ln.Addr().String(), wheels: env.WheelDir, held: map[string]chan struct{}{}}
	srv := &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		g.releaseAll()
		_ = srv.Close()
	})
	return g
}

// requirements is the requirements.txt of a commit tagged tag. pip
// expands ${USER} (the host's user, set by sshd), so the gate tells the
// hosts apart.
func (g *pipGate) requirements(tag string) string {
	return "--no-index\n--find-links " + g.url + "/" + tag + "/${USER}/\npdtestdep==1.0\n"
}

// hold makes the pip runs of tag wait, from their first request on.
func (g *pipGate) hold(tag string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.held[tag]; !ok {
		g.held[tag] = make(chan struct{})
	}
}

// release lets the pip runs of tag go on.
func (g *pipGate) release(tag string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c, ok := g.held[tag]; ok {
		close(c)
		delete(g.held, tag)
	}
}

func (g *pipGate) releaseAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for tag, c := range g.held {
		close(c)
		delete(g.held, tag)
	}
}

// started is the users (hosts) whose pip fetched tag's page.
func (g *pipGate) started(tag string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var users []string
	for _, f := range g.fetches {
		if f.Tag == tag && !slices.Contains(users, f.User) {
			users = append(users, f.User)
		}
	}
	return users
}

// all is every fetch so far.
func (g *pipGate) all() []pipFetch {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.fetches)
}

func (g *pipGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 2 || len(parts) > 3 {
		http.NotFound(w, r)
		return
	}
	tag, user := parts[0], parts[1]
	w.Header().Set("Cache-Control", "no-store")
	if len(parts) == 3 { // a wheel
		name := parts[2]
		if name != path.Base(name) || !strings.HasSuffix(name, ".whl") {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, filepath.Join(g.wheels, name))
		return
	}
	g.mu.Lock()
	g.fetches = append(g.fetches, pipFetch{Tag: tag, User: user, At: time.Now()})
	held := g.held[tag]
	g.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, "<!DOCTYPE html>\n<html><body>\n")
	flusher, _ := w.(http.Flusher)
	if held != nil {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
	wait:
		for {
			select {
			case <-held:
				break wait
			case <-r.Context().Done():
				return
			case <-tick.C:
				fmt.Fprint(w, " ")
				if flusher != nil {
					flusher.Flush()
				}
			}
		}
	}
	entries, err := os.ReadDir(g.wheels)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".whl") {
			fmt.Fprintf(w, "<a href=\"%s\">%s</a><br>\n", e.Name(), e.Name())
		}
	}
	fmt.Fprint(w, "</body></html>\n")
}

// hostRestart is one line of a host's ha.log: the restart command ran for
// deployment ID (commit Commit) At, after current moved at Switched.
type hostRestart struct {
	ID, Commit   string
	At, Switched time.Time
}

// restarts reads h's ha.log.
func restarts(t *testing.T, h *testhosts.Host) []hostRestart {
	t.Helper()
	raw, err := os.ReadFile(h.Path("ha.log"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []hostRestart
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 5 || f[0] != "restart" {
			t.Fatalf("%s: ha.log line %q, want \"restart NOW ID COMMIT SWITCHED\"", h.Name, sc.Text())
		}
		out = append(out, hostRestart{At: unixNano(t, f[1]), ID: f[2], Commit: f[3], Switched: unixNano(t, f[4])})
	}
	return out
}

// unixNano parses "SECONDS.NANOSECONDS".
func unixNano(t *testing.T, s string) time.Time {
	t.Helper()
	sec, frac, _ := strings.Cut(s, ".")
	secs, err1 := strconv.ParseInt(sec, 10, 64)
	frac = (frac + "000000000")[:9]
	nanos, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("time %q: want SECONDS.NANOSECONDS", s)
	}
	return time.Unix(secs, nanos)
}

// queueOwner is the deployer the queue's table names as running (or last
// running) deployment id: the queue's own record of the claim.
func queueOwner(t *testing.T, dbURL, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("queue database: %v", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var owner string
	err = conn.QueryRow(ctx, `SELECT COALESCE(owner, '') FROM queue_jobs WHERE id = $1`, id).Scan(&owner)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("queue database: owner of %s: %v", id, err)
	}
	return owner
}

// timeOf parses an RFC 3339 time of the API; zero when absent.
func timeOf(t *testing.T, d map[string]any, key string) time.Time {
	t.Helper()
	s, _ := d[key].(string)
	if s == "" {
		return time.Time{}
	}
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("deployment %v: %s %q: %v", d["id"], key, s, err)
	}
	return at
}
