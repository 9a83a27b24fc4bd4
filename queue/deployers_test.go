package queue_test

// Several deploy.Workers (deployers) on one database, with the real queue
// and the real history, deploying with deploy's real remote scripts to
// fake hosts (one local folder each, commands run there by
// deploy/localrun).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/deploy/localrun"
	"github.com/pushdeploy/pushdeploy/history"
	"github.com/pushdeploy/pushdeploy/internal/deploytest"
	"github.com/pushdeploy/pushdeploy/internal/pgtest"
	"github.com/pushdeploy/pushdeploy/queue"
)

// folderDialer dials the fake hosts: each is a local folder, its commands
// run there by deploy/localrun; while gate is not nil and open, every Dial
// waits for it (a deployment held in its connect step).
type folderDialer struct {
	homes map[string]string
	gate  chan struct{}
}

func (d folderDialer) Dial(ctx context.Context, h deploy.Host) (deploy.Conn, error) {
	if d.gate != nil {
		select {
		case <-d.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	local := &localrun.Runner{Dir: d.homes[h.Name]}
	return local.Dial(ctx, deploy.Host{Name: h.Name, Local: true})
}

// tipResolver resolves to the branch tip of the repository.
type tipResolver struct{ dir string }

func (r tipResolver) Resolve(ctx context.Context, p deploy.Push) (deploy.Release, error) {
	out, err := exec.CommandContext(ctx, "git", "-C", r.dir, "rev-parse", "release").Output()
	if err != nil {
		return deploy.Release{}, fmt.Errorf("rev-parse: %w", err)
	}
	return deploy.Release{RepoURL: r.dir, Branch: "release", Commit: strings.TrimSpace(string(out))}, nil
}

// laterClock gives every call a time a second after the last one, so that
// every deployment's release name is its own.
type laterClock struct{ n atomic.Int64 }

func (c *laterClock) Now() time.Time { return time.Now().Add(time.Duration(c.n.Add(1)) * time.Second) }

// sharedDB is one database the deployers of a test share: the queue's and
// the history's tables.
type sharedDB struct {
	name string
	// queue opens a Queue on it for owner (through url, when not "").
	queue   func(t *testing.T, owner, url string, lease time.Duration) *queue.Queue
	history func(t *testing.T) history.Store
	url     string // PostgreSQL's
}

func sqliteDB(t *testing.T) sharedDB {
	dir := t.TempDir()
	return sharedDB{
		name: dir,
		queue: func(t *testing.T, owner, _ string, lease time.Duration) *queue.Queue {
			q, err := queue.OpenSQLite(context.Background(), filepath.Join(dir, "queue.db"), queue.Options{Owner: owner, Lease: lease})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { q.Close() })
			return q
		},
		history: func(t *testing.T) history.Store {
			st, err := history.Open(context.Background(), dir, history.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
	}
}

func postgresDB(t *testing.T) sharedDB {
	url := pgtest.New(t)
	return sharedDB{
		name: history.RedactURL(url),
		url:  url,
		queue: func(t *testing.T, owner, via string, lease time.Duration) *queue.Queue {
			if via == "" {
				via = url
			}
			q, err := queue.OpenPostgres(context.Background(), via, queue.Options{Owner: owner, Lease: lease})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { q.Close() })
			return q
		},
		history: func(t *testing.T) history.Store {
			st, err := history.OpenPostgres(context.Background(), url, history.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
	}
}

// fleet is the app's hosts, its repository, and the deployers of a test.
type fleet struct {
	t     *testing.T
	db    sharedDB
	repo  *deploytest.Repo
	homes map[string]string
	hosts []deploy.Host
	py    string
	clock laterClock
	hist  history.Store // to read the record

	// running counts the app's deployments running at this moment, on
	// every deployer; most is the most there ever were.
	mu      sync.Mutex
	running map[string]bool
	most    int
}

func newFleet(t *testing.T, db sharedDB, hosts int) *fleet {
	dir := t.TempDir()
	f := &fleet{t: t, db: db, repo: deploytest.NewRepo(t, filepath.Join(dir, "repo")), homes: map[string]string{}}
	f.py = deploytest.WriteFakePython(t, dir)
	for i := 1; i <= hosts; i++ {
		name := fmt.Sprintf("web%d", i)
		f.homes[name] = filepath.Join(dir, name)
		if err := os.MkdirAll(f.homes[name], 0o755); err != nil {
			t.Fatal(err)
		}
		f.hosts = append(f.hosts, deploy.Host{Name: name, User: "deploy", Addr: name, Port: 22})
	}
	f.repo.Commit("flask")
	f.hist = db.history(t)
	return f
}

// Observe counts the deployments that run at once.
func (f *fleet) Observe(ev deploy.Event) {
	if ev.Kind != deploy.EventDeployment {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.running == nil {
		f.running = map[string]bool{}
	}
	switch ev.Status {
	case deploy.StatusRunning:
		f.running[ev.DeploymentID] = true
		f.most = max(f.most, len(f.running))
	case deploy.StatusQueued:
	default:
		delete(f.running, ev.DeploymentID)
	}
}

// deployer is one deployer: a Worker on its own Queue and its own
// history Store and Recorder on the shared database.
type deployer struct {
	w      *deploy.Worker
	q      *queue.Queue
	cancel context.CancelFunc
	done   chan struct{}
}

// opts of a deployer.
type deployerOpts struct {
	owner  string
	lease  time.Duration
	via    string        // the database URL to use (a proxy), "" the shared one
	gate   chan struct{} // holds its deployments at connect until closed
	wrap   func(deploy.Backlog) deploy.Backlog
	noLoop bool          // never runs Run
	grace  time.Duration // Worker.Grace (default 1m)
}

func (f *fleet) deployer(o deployerOpts) *deployer {
	t := f.t
	if o.lease == 0 {
		o.lease = 3 * time.Second
	}
	if o.grace == 0 {
		o.grace = time.Minute
	}
	q := f.db.queue(t, o.owner, o.via, o.lease)
	st := f.db.history(t)
	rec := history.NewRecorder(st, nil)
	rec.Start()
	var backlog deploy.Backlog = &queue.Backlog{Q: q, Database: f.db.name}
	if o.wrap != nil {
		backlog = o.wrap(backlog)
	}
	d := &deploy.Deployer{
		Dialer: folderDialer{homes: f.homes, gate: o.gate}, Resolver: tipResolver{dir: f.repo.Dir},
		Root: "app", Python: f.py, LockTimeout: 30 * time.Second, StepTimeout: time.Minute, Now: f.clock.Now,
		Observer: deploy.Observers{rec, f},
	}
	w := &deploy.Worker{Deployer: d, Hosts: f.hosts, Backlog: backlog, Record: st, PollEvery: 50 * time.Millisecond, Grace: o.grace}
	dp := &deployer{w: w, q: q, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	dp.cancel = cancel
	if o.noLoop {
		close(dp.done)
	} else {
		go func() {
			defer close(dp.done)
			_ = w.Run(ctx)
		}()
	}
	t.Cleanup(func() {
		dp.stop()
		rec.Close()
	})
	return dp
}

// stop ends the deployer's Run and waits for it.
func (d *deployer) stop() {
	d.cancel()
	<-d.done
}

// push commits to the branch and asks dp for the tip, by a webhook of
// delivery id.
func (f *fleet) push(dp *deployer, delivery string) deploy.Ticket {
	f.t.Helper()
	f.repo.Commit("flask # " + delivery)
	tk, err := dp.w.Submit(context.Background(), deploy.Request{Trigger: deploy.TriggerWebhook, Provider: "github", DeliveryID: delivery,
		Push: deploy.Push{Branch: "release"}})
	if err != nil {
		f.t.Fatalf("push %s: %v", delivery, err)
	}
	return tk
}

// status waits until the history has deployment id ended, and returns it.
func (f *fleet) ended(id string) *deploy.Deployment {
	f.t.Helper()
	var got *deploy.Deployment
	waitFor(f.t, "deployment "+id+" to end in the history", func() (bool, error) {
		d, ok, err := f.hist.Deployment(context.Background(), id)
		if err != nil || !ok {
			return false, err
		}
		got = d
		return d.Status != deploy.StatusQueued && d.Status != deploy.StatusRunning, nil
	})
	return got
}

// switches are the deployment ids revisions.log has for host.
func (f *fleet) switches(host string) []string {
	b, _ := os.ReadFile(filepath.Join(f.homes[host], "app", "revisions.log"))
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if fields := strings.Fields(line); len(fields) >= 5 {
			out = append(out, fields[4])
		}
	}
	return out
}

func TestDeployersSQLite(t *testing.T) { deployersSuite(t, sqliteDB) }

func TestDeployersPostgres(t *testing.T) {
	deployersSuite(t, postgresDB)
	t.Run("FencingOnNetworkCut", testFencingOnNetworkCut)
	t.Run("DatabaseDown", testDatabaseDown)
}

func deployersSuite(t *testing.T, newDB func(*testing.T) sharedDB) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, sharedDB)
	}{
		{"AcceptedIsDeployedByAnother", testAcceptedIsDeployedByAnother},
		{"OneAtATime", testOneAtATime},
		{"Failover", testFailover},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, newDB(t)) })
	}
}

// testAcceptedIsDeployedByAnother: a request a deployer answered is in the
// database when Submit returns; that deployer never runs it (it "died"
// right after answering): another one deploys it, and the forge's
// redelivery to the other one is a duplicate.
func testAcceptedIsDeployedByAnother(t *testing.T, db sharedDB) {
	f := newFleet(t, db, 2)
	a := f.deployer(deployerOpts{owner: "node-a", noLoop: true})
	tk := f.push(a, "delivery-1")
	if tk.Status != "queued" {
		t.Fatalf("ticket %+v, want queued", tk)
	}
	j, ok, err := a.q.Job(context.Background(), tk.ID)
	if err != nil || !ok || j.State != queue.StateWaiting {
		t.Fatalf("after Submit the database has %+v, %v, %v; want it waiting", j, ok, err)
	}
	b := f.deployer(deployerOpts{owner: "node-b"})
	if got := f.ended(tk.ID); got.Status != deploy.StatusSucceeded {
		t.Fatalf("deployment %s: %s %v, want succeeded (by node-b)", tk.ID, got.Status, got.Err)
	}
	for _, h := range f.hosts {
		if got := f.switches(h.Name); len(got) != 1 || got[0] != tk.ID {
			t.Errorf("%s switched by %v, want %s", h.Name, got, tk.ID)
		}
	}
	again, err := b.w.Submit(context.Background(), deploy.Request{Trigger: deploy.TriggerWebhook, Provider: "github", DeliveryID: "delivery-1",
		Push: deploy.Push{Branch: "release"}})
	if err != nil || again.Status != "duplicate" || again.ID != tk.ID {
		t.Errorf("redelivery to node-b: %+v, %v; want a duplicate of %s", again, err, tk.ID)
	}
}

// testOneAtATime: pushes spread over three deployers, some while the
// deployment of the one before runs, so that deployers try to claim the
// next while another runs one: one deployment of the app at a time across
// all of them, in the order asked, each on every host.
func testOneAtATime(t *testing.T, db sharedDB) {
	f := newFleet(t, db, 2)
	ds := []*deployer{
		f.deployer(deployerOpts{owner: "node-a"}),
		f.deployer(deployerOpts{owner: "node-b"}),
		f.deployer(deployerOpts{owner: "node-c"}),
	}
	var order []string
	for i := range 6 {
		tk := f.push(ds[i%3], fmt.Sprintf("delivery-%d", i))
		if tk.Status != "queued" {
			t.Fatalf("push %d: %+v, want a deployment of its own", i, tk)
		}
		order = append(order, tk.ID)
		// Every other push comes once the one before has ended (its
		// deployer then claims it), the others while it runs (whoever
		// polls first, once it has ended).
		waitFor(t, "deployment "+tk.ID+" to start", func() (bool, error) {
			j, _, err := ds[0].q.Job(context.Background(), tk.ID)
			return err == nil && j.State != queue.StateWaiting && (i%2 == 1 || j.State != queue.StateRunning), err
		})
	}
	owners := map[string]bool{}
	for _, id := range order {
		if got := f.ended(id); got.Status != deploy.StatusSucceeded {
			t.Errorf("deployment %s: %s %v", id, got.Status, got.Err)
		}
		j, _, _ := ds[0].q.Job(context.Background(), id)
		owners[j.Owner] = true
	}
	for _, h := range f.hosts {
		if got := f.switches(h.Name); strings.Join(got, " ") != strings.Join(order, " ") {
			t.Errorf("%s switched by %v, want %v in that order", h.Name, got, order)
		}
	}
	f.mu.Lock()
	most := f.most
	f.mu.Unlock()
	if most != 1 {
		t.Errorf("%d deployments of the app ran at once, want 1", most)
	}
	t.Logf("6 pushes over 3 deployers, run by %d of them", len(owners))
}

// deadBacklog is the Backlog of a deployer whose process dies once it has
// claimed: it never renews the claim, never finishes it.
type deadBacklog struct{ deploy.Backlog }

func (b deadBacklog) Claim(ctx context.Context, app string) (deploy.Lease, error) {
	l, err := b.Backlog.Claim(ctx, app)
	if err != nil {
		return nil, err
	}
	return deadLease{l}, nil
}

type deadLease struct{ deploy.Lease }

func (deadLease) Hold(ctx context.Context) (context.Context, func()) { return ctx, func() {} }
func (deadLease) Finish(context.Context, deploy.Status) error        { return deploy.ErrClaimLost }

// testFailover: the deployer running a deployment dies (it stops renewing
// its claim; its deployment hangs, never touching a host): within the
// lease another deployer marks it interrupted, naming it, and runs the
// app's next deployment.
func testFailover(t *testing.T, db sharedDB) {
	f := newFleet(t, db, 2)
	const lease = 2 * time.Second
	a := f.deployer(deployerOpts{owner: "node-a", lease: lease, gate: make(chan struct{}), grace: 100 * time.Millisecond,
		wrap: func(b deploy.Backlog) deploy.Backlog { return deadBacklog{b} }})
	first := f.push(a, "delivery-1")
	var claimed time.Time
	waitFor(t, "node-a to claim", func() (bool, error) {
		j, _, err := a.q.Job(context.Background(), first.ID)
		claimed = time.Now()
		return err == nil && j.State == queue.StateRunning && j.Owner == "node-a", err
	})
	b := f.deployer(deployerOpts{owner: "node-b", lease: lease})
	second := f.push(b, "delivery-2")
	got := f.ended(first.ID)
	took := time.Since(claimed)
	if got.Status != deploy.StatusInterrupted || got.Err == nil || !strings.Contains(got.Err.Error(), "node-a") {
		t.Errorf("the dead deployer's deployment: %s %v, want interrupted naming node-a", got.Status, got.Err)
	}
	if next := f.ended(second.ID); next.Status != deploy.StatusSucceeded {
		t.Errorf("the next deployment: %s %v, want succeeded", next.Status, next.Err)
	}
	for _, h := range f.hosts {
		if got := f.switches(h.Name); len(got) != 1 || got[0] != second.ID {
			t.Errorf("%s switched by %v, want only %s", h.Name, got, second.ID)
		}
	}
	t.Logf("taken over %s after the claim (lease %s)", took.Round(10*time.Millisecond), lease)
}

// testFencingOnNetworkCut: a deployer cut from the database while it
// holds a deployment loses its claim: it stops that deployment and never
// switches a host after, while another deployer expires the claim and
// deploys the app's next deployment. When the network returns, the first
// one's outcome is refused (the claim is no longer its).
func testFencingOnNetworkCut(t *testing.T) {
	db := postgresDB(t)
	f := newFleet(t, db, 2)
	const lease = 2 * time.Second
	proxy := pgtest.Shared(t).Proxy(t)
	gate := make(chan struct{})
	a := f.deployer(deployerOpts{owner: "node-a", lease: lease, via: proxy.Via(t, db.url), gate: gate})
	first := f.push(a, "delivery-1")
	waitFor(t, "node-a to claim", func() (bool, error) {
		j, _, err := a.q.Job(context.Background(), first.ID)
		return err == nil && j.State == queue.StateRunning, err
	})
	proxy.Cut()
	b := f.deployer(deployerOpts{owner: "node-b", lease: lease})
	waitFor(t, "node-b to expire node-a's claim", func() (bool, error) {
		j, _, err := b.q.Job(context.Background(), first.ID)
		return err == nil && j.State == queue.StateInterrupted, err
	})
	close(gate) // node-a's deployment may go on now: it must not switch
	second := f.push(b, "delivery-2")
	if next := f.ended(second.ID); next.Status != deploy.StatusSucceeded {
		t.Fatalf("node-b's deployment: %s %v, want succeeded", next.Status, next.Err)
	}
	waitFor(t, "node-a's deployment to end", func() (bool, error) {
		d, ok := a.w.Get(first.ID)
		return ok && d.Status != deploy.StatusRunning && d.Status != deploy.StatusQueued, nil
	})
	if d, _ := a.w.Get(first.ID); d.Status != deploy.StatusInterrupted {
		t.Errorf("node-a's deployment: %s %v, want interrupted", d.Status, d.Err)
	}
	proxy.Restore()
	for _, h := range f.hosts {
		if got := f.switches(h.Name); len(got) != 1 || got[0] != second.ID {
			t.Errorf("%s switched by %v, want only node-b's %s", h.Name, got, second.ID)
		}
	}
}

// testDatabaseDown: with the database stopped, Submit commits nothing and
// says so with a *deploy.UnavailableError naming the database without its
// password (the webhook answers 503).
func testDatabaseDown(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	db := postgresDB(t)
	db.url, db.name = url, history.RedactURL(url)
	f := newFleet(t, db, 1)
	a := f.deployer(deployerOpts{owner: "node-a", via: url, noLoop: true})
	srv.Stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := a.w.Submit(ctx, deploy.Request{Trigger: deploy.TriggerAPI, Push: deploy.Push{Branch: "release"}})
	var ue *deploy.UnavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("submit with the database stopped: %v, want a *deploy.UnavailableError", err)
	}
	if pw := passwordOf(url); pw == "" || strings.Contains(err.Error(), pw) {
		t.Errorf("the error shows the password (or the URL has none): %v", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("the error does not name the database: %v", err)
	}
	if h := a.w.Health(); h.QueueLength != 0 || len(a.w.List()) != 0 {
		t.Errorf("after a refused submit: %+v, %d listed; want nothing", h, len(a.w.List()))
	}
}

func passwordOf(url string) string {
	_, rest, _ := strings.Cut(url, "://")
	userinfo, _, _ := strings.Cut(rest, "@")
	_, pw, _ := strings.Cut(userinfo, ":")
	return pw
}
