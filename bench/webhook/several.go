package main

// The several-deployers benchmark (-db): the webhook load of main.go spread
// round-robin over -deployers `pushdeploy serve` processes sharing one
// database (PostgreSQL through DEPLOY_DATABASE_URL; or SQLite, one
// deployer, as the comparison), while a deployment runs. Every webhook
// answered 202 has been committed to the database's queue (queue/), so the
// benchmark measures that durable accept; some requests repeat an earlier
// delivery id to another deployer, as a forge's retry through a load
// balancer would. At the end it reads the queue's tables itself (store.go)
// and checks that every delivery answered 202 is recorded exactly once,
// that the redeliveries were answered duplicate, and how many deployments
// were made (check.go).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// severalProblem says what is wrong with the several-deployers flags, ""
// when nothing is.
func (o options) severalProblem() string {
	switch {
	case o.db == "" && o.deployers != 1:
		return "-deployers needs -db postgres"
	case o.db == "":
		return ""
	case o.db != "sqlite" && o.db != "postgres":
		return fmt.Sprintf("-db: sqlite or postgres, not %q", o.db)
	case o.db == "sqlite" && o.deployers != 1:
		return "-db sqlite runs one deployer (SQLite is a single deployer's store); several need -db postgres"
	case o.attack != "":
		return "-attack and -db are two different benchmarks"
	case o.redeliver < 0 || o.redeliver > 0.5:
		return fmt.Sprintf("-redeliver %g: want 0 to 0.5", o.redeliver)
	}
	return ""
}

// deployer is one `pushdeploy serve` of the benchmark.
type deployer struct {
	name string // DEPLOY_NODE_NAME: d1, d2, …
	s    *server
	proc *serveProc
	log  string

	memBefore, memAfter mem
	cpuBefore, cpuAfter time.Duration
	shutdown            shutdownResult
}

func runSeveral(ctx context.Context, o options) error {
	r, closeRig, err := newRig(ctx, o.hosts, o.bin)
	if err != nil {
		return err
	}
	defer closeRig()
	dataDir := func(i int) string { return filepath.Join(r.env.Dir, fmt.Sprintf("data-d%d", i+1)) }
	st, err := openStore(ctx, o.db, dataDir(0), o.pgFsync)
	if err != nil {
		return err
	}
	defer st.close()
	ds, err := r.startDeployers(ctx, o, st, dataDir)
	defer stopDeployers(ds)
	if err != nil {
		return err
	}
	targets := make([]*server, len(ds))
	for i, d := range ds {
		targets[i] = d.s
	}

	// One signed push, to the first deployer, starts the deploy the load
	// runs beside; whichever deployer claims it runs it.
	releaseBody, otherBody := bitbucketPush("release", r.sha), bitbucketPush("other", r.sha)
	startID := "start-" + newUUID()
	code, ans, err := ds[0].s.webhook(http.DefaultClient, startID, releaseBody, true)
	if err != nil || code != http.StatusAccepted || ans.Deployment == "" {
		return fmt.Errorf("first push: %d %+v %v\n%s", code, ans, err, tailFile(ds[0].log))
	}
	running := ans.Deployment
	note("deployment %s queued; waiting until a deployer runs it", running)
	owner, err := st.waitRunning(ctx, running, 2*time.Minute)
	if err != nil {
		return err
	}
	runner := deployerNamed(ds, owner)
	if runner == nil {
		return fmt.Errorf("deployment %s runs on %q, none of the benchmark's deployers", running, owner)
	}
	note("%s runs it", owner)
	if o.startStep != "" {
		note("waiting until the deploy reaches h1 %s", o.startStep)
		if err := runner.s.waitStep(ctx, running, "h1 "+o.startStep, r.env.HostsFile, 3*time.Minute); err != nil {
			return err
		}
	}

	client := loadClient(o)
	// Release pushes: each deployer opens its database connections (10
	// at most) before the clock starts; they join the waiting deployment.
	known := append(warmUp(client, targets, max(12, min(o.workers, 32)/len(ds)), releaseBody), startID)
	shots := plan(o.requests(), len(ds), o.rate, o.redeliver)

	sampler := startSampler(runner.s, running, r.env.HostsFile, runner.proc.pid)
	var m machineUse
	m.begin(ds, st)
	note("sending %d webhooks/s for %v over %d deployer(s) on %s, %d workers", o.rate, o.duration, len(ds), o.db, o.workers)
	res := load(ctx, client, targets, o, shots, releaseBody, otherBody)
	m.end(ds, st)
	steps := sampler.stop()

	rows, err := st.deliveries(ctx)
	if err != nil {
		return err
	}
	jobs, err := st.jobs(ctx)
	if err != nil {
		return err
	}
	chk := check(res.samples, rows, jobs, known)

	note("SIGTERM to the deployers")
	stopDeployers(ds)
	ok := reportSeveral(os.Stdout, severalInput{o: o, res: res, chk: chk, ds: ds, runner: runner, running: running, steps: steps, m: m})
	if !ok {
		return errors.New("verdict FAIL (see the report)")
	}
	return nil
}

// startDeployers starts o.deployers serves named d1, d2, … on st, each
// with a data folder of its own (dataDir), one webhook secret and API
// token for all.
func (r *rig) startDeployers(ctx context.Context, o options, st *store, dataDir func(int) string) ([]*deployer, error) {
	secret, token := testhosts.Secret(24), testhosts.Secret(24)
	var ds []*deployer
	for i := 0; i < o.deployers; i++ {
		addr, err := freeAddr()
		if err != nil {
			return ds, err
		}
		d := &deployer{name: fmt.Sprintf("d%d", i+1), s: &server{url: "http://" + addr, secret: secret, token: token}}
		vars := r.vars(d.s, addr, dataDir(i))
		vars["DEPLOY_RESTART_CMD"] = fmt.Sprintf("sleep %g", o.restartSleep.Seconds())
		vars["DEPLOY_RATE_LIMIT"] = "0" // all the load comes from one address
		vars["DEPLOY_NODE_NAME"] = d.name
		if st.url != "" {
			vars["DEPLOY_DATABASE_URL"] = st.url
		}
		d.log = filepath.Join(r.tmp, "serve-"+d.name+".log")
		if o.logPath != "" {
			d.log = o.logPath + "." + d.name
		}
		if d.proc, err = r.startServe(ctx, d.s, vars, "deploy-"+d.name+".env", d.log); err != nil {
			return ds, fmt.Errorf("%s: %w", d.name, err)
		}
		ds = append(ds, d)
	}
	return ds, nil
}

// stopDeployers sends SIGTERM to every deployer still running, at once,
// and waits for their exits.
func stopDeployers(ds []*deployer) {
	var wg sync.WaitGroup
	for _, d := range ds {
		if d.shutdown.done {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.shutdown = d.proc.stop()
		}()
	}
	wg.Wait()
}

func deployerNamed(ds []*deployer, name string) *deployer {
	for _, d := range ds {
		if d.name == name {
			return d
		}
	}
	return nil
}

// machineUse is what the load cost, measured around it.
type machineUse struct {
	start, stop           time.Time
	busyBefore, busyAfter time.Duration // all cores
	totalBefore           time.Duration
	totalAfter            time.Duration
	dbBefore, dbAfter     time.Duration // PostgreSQL's processes
	self                  [2]syscall.Rusage
	load                  [2]string
}

func (m *machineUse) begin(ds []*deployer, st *store) {
	for _, d := range ds {
		d.memBefore, d.cpuBefore = readMem(d.proc.pid), procCPU(d.proc.pid, false)
	}
	m.dbBefore = st.cpu()
	m.busyBefore, m.totalBefore = machineCPU()
	m.load[0] = loadavg()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &m.self[0])
	m.start = time.Now()
}

func (m *machineUse) end(ds []*deployer, st *store) {
	m.stop = time.Now()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &m.self[1])
	for _, d := range ds {
		d.memAfter, d.cpuAfter = readMem(d.proc.pid), procCPU(d.proc.pid, false)
	}
	m.dbAfter = st.cpu()
	m.busyAfter, m.totalAfter = machineCPU()
	m.load[1] = loadavg()
}
