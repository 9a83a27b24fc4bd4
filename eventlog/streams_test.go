package eventlog_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/deploy/localrun"
	"github.com/pushdeploy/pushdeploy/eventlog"
	"github.com/pushdeploy/pushdeploy/history"
	"github.com/pushdeploy/pushdeploy/internal/deploytest"
	"github.com/pushdeploy/pushdeploy/internal/pgtest"
	"github.com/pushdeploy/pushdeploy/live"
	"github.com/pushdeploy/pushdeploy/webhook"
)

// deployer is one serve's parts that the event stream uses, on a shared
// database: its history, its event log, its live hub and its web server.
type deployer struct {
	store *history.Postgres
	rec   *history.Recorder
	log   *eventlog.Log
	hub   *live.Hub
	url   string
}

func newDeployer(t *testing.T, db string, work webhook.Deployments) *deployer {
	t.Helper()
	ctx := context.Background()
	store, err := history.OpenPostgres(ctx, db, history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := eventlog.OpenPostgres(ctx, db, eventlog.Options{Records: store, Batch: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	d := &deployer{store: store, rec: history.NewRecorder(store, nil), log: l, hub: &live.Hub{}}
	d.rec.Start()
	srv, err := webhook.New(webhook.Config{APIToken: "tok", StateDir: t.TempDir(), Live: d.hub, EventLog: l, History: store},
		webhook.OneApp(webhook.App{Secret: "s", Branch: "release", Deployments: work}))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	d.url = hs.URL
	t.Cleanup(func() {
		hs.Close()
		d.rec.Close()
		l.Close()
		store.Close()
	})
	return d
}

// stream is an open event stream: its events as raw blocks (id, event
// and data lines), comments left out.
type stream struct {
	t  *testing.T
	sc *bufio.Scanner
}

func (d *deployer) events(t *testing.T, id string, lastEventID string) *stream {
	t.Helper()
	return d.open(t, "/api/deployments/"+id+"/events", lastEventID)
}

// open opens the event stream at path.
func (d *deployer) open(t *testing.T, path string, lastEventID string) *stream {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, d.url+path, nil)
	req.Header.Set("Authorization", "Bearer tok")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := streamClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	return &stream{t: t, sc: sc}
}

// streamClient fails a stream that hangs (the overview's never ends by
// itself).
var streamClient = &http.Client{Timeout: 2 * time.Minute}

// next is the next event block; false at the end of the stream.
func (s *stream) next() (string, bool) {
	var b strings.Builder
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case line == "" && b.Len() > 0:
			return b.String(), true
		case line == "", strings.HasPrefix(line, ":"):
		default:
			b.WriteString(line + "\n")
		}
	}
	return "", false
}

// until reads events up to and including the first that contains all
// of parts.
func (s *stream) until(parts ...string) []string {
	s.t.Helper()
	var out []string
	for {
		ev, ok := s.next()
		if !ok {
			s.t.Fatalf("the stream ended after %d events before one with %q:\n%s", len(out), parts, strings.Join(out, ""))
		}
		out = append(out, ev)
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(ev, p) }) {
			return out
		}
	}
}

// rest reads the events left, to the end of the stream.
func (s *stream) rest() []string {
	var out []string
	for ev, ok := s.next(); ok; ev, ok = s.next() {
		out = append(out, ev)
	}
	return out
}

// idOf is an event block's id, "" when it has none.
func idOf(ev string) string {
	if rest, ok := strings.CutPrefix(ev, "id: "); ok {
		return rest[:strings.IndexByte(rest, '\n')]
	}
	return ""
}

// hostFolders dials each host with a localrun.Runner in a folder of its
// own under dir (the host's home).
type hostFolders string

func (dir hostFolders) Dial(ctx context.Context, h deploy.Host) (deploy.Conn, error) {
	return (&localrun.Runner{Dir: filepath.Join(string(dir), h.Name)}).Dial(ctx, h)
}

// tip resolves every push to one release.
type tip deploy.Release

func (r tip) Resolve(context.Context, deploy.Push) (deploy.Release, error) {
	return deploy.Release(r), nil
}

// TestStreamsAcrossDeployers: deployer A runs a real deployment (deploy's
// own scripts in local folders, a real git repository); deployer B, on the
// same PostgreSQL database, streams it from its event log: event for
// event what A's hub streams, replayed from the start and then live; and
// a client that reconnects to B with the Last-Event-ID A gave it goes on
// exactly where it was. B's overview shows the hosts as they go.
func TestStreamsAcrossDeployers(t *testing.T) {
	db := pgtest.New(t)
	dir := t.TempDir()
	repo := deploytest.NewRepo(t, filepath.Join(dir, "repo"))
	var reqs []string
	for i := range 40 {
		reqs = append(reqs, "package"+strconv.Itoa(i)) // 40 lines of pip output
	}
	sha := repo.Commit(strings.Join(reqs, "\n"))
	var hosts []deploy.Host
	for _, name := range []string{"web1", "web2"} {
		if err := os.MkdirAll(filepath.Join(dir, name, "app"), 0o755); err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, deploy.Host{Name: name, Local: true})
	}
	dep := &deploy.Deployer{
		Dialer: hostFolders(dir), Resolver: tip{RepoURL: repo.Dir, Branch: "release", Commit: sha},
		Root: "app", Python: deploytest.WriteFakePython(t, dir), Branch: "release",
		LockTimeout: 2 * time.Minute, StepTimeout: time.Minute, KeepReleases: 5, Node: "deployer-a",
	}
	workA := &deploy.Worker{Deployer: dep, App: deploy.DefaultApp, Hosts: hosts}
	idleB := &deploy.Worker{Deployer: &deploy.Deployer{}, App: deploy.DefaultApp, Hosts: hosts} // never runs: B only streams
	a := newDeployer(t, db, workA)
	b := newDeployer(t, db, idleB)
	dep.Observer = deploy.Observers{a.hub, a.rec, a.log}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- workA.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	// web2 is held by someone else: the deployment stops there, half done.
	lock := filepath.Join(dir, "web2", "app", ".pushdeploy.lock")
	if err := os.WriteFile(lock, []byte("deployment other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	release := deploytest.HoldLock(t, lock)
	ticket, err := workA.Submit(context.Background(), deploy.Request{Trigger: deploy.TriggerAPI, Push: deploy.Push{Branch: "release"}})
	if err != nil {
		t.Fatal(err)
	}
	fromA := a.events(t, ticket.ID, "")
	gotA := fromA.until(`"kind":"step"`, `"host":"web2"`, `"step":"lock"`, `"status":"running"`) // web1 is prepared

	// B replays what A has done so far from the log…
	fromB := b.events(t, ticket.ID, "")
	gotB := make([]string, 0, len(gotA))
	for range gotA {
		ev, ok := fromB.next()
		if !ok {
			t.Fatalf("B's stream ended after %d events; A had %d", len(gotB), len(gotA))
		}
		gotB = append(gotB, ev)
	}
	// B's overview shows the app's hosts where they are on A.
	overview := b.open(t, "/overview/events", "")
	overview.until(`event: app`, `"running":{"id":"`+ticket.ID+`"`, `{"host":"web2","status":"running","step":"lock"}`)

	// … then follows it live, to its end.
	release()
	gotA = append(gotA, fromA.rest()...)
	gotB = append(gotB, fromB.rest()...)
	overview.until(`event: app`, `"running":null`, `"last":{"id":"`+ticket.ID+`"`, `"status":"succeeded"`)
	if len(gotA) < 60 || !strings.Contains(gotA[len(gotA)-1], `"status":"succeeded"`) || !strings.Contains(gotB[len(gotB)-2], `"node":"deployer-a"`) {
		t.Fatalf("A streamed %d events, the last %q: want a deployment of deployer-a that succeeded", len(gotA), gotA[len(gotA)-1])
	}
	if d := diffEvents(gotA, gotB); d != "" {
		t.Fatalf("B's stream differs from A's: %s", d)
	}

	// A client that read A's stream up to the middle resumes on B.
	k := len(gotA) / 2
	again := b.events(t, ticket.ID, idOf(gotA[k-1])).rest()
	if d := diffEvents(gotA[k:], again); d != "" {
		t.Fatalf("B's stream from Last-Event-ID %s differs from A's after it: %s", idOf(gotA[k-1]), d)
	}
}

// diffEvents says where two lists of event blocks first differ.
func diffEvents(want, got []string) string {
	for i := range min(len(want), len(got)) {
		if want[i] != got[i] {
			return "event " + strconv.Itoa(i) + ": want\n" + want[i] + "got\n" + got[i]
		}
	}
	if len(want) != len(got) {
		return "want " + strconv.Itoa(len(want)) + " events, got " + strconv.Itoa(len(got))
	}
	return ""
}
