package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseRestartBatch(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want RestartBatch
	}{
		{"1", RestartBatch{N: 1}},
		{"2", RestartBatch{N: 2}},
		{"250", RestartBatch{N: 250}},
		{"1%", RestartBatch{N: 1, Percent: true}},
		{"10%", RestartBatch{N: 10, Percent: true}},
		{"100%", RestartBatch{N: 100, Percent: true}},
	} {
		got, err := ParseRestartBatch(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseRestartBatch(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if got.String() != tc.in {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), tc.in)
		}
	}
	for _, in := range []string{"", "0", "0%", "101%", "-1", "+2", " 2", "2 ", "2.5", "abc", "%", "2%%", "%2", "99999999999999999999"} {
		if got, err := ParseRestartBatch(in); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q is neither", in)) {
			t.Errorf("ParseRestartBatch(%q) = %+v, %v; want an error naming the value", in, got, err)
		}
	}
}

// TestRestartBatchSize: N or N% of the pool (rounded down, at least 1),
// and never more than leaves one host serving.
func TestRestartBatchSize(t *testing.T) {
	for _, tc := range []struct {
		batch RestartBatch
		want  []int // for pools of 1..10 hosts
	}{
		{RestartBatch{}, []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{RestartBatch{N: 1}, []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{RestartBatch{N: 2}, []int{1, 1, 2, 2, 2, 2, 2, 2, 2, 2}},
		{RestartBatch{N: 5}, []int{1, 1, 2, 3, 4, 5, 5, 5, 5, 5}},
		{RestartBatch{N: 100}, []int{1, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{RestartBatch{N: 10, Percent: true}, []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{RestartBatch{N: 25, Percent: true}, []int{1, 1, 1, 1, 1, 1, 1, 2, 2, 2}},
		{RestartBatch{N: 50, Percent: true}, []int{1, 1, 1, 2, 2, 3, 3, 4, 4, 5}},
		{RestartBatch{N: 99, Percent: true}, []int{1, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{RestartBatch{N: 100, Percent: true}, []int{1, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
	} {
		var got []int
		for pool := 1; pool <= 10; pool++ {
			got = append(got, tc.batch.Size(pool))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: sizes for pools of 1..10 %v, want %v", tc.batch, got, tc.want)
		}
	}
}

// overlaps records which hosts' restarts ran at the same time. Each
// restart waits (up to a deadline) for the rest of its expected batch to
// start, so that the restarts of a batch surely overlap when the deployer
// runs them at once; a deployer that ran them one by one shows no overlap.
type overlaps struct {
	batch, total int
	mu           sync.Mutex
	started      int
	running      map[string]bool
	with         map[string]map[string]bool
}

func (o *overlaps) begin(host string) (target int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	i := o.started
	o.started++
	for h := range o.running {
		o.with[host][h], o.with[h][host] = true, true
	}
	o.running[host] = true
	return min((i/o.batch+1)*o.batch, o.total)
}

func (o *overlaps) wait(target int) {
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		o.mu.Lock()
		n := o.started
		o.mu.Unlock()
		if n >= target {
			return
		}
		time.Sleep(time.Millisecond) // polls the condition, until the deadline
	}
}

func (o *overlaps) end(host string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.running, host)
}

// overlapDialer wraps the rig's dialer: its connections time the restarts.
type overlapDialer struct {
	Dialer
	o *overlaps
}

func (d overlapDialer) Dial(ctx context.Context, h Host) (Conn, error) {
	c, err := d.Dialer.Dial(ctx, h)
	if err != nil {
		return nil, err
	}
	return overlapConn{Conn: c, host: h.Name, o: d.o}, nil
}

type overlapConn struct {
	Conn
	host string
	o    *overlaps
}

func (c overlapConn) Run(ctx context.Context, cmd Command) error {
	// The restart runs in the host's deployment command (phase.sh), from
	// the deployer's line "activate" to the mark "activated" (with the
	// health check's wait, the after-switch hook and retention).
	if len(cmd.Args) < 3 || cmd.Args[2] != phaseScript {
		return c.Conn.Run(ctx, cmd)
	}
	cmd.Stdin = &activateReader{r: cmd.Stdin, begin: func() { c.o.wait(c.o.begin(c.host)) }}
	cmd.Stdout = &activatedWriter{w: cmd.Stdout, end: func() { c.o.end(c.host) }}
	return c.Conn.Run(ctx, cmd)
}

// activateReader calls begin before it passes on the line "activate" (the
// deployer's lines come one per read, as each is one write to a pipe).
type activateReader struct {
	r     io.Reader
	begin func()
}

func (a *activateReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if strings.Contains(string(p[:n]), "\nactivate\n") || strings.HasPrefix(string(p[:n]), "activate\n") {
		a.begin()
	}
	return n, err
}

// activatedWriter calls end once the mark "activated" has come, before
// it passes the mark on (the deployer may activate the next batch as soon
// as it has read it). The mark may come split over two writes: retention's
// output follows it at once, so a read of the command's output can end
// inside it; the deployer reads it only with its last byte, the newline.
type activatedWriter struct {
	w    io.Writer
	end  func()
	once sync.Once
	tail string // the end of the output so far, as long as the mark less one byte
}

func (a *activatedWriter) Write(p []byte) (int, error) {
	const mark = " activated\n"
	seen := a.tail + string(p)
	if strings.Contains(seen, mark) {
		a.once.Do(a.end)
	}
	a.tail = seen[max(len(seen)-(len(mark)-1), 0):]
	return a.w.Write(p)
}

// TestBatchRestartsAtOnce: the hosts of a batch restart at the same time,
// hosts of different batches never; without a health check every host
// switches before the first restart, with one each batch switches only
// once the batch before it is healthy.
func TestBatchRestartsAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name   string
		hosts  int
		batch  string
		health bool
		want   [][]string
	}{
		{"2 of 5", 5, "2", false, [][]string{{"web1", "web2"}, {"web3", "web4"}, {"web5"}}},
		{"50% of 5, health check", 5, "50%", true, [][]string{{"web1", "web2"}, {"web3", "web4"}, {"web5"}}},
		{"10 of 4: all but one", 4, "10", false, [][]string{{"web1", "web2", "web3"}, {"web4"}}},
		{"10 of 4, health check", 4, "10", true, [][]string{{"web1", "web2", "web3"}, {"web4"}}},
		{"1 of 3", 3, "1", true, [][]string{{"web1"}, {"web2"}, {"web3"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.hosts)
			batch, err := ParseRestartBatch(tc.batch)
			r.must(err)
			r.d.RestartBatch = batch
			if tc.health {
				r.d.HealthURL = "http://{host}:8000/health"
				r.d.HTTPClient = &http.Client{Transport: healthByHost{}}
			}
			o := &overlaps{batch: len(tc.want[0]), total: tc.hosts, running: map[string]bool{}, with: map[string]map[string]bool{}}
			for _, h := range r.hosts {
				o.with[h.Name] = map[string]bool{}
			}
			r.d.Dialer = overlapDialer{Dialer: r.dialer, o: o}
			rec := &recorder{}
			r.d.Observer = rec
			r.commit("flask")
			if _, err := r.deploy(); err != nil {
				t.Fatal(err)
			}
			for _, b := range tc.want {
				for _, h := range b {
					want := slices.DeleteFunc(slices.Clone(b), func(m string) bool { return m == h })
					if got := slices.Sorted(maps.Keys(o.with[h])); !slices.Equal(got, want) {
						t.Errorf("%s restarted at the same time as %v, want %v (its batch-mates)", h, got, want)
					}
				}
			}
			checkBatchOrder(t, rec.events(), tc.want, tc.health)
		})
	}
}

// checkBatchOrder checks the switch order of the batches in the events:
// without a health check every switch before the first restart; with one,
// a batch's switches after the batch before it has ended its health step.
func checkBatchOrder(t *testing.T, evs []Event, batches [][]string, health bool) {
	t.Helper()
	at := map[string]int{} // "web1 switch start", "web1 health end" -> index
	for i, ev := range evs {
		if ev.Kind != EventStep {
			continue
		}
		when := map[Status]string{StatusRunning: "start", StatusSucceeded: "end"}[ev.Status]
		at[ev.Host+" "+string(ev.Step)+" "+when] = i
	}
	for bi, b := range batches {
		for _, h := range b {
			sw := at[h+" switch start"]
			if !health {
				if first := at[batches[0][0]+" restart start"]; sw > first {
					t.Errorf("%s switched after the first restart", h)
				}
				continue
			}
			if bi == 0 {
				continue
			}
			for _, p := range batches[bi-1] {
				if sw < at[p+" health end"] {
					t.Errorf("%s switched before %s (batch before) was healthy", h, p)
				}
			}
		}
	}
}

// TestFailingBatchGoesBack: a batch with a failing host goes back as a
// whole (restarted on the previous release), the hosts after it keep (or
// get back) their current, and the batches before keep the new release,
// unless RollbackAll sends them back too.
func TestFailingBatchGoesBack(t *testing.T) {
	for _, tc := range []struct {
		name        string
		health, all bool
	}{
		{"health check", true, false},
		{"health check, rollback all", true, true},
		{"restart fails, no health check", false, false},
		{"restart fails, no health check, rollback all", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, 5)
			r.commit("flask")
			first, err := r.deploy()
			r.must(err)
			old := "releases/" + first.ReleaseName
			r.d.RestartBatch = RestartBatch{N: 2}
			r.d.RollbackAll = tc.all
			wantStep := StepHealth
			if tc.health {
				r.d.HealthURL = "http://{host}:8000/health"
				r.d.HealthTimeout = time.Second
				r.d.HTTPClient = &http.Client{Transport: healthByHost{sick: map[string]bool{"web3": true}}}
			} else {
				wantStep = StepRestart
				r.d.RestartCmd += `; if [ "${HOME##*/}" = web3 ] && grep -qx 'flask==2' requirements.txt; then echo "web3 will not start" >&2; exit 4; fi`
			}
			r.commit("flask==2")
			dep, err := r.deploy()
			var se *StepError
			if !errors.As(err, &se) || se.Host != "web3" || se.Step != wantStep {
				t.Fatalf("got %v, want a %s failure on web3", err, wantStep)
			}
			newRel := "releases/" + dep.ReleaseName
			want := map[string]struct {
				current string
				status  Status
				steps   string // the steps after before-switch
			}{
				// (Their status is not checked: a host that keeps the new
				// release of a failed deployment reads running, as it did
				// before batches.)
				"web1": {newRel, "", "switch restart health after-switch"},
				"web2": {newRel, "", "switch restart health after-switch"},
				"web3": {old, StatusFailed, "switch restart health revert restart-previous"},
				"web4": {old, StatusRolledBack, "switch restart health after-switch revert restart-previous"},
				"web5": {old, StatusCancelled, "cleanup"},
			}
			if tc.all {
				for _, h := range []string{"web1", "web2"} {
					w := want[h]
					w.current, w.status, w.steps = old, StatusRolledBack, w.steps+" revert restart-previous"
					want[h] = w
				}
			}
			if !tc.health {
				for h, w := range want {
					w.steps = strings.ReplaceAll(w.steps, " health", "")
					want[h] = w
				}
				// web5 was
				// switched with every host and goes back without a restart.
				want["web5"] = struct {
					current string
					status  Status
					steps   string
				}{old, StatusRolledBack, "switch revert"}
			}
			for i, h := range r.hosts {
				w := want[h.Name]
				hr := dep.Hosts[i]
				steps := stepNames(hr)
				steps = strings.TrimSpace(steps[strings.Index(steps, "before-switch")+len("before-switch"):])
				if r.current(h.Name) != w.current || (w.status != "" && hr.Status != w.status) || steps != w.steps {
					t.Errorf("%s: current %q, status %s, steps %q; want %q, %s, %q", h.Name, r.current(h.Name), hr.Status, steps, w.current, w.status, w.steps)
				}
				wantReleases := 2
				if w.current == old {
					wantReleases = 1
				}
				if got := r.releases(h.Name); len(got) != wantReleases {
					t.Errorf("%s: releases %v, want %d", h.Name, got, wantReleases)
				}
				// The app runs the release current points at: the restart
				// environment last written names its commit.
				env, _ := os.ReadFile(filepath.Join(r.dialer.homes[h.Name], "restart.env"))
				wantCommit := r.commits[1]
				if w.current == old {
					wantCommit = r.commits[0]
				}
				if !strings.Contains(string(env), "COMMIT="+wantCommit+"\n") {
					t.Errorf("%s: last restarted with\n%s\nwant COMMIT=%s", h.Name, env, wantCommit)
				}
			}
		})
	}
}
