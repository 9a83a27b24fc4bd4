package metrics

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// fakeQueue is a worker's Health, fixed.
type fakeQueue struct{ h deploy.Health }

func (q fakeQueue) Health() deploy.Health { return q.h }

// hostCommits returns app's pushdeploy_host_commit_info series as host ->
// commit release, read back from the registry.
func hostCommits(t *testing.T, c *Collector, app string) map[string]string {
	t.Helper()
	fams, err := c.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range fams {
		if f.GetName() != "pushdeploy_host_commit_info" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := labels(m)
			if l["app"] != app {
				continue
			}
			if _, dup := out[l["host"]]; dup {
				t.Errorf("host %s has more than one pushdeploy_host_commit_info series", l["host"])
			}
			if m.GetGauge().GetValue() != 1 {
				t.Errorf("host %s: pushdeploy_host_commit_info is %v, want 1", l["host"], m.GetGauge().GetValue())
			}
			out[l["host"]] = l["commit"] + " " + l["release"]
		}
	}
	return out
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

// stepCount is how many step ends the step histogram holds for step and
// status.
func stepCount(t *testing.T, c *Collector, step, status string) uint64 {
	t.Helper()
	fams, err := c.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "pushdeploy_step_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			if l := labels(m); l["step"] == step && l["status"] == status {
				return m.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}

// TestMetricsFollowRealDeployments deploys to two hosts (success, then a
// failing pip, then one host only, then a rollback) with the Collector as
// the deployer's Observer, and checks every series after each.
func TestMetricsFollowRealDeployments(t *testing.T) {
	r := newRig(t, 2)
	c := New()
	r.d.Observer = c
	web1 := r.hosts[0]

	sha1 := r.commit("flask==3.0")
	first := r.deploy()
	if first.Status != deploy.StatusSucceeded {
		t.Fatalf("first deploy: %s %v", first.Status, first.Err)
	}
	if got := testutil.ToFloat64(c.deployments.WithLabelValues("default", "deploy", "succeeded")); got != 1 {
		t.Errorf("deployments_total{deploy,succeeded} = %v, want 1", got)
	}
	if got := stepCount(t, c, "switch", "succeeded"); got != 2 {
		t.Errorf("switch steps observed: %d, want 2 (one per host)", got)
	}
	if got := stepCount(t, c, "pip", "succeeded"); got != 2 {
		t.Errorf("pip steps observed: %d, want 2", got)
	}
	want := map[string]string{"web1": sha1 + " " + first.ReleaseName, "web2": sha1 + " " + first.ReleaseName}
	if diff := cmp.Diff(want, hostCommits(t, c, "default")); diff != "" {
		t.Errorf("host commits after the first deploy (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(c.lastSuccess.WithLabelValues("default", "deploy")); got < float64(first.Finished.Unix()) || got > float64(first.Finished.Unix()+1) {
		t.Errorf("last success %v, want the first deploy's end %v", got, first.Finished.Unix())
	}
	if got := testutil.ToFloat64(c.hostsDisagree.WithLabelValues("default")); got != 0 {
		t.Errorf("hosts_disagree = %v after a full deploy", got)
	}

	// pip fails: nothing switches, the hosts stay where they were.
	r.commit("broken==1.0")
	failed := r.deploy()
	if failed.Status != deploy.StatusFailed {
		t.Fatalf("broken deploy: %s", failed.Status)
	}
	if got := testutil.ToFloat64(c.deployments.WithLabelValues("default", "deploy", "failed")); got != 1 {
		t.Errorf("deployments_total{deploy,failed} = %v, want 1", got)
	}
	if got := stepCount(t, c, "pip", "failed"); got == 0 {
		t.Error("the failed pip step was not observed")
	}
	if got := testutil.ToFloat64(c.lastFailed.WithLabelValues("default", "deploy")); got != 1 {
		t.Errorf("last_deployment_failed = %v, want 1", got)
	}
	if diff := cmp.Diff(want, hostCommits(t, c, "default")); diff != "" {
		t.Errorf("host commits after a failed deploy moved (-want +got):\n%s", diff)
	}
	if n := testutil.CollectAndCount(c.deploymentTime); n < 2 {
		t.Errorf("deployment duration series: %d, want at least 2 (succeeded, failed)", n)
	}

	// One host only: the pool disagrees.
	sha3 := r.commit("flask==3.1")
	third := r.deploy(web1)
	if third.Status != deploy.StatusSucceeded {
		t.Fatalf("deploy to web1: %s %v", third.Status, third.Err)
	}
	want["web1"] = sha3 + " " + third.ReleaseName
	if diff := cmp.Diff(want, hostCommits(t, c, "default")); diff != "" {
		t.Errorf("host commits after deploying web1 only (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(c.hostsDisagree.WithLabelValues("default")); got != 1 {
		t.Errorf("hosts_disagree = %v with web1 on %s and web2 on %s, want 1", got, sha3[:7], sha1[:7])
	}
	if got := testutil.ToFloat64(c.lastFailed.WithLabelValues("default", "deploy")); got != 0 {
		t.Errorf("last_deployment_failed = %v after a success, want 0", got)
	}

	// Both back to the first release: web1 moves, web2 is already there.
	back := r.rollback(first.ReleaseName)
	if back.Status != deploy.StatusSucceeded {
		t.Fatalf("rollback: %s %v", back.Status, back.Err)
	}
	want["web1"] = sha1 + " " + first.ReleaseName
	if diff := cmp.Diff(want, hostCommits(t, c, "default")); diff != "" {
		t.Errorf("host commits after the rollback (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(c.hostsDisagree.WithLabelValues("default")); got != 0 {
		t.Errorf("hosts_disagree = %v after the rollback, want 0", got)
	}
	if got := testutil.ToFloat64(c.deployments.WithLabelValues("default", "rollback", "succeeded")); got != 1 {
		t.Errorf("deployments_total{rollback,succeeded} = %v, want 1", got)
	}
}

// TestScrape reads /metrics over HTTP as Prometheus would and parses it.
func TestScrape(t *testing.T) {
	running := &deploy.Deployment{ID: "d-running", Status: deploy.StatusRunning}
	c := New()
	c.WatchQueue("", fakeQueue{deploy.Health{QueueLength: 3, Running: running}})
	c.BuildInfo("v1.4.0", "0123456789ab", "go1.26.8")
	now := time.Now()
	c.Observe(deploy.Event{Kind: deploy.EventStep, Status: deploy.StatusSucceeded, Host: "web1", Step: "pip", Duration: 4 * time.Second})
	c.Observe(deploy.Event{Kind: deploy.EventDeployment, Status: deploy.StatusSucceeded, Time: now, Deployment: &deploy.Deployment{
		ID: "d1", Action: "deploy", Status: deploy.StatusSucceeded, Started: now.Add(-12 * time.Second), Finished: now,
		Release: deploy.Release{Commit: strings.Repeat("a", 40)}, ReleaseName: "20261125203953-aaaaaaa",
		Hosts: []*deploy.HostResult{{Host: deploy.Host{Name: "web1"}, Status: deploy.StatusSucceeded, Steps: []deploy.StepResult{{Name: "switch", Status: deploy.StatusSucceeded}}}},
	}})
	c.WebhookAnswered("github", "queued")
	c.WebhookAnswered("", "bad_request")

	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	value := func(name string, want map[string]string) (float64, bool) {
		f, ok := fams[name]
		if !ok {
			return 0, false
		}
	next:
		for _, m := range f.GetMetric() {
			l := labels(m)
			for k, v := range want {
				if l[k] != v {
					continue next
				}
			}
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true
			case m.Counter != nil:
				return m.GetCounter().GetValue(), true
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
		return 0, false
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"pushdeploy_queue_length", map[string]string{"app": "default"}, 3},
		{"pushdeploy_deployment_running", map[string]string{"app": "default"}, 1},
		{"pushdeploy_deployments_total", map[string]string{"app": "default", "action": "deploy", "status": "succeeded"}, 1},
		{"pushdeploy_deployments_total", map[string]string{"app": "default", "action": "rollback", "status": "failed"}, 0},
		{"pushdeploy_deployment_duration_seconds", map[string]string{"app": "default", "action": "deploy", "status": "succeeded"}, 1},
		{"pushdeploy_step_duration_seconds", map[string]string{"app": "default", "step": "pip", "status": "succeeded"}, 1},
		{"pushdeploy_host_commit_info", map[string]string{"app": "default", "host": "web1", "commit": strings.Repeat("a", 40), "release": "20261125203953-aaaaaaa"}, 1},
		{"pushdeploy_hosts_disagree", map[string]string{"app": "default"}, 0},
		{"pushdeploy_build_info", map[string]string{"version": "v1.4.0", "revision": "0123456789ab", "goversion": "go1.26.8"}, 1},
		{"pushdeploy_hosts_known", map[string]string{"app": "default"}, 1},
		{"pushdeploy_last_deployment_failed", map[string]string{"app": "default", "action": "deploy"}, 0},
		{"pushdeploy_webhooks_total", map[string]string{"provider": "github", "outcome": "queued"}, 1},
		{"pushdeploy_webhooks_total", map[string]string{"provider": "unknown", "outcome": "bad_request"}, 1},
	} {
		got, ok := value(tc.name, tc.labels)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %v (found %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	if _, ok := value("pushdeploy_last_success_timestamp_seconds", map[string]string{"app": "default", "action": "deploy"}); !ok {
		t.Error("no pushdeploy_last_success_timestamp_seconds")
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s: the Go and process collectors are missing", name)
		}
	}
	if h := fams["pushdeploy_step_duration_seconds"].GetMetric()[0].GetHistogram(); len(h.GetBucket()) != len(stepBuckets)+1 {
		t.Errorf("step histogram has %d buckets, want %d and +Inf", len(h.GetBucket()), len(stepBuckets))
	}
}

func step(name deploy.Step, s deploy.Status) deploy.StepResult {
	return deploy.StepResult{Name: name, Status: s}
}

// TestPlace decides from a host's steps where a deployment left it.
func TestPlace(t *testing.T) {
	ok, failed := deploy.StatusSucceeded, deploy.StatusFailed
	for _, tc := range []struct {
		name     string
		status   deploy.Status
		steps    []deploy.StepResult
		rollback bool
		want     placement
	}{
		{"deployed", ok, []deploy.StepResult{step("pip", ok), step("switch", ok), step("restart", ok)}, false, onTarget},
		{"failed while preparing", failed, []deploy.StepResult{step("pip", failed)}, false, unchanged},
		{"cancelled after preparing", deploy.StatusCancelled, []deploy.StepResult{step("pip", ok), step("cleanup", ok)}, false, unchanged},
		{"sent back after its health check", failed, []deploy.StepResult{step("switch", ok), step("health", failed), step("revert", ok)}, false, unchanged},
		{"kept the release in a failed deploy", deploy.StatusRunning, []deploy.StepResult{step("switch", ok), step("restart", ok)}, false, onTarget},
		{"revert failed", failed, []deploy.StepResult{step("switch", ok), step("health", failed), step("revert", failed)}, false, unknown},
		{"switch failed", failed, []deploy.StepResult{step("switch", failed)}, false, unknown},
		{"switch failed, put back", failed, []deploy.StepResult{step("switch", failed), step("revert", ok)}, true, unchanged},
		{"rolled back", ok, []deploy.StepResult{step("verify", ok), step("switch", ok)}, true, onTarget},
		{"already on the rollback target", ok, []deploy.StepResult{step("verify", ok)}, true, onTarget},
		{"rollback skipped this host", deploy.StatusSkipped, nil, true, unchanged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &deploy.HostResult{Host: deploy.Host{Name: "web1"}, Status: tc.status, Steps: tc.steps}
			if got := place(h, tc.rollback); got != tc.want {
				t.Errorf("place = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestSeedHosts: the releases read at start fill the host series, but do
// not overwrite what a deployment told since they were read; a rollback
// that sent hosts to different releases forgets their commits.
func TestSeedHosts(t *testing.T) {
	c := New()
	shaA, shaB := strings.Repeat("a", 40), strings.Repeat("b", 40)
	read := time.Now()
	hr := func(name, current, commit string) deploy.HostReleases {
		return deploy.HostReleases{Host: deploy.Host{Name: name}, Current: current,
			Releases: []deploy.ReleaseInfo{{Name: current, Commit: commit, Complete: true}}}
	}
	// web2 deployed after the seed was read.
	c.Observe(deploy.Event{Kind: deploy.EventDeployment, Time: read.Add(time.Second), Deployment: &deploy.Deployment{
		Action: "deploy", Status: deploy.StatusSucceeded, Started: read, Finished: read.Add(time.Second),
		Release: deploy.Release{Commit: shaB}, ReleaseName: "r-b",
		Hosts: []*deploy.HostResult{{Host: deploy.Host{Name: "web2"}, Status: deploy.StatusSucceeded, Steps: []deploy.StepResult{step("switch", deploy.StatusSucceeded)}}},
	}})
	c.SeedHosts("", []deploy.HostReleases{
		hr("web1", "r-a", shaA),
		hr("web2", "r-a", shaA),
		{Host: deploy.Host{Name: "web3"}, Err: errors.New("unreachable")},
	}, read)
	want := map[string]string{"web1": shaA + " r-a", "web2": shaB + " r-b"}
	if diff := cmp.Diff(want, hostCommits(t, c, "default")); diff != "" {
		t.Errorf("after the seed (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(c.hostsDisagree.WithLabelValues("default")); got != 1 {
		t.Errorf("hosts_disagree = %v, want 1", got)
	}

	// A rollback to each host's previous release, which differ: no
	// single commit to tell.
	c.Observe(deploy.Event{Kind: deploy.EventDeployment, Time: time.Now(), Deployment: &deploy.Deployment{
		Action: "rollback", Status: deploy.StatusSucceeded, Started: read, Finished: time.Now(),
		Hosts: []*deploy.HostResult{
			{Host: deploy.Host{Name: "web1"}, Status: deploy.StatusSucceeded, Steps: []deploy.StepResult{step("switch", deploy.StatusSucceeded)}},
			{Host: deploy.Host{Name: "web2"}, Status: deploy.StatusSucceeded, Steps: []deploy.StepResult{step("switch", deploy.StatusSucceeded)}},
		},
	}})
	if got := hostCommits(t, c, "default"); len(got) != 0 {
		t.Errorf("hosts with a commit after a rollback to different releases: %v, want none", got)
	}
	if got := testutil.ToFloat64(c.hostsDisagree.WithLabelValues("default")); got != 0 {
		t.Errorf("hosts_disagree = %v with no host known, want 0", got)
	}
}

// endedOn is a deployment event of app that switched hosts to commit.
func endedOn(app string, status deploy.Status, commit string, hosts ...string) deploy.Event {
	now := time.Now()
	d := &deploy.Deployment{
		ID: "d-" + app, App: app, Action: "deploy", Status: status, Started: now.Add(-time.Second), Finished: now,
		Release: deploy.Release{Commit: commit}, ReleaseName: "20261202080000-" + commit[:7],
	}
	for _, h := range hosts {
		d.Hosts = append(d.Hosts, &deploy.HostResult{Host: deploy.Host{Name: h}, Status: deploy.StatusSucceeded,
			Steps: []deploy.StepResult{step("switch", deploy.StatusSucceeded)}})
	}
	return deploy.Event{Kind: deploy.EventDeployment, App: app, Status: status, Time: now, Deployment: d}
}

// TestMetricsPerApp: two apps deploying to the same host (in their own
// roots) each have their own series: host commits, agreement, counters,
// queue; a refused deployment is counted, never timed; ForgetApp removes
// an app's series and no other's.
func TestMetricsPerApp(t *testing.T) {
	c := New()
	c.NodeInfo("deploy1")
	shaA, shaB := strings.Repeat("a", 40), strings.Repeat("b", 40)
	c.WatchQueue("staging", fakeQueue{deploy.Health{QueueLength: 2}})
	c.WatchQueue("production", fakeQueue{deploy.Health{Running: &deploy.Deployment{ID: "p"}}})
	c.Observe(deploy.Event{Kind: deploy.EventStep, App: "staging", Status: deploy.StatusSucceeded, Host: "web1", Step: "pip", Duration: time.Second})
	c.Observe(endedOn("staging", deploy.StatusSucceeded, shaA, "web1", "web2"))
	c.Observe(endedOn("production", deploy.StatusSucceeded, shaB, "web1"))
	refused := endedOn("production", deploy.StatusRefused, shaA)
	refused.Deployment.Started = time.Time{}
	c.Observe(refused)

	if diff := cmp.Diff(map[string]string{"web1": shaA + " 20261202080000-aaaaaaa", "web2": shaA + " 20261202080000-aaaaaaa"}, hostCommits(t, c, "staging")); diff != "" {
		t.Errorf("staging's hosts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"web1": shaB + " 20261202080000-bbbbbbb"}, hostCommits(t, c, "production")); diff != "" {
		t.Errorf("production's hosts (-want +got):\n%s", diff)
	}
	for _, app := range []string{"staging", "production"} {
		if got := testutil.ToFloat64(c.hostsDisagree.WithLabelValues(app)); got != 0 {
			t.Errorf("%s: hosts_disagree = %v, want 0 (the other app's commit on web1 is not its own)", app, got)
		}
	}
	for _, tc := range []struct {
		app, status string
		want        float64
	}{
		{"staging", "succeeded", 1}, {"production", "succeeded", 1}, {"production", "refused", 1}, {"staging", "failed", 0},
	} {
		if got := testutil.ToFloat64(c.deployments.WithLabelValues(tc.app, "deploy", tc.status)); got != tc.want {
			t.Errorf("deployments_total{%s,deploy,%s} = %v, want %v", tc.app, tc.status, got, tc.want)
		}
	}
	if n := testutil.CollectAndCount(c.deploymentTime); n != 2 {
		t.Errorf("%d duration series, want 2: a refused deployment never ran", n)
	}
	if got := testutil.ToFloat64(c.hostCommitsKnown.WithLabelValues("staging")); got != 2 {
		t.Errorf("staging: hosts_known = %v, want 2", got)
	}
	want := `
# HELP pushdeploy_deployment_running 1 while a deployment of the app runs on this deployer (node: its DEPLOY_NODE_NAME).
# TYPE pushdeploy_deployment_running gauge
pushdeploy_deployment_running{app="production",node="deploy1"} 1
pushdeploy_deployment_running{app="staging",node="deploy1"} 0
# HELP pushdeploy_queue_length Deployments of an app waiting, not counting the running one.
# TYPE pushdeploy_queue_length gauge
pushdeploy_queue_length{app="production"} 0
pushdeploy_queue_length{app="staging"} 2
`
	if err := testutil.GatherAndCompare(c.Registry(), strings.NewReader(want), "pushdeploy_queue_length", "pushdeploy_deployment_running"); err != nil {
		t.Error(err)
	}

	c.ForgetApp("staging")
	if got := hostCommits(t, c, "staging"); len(got) != 0 {
		t.Errorf("staging's hosts after ForgetApp: %v", got)
	}
	if got := hostCommits(t, c, "production"); len(got) != 1 {
		t.Errorf("production's hosts after staging was forgotten: %v", got)
	}
	fams, err := c.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			if labels(m)["app"] == "staging" {
				t.Errorf("%s still has a staging series", f.GetName())
			}
		}
	}
}

// TestNodeInfo: each deployer names itself in pushdeploy_node_info, and
// its running deployments carry its node, so that the metrics of two
// deployers on one database tell which runs what; one node per deployer,
// whatever it runs.
func TestNodeInfo(t *testing.T) {
	one, two := New(), New()
	one.NodeInfo("deploy1")
	two.NodeInfo("deploy2.example:812")
	one.WatchQueue("production", fakeQueue{deploy.Health{Running: &deploy.Deployment{ID: "p", Node: "deploy1"}}})
	two.WatchQueue("production", fakeQueue{deploy.Health{QueueLength: 1}})
	two.WatchQueue("staging", fakeQueue{deploy.Health{Running: &deploy.Deployment{ID: "s", Node: "deploy2.example:812"}}})
	for _, tc := range []struct {
		c    *Collector
		want string
	}{
		{one, `
# HELP pushdeploy_deployment_running 1 while a deployment of the app runs on this deployer (node: its DEPLOY_NODE_NAME).
# TYPE pushdeploy_deployment_running gauge
pushdeploy_deployment_running{app="production",node="deploy1"} 1
# HELP pushdeploy_node_info This deployer (always 1): its name in the API and the history (DEPLOY_NODE_NAME, else HOSTNAME:PID).
# TYPE pushdeploy_node_info gauge
pushdeploy_node_info{node="deploy1"} 1
`},
		{two, `
# HELP pushdeploy_deployment_running 1 while a deployment of the app runs on this deployer (node: its DEPLOY_NODE_NAME).
# TYPE pushdeploy_deployment_running gauge
pushdeploy_deployment_running{app="production",node="deploy2.example:812"} 0
pushdeploy_deployment_running{app="staging",node="deploy2.example:812"} 1
# HELP pushdeploy_node_info This deployer (always 1): its name in the API and the history (DEPLOY_NODE_NAME, else HOSTNAME:PID).
# TYPE pushdeploy_node_info gauge
pushdeploy_node_info{node="deploy2.example:812"} 1
`},
	} {
		if err := testutil.GatherAndCompare(tc.c.Registry(), strings.NewReader(tc.want), "pushdeploy_deployment_running", "pushdeploy_node_info"); err != nil {
			t.Error(err)
		}
	}
}
