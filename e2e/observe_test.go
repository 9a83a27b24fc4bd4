package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// hookRecorder is a local HTTP server (127.0.0.1) that plays both the chat
// webhook and the Bitbucket API, and records every request.
type hookRecorder struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []hookRequest
}

type hookRequest struct {
	Path, Auth string
	Body       map[string]any
}

func newHookRecorder(t *testing.T) *hookRecorder {
	t.Helper()
	r := &hookRecorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		raw, _ := io.ReadAll(req.Body)
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Errorf("%s: not JSON: %q", req.URL.Path, raw)
		}
		r.mu.Lock()
		r.got = append(r.got, hookRequest{Path: req.URL.Path, Auth: req.Header.Get("Authorization"), Body: body})
		r.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// wait returns the requests whose path starts with prefix once there are
// n of them.
func (r *hookRecorder) wait(t *testing.T, prefix string, n int) []hookRequest {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out []hookRequest
		r.mu.Lock()
		for _, g := range r.got {
			if strings.HasPrefix(g.Path, prefix) {
				out = append(out, g)
			}
		}
		r.mu.Unlock()
		if len(out) >= n || time.Now().After(deadline) {
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scrape reads serve's /metrics as Prometheus would.
func (s *server) scrape() map[string]*dto.MetricFamily {
	s.t.Helper()
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		s.t.Fatalf("/metrics is not the Prometheus text format: %v", err)
	}
	return fams
}

// series returns the metrics of family name whose labels include want.
func series(fams map[string]*dto.MetricFamily, name string, want map[string]string) []*dto.Metric {
	var out []*dto.Metric
next:
	for _, m := range fams[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// TestEndToEndServeMetricsAndNotifications deploys through the API of a
// real serve with notifications and Bitbucket build statuses pointed at a
// local recorder, then checks what was recorded (start before success,
// the right commit, the token only where it belongs) and what /metrics
// says (the deployment, each host's commit, the step histograms).
func TestEndToEndServeMetricsAndNotifications(t *testing.T) {
	const token = "bb-e2e-t0ken-secret"
	e := newE2E(t, 2)
	sha := e.commit("1.0", nil)
	rec := newHookRecorder(t)
	e.vars["DEPLOY_NOTIFY_URL"] = rec.srv.URL + "/chat/T000/B000/SECRETPATH"
	e.vars["DEPLOY_BITBUCKET_TOKEN"] = token
	e.vars["DEPLOY_BITBUCKET_API_URL"] = rec.srv.URL + "/bb/2.0"
	e.vars["DEPLOY_PUBLIC_URL"] = "https://deploy.example.com"
	s := e.serve() // DEPLOY_WEBHOOK_REPO=team/app: the Bitbucket repository

	if code, out := s.webhook("unsigned-1", bitbucketPush("release", sha), false); code != http.StatusUnauthorized {
		t.Errorf("unsigned push: %d %v", code, out)
	}
	code, out := s.api(http.MethodPost, "/api/deploy")
	if code != http.StatusAccepted {
		t.Fatalf("POST /api/deploy: %d %v", code, out)
	}
	id := out["deployment"].(string)
	dep := s.waitDone(id)
	if dep["status"] != "succeeded" || dep["commit"] != sha {
		t.Fatalf("deployment: %v\n%s", dep, s.stderr)
	}
	release := dep["release"].(string)
	link := "https://deploy.example.com/deployments/" + id

	chat := rec.wait(t, "/chat/", 2)
	if len(chat) != 2 {
		t.Fatalf("chat notifications: %d, want 2 (start, success): %v", len(chat), chat)
	}
	for i, want := range []string{"deployment.started", "deployment.succeeded"} {
		b := chat[i].Body
		if b["event"] != want || b["deployment"] != id || b["commit"] != sha || b["trigger"] != "api" || b["url"] != link {
			t.Errorf("chat notification %d: %v, want %s of %s at %s", i, b, want, sha, link)
		}
		if text, _ := b["text"].(string); !strings.Contains(text, sha[:7]) || !strings.Contains(text, link) {
			t.Errorf("chat text %q lacks the commit or the link", text)
		}
		if chat[i].Auth != "" {
			t.Errorf("the chat webhook got an Authorization header")
		}
	}

	builds := rec.wait(t, "/bb/", 2)
	if len(builds) != 2 {
		t.Fatalf("build statuses: %d, want 2: %v", len(builds), builds)
	}
	for i, state := range []string{"INPROGRESS", "SUCCESSFUL"} {
		b := builds[i]
		if want := "/bb/2.0/repositories/team/app/commit/" + sha + "/statuses/build"; b.Path != want {
			t.Errorf("build status %d to %s, want %s", i, b.Path, want)
		}
		if b.Auth != "Bearer "+token {
			t.Errorf("build status %d: Authorization %q", i, b.Auth)
		}
		if b.Body["state"] != state || b.Body["key"] != "pushdeploy-release" || b.Body["url"] != link {
			t.Errorf("build status %d: %v, want %s linking %s", i, b.Body, state, link)
		}
	}

	fams := s.scrape()
	if m := series(fams, "pushdeploy_deployments_total", map[string]string{"action": "deploy", "status": "succeeded"}); len(m) != 1 || m[0].GetCounter().GetValue() != 1 {
		t.Errorf("pushdeploy_deployments_total{deploy,succeeded}: %v, want 1", m)
	}
	if m := series(fams, "pushdeploy_webhooks_total", map[string]string{"provider": "bitbucket-cloud", "outcome": "unauthorized"}); len(m) != 1 || m[0].GetCounter().GetValue() != 1 {
		t.Errorf("pushdeploy_webhooks_total{bitbucket-cloud,unauthorized}: %v, want 1", m)
	}
	for _, h := range e.env.Hosts {
		m := series(fams, "pushdeploy_host_commit_info", map[string]string{"host": h.Name})
		if len(m) != 1 || labelOf(m[0], "commit") != sha || labelOf(m[0], "release") != release {
			t.Errorf("pushdeploy_host_commit_info for %s: %v, want one series on %s %s", h.Name, m, sha, release)
		}
	}
	if m := series(fams, "pushdeploy_build_info", nil); len(m) != 1 || m[0].GetGauge().GetValue() != 1 || labelOf(m[0], "version") == "" || !strings.HasPrefix(labelOf(m[0], "goversion"), "go") {
		t.Errorf("pushdeploy_build_info: %v, want one series with version and goversion", m)
	}
	for _, step := range []string{"connect", "lock", "venv", "pip", "switch", "restart"} {
		m := series(fams, "pushdeploy_step_duration_seconds", map[string]string{"step": step, "status": "succeeded"})
		if len(m) != 1 || m[0].GetHistogram().GetSampleCount() != uint64(len(e.env.Hosts)) {
			t.Errorf("pushdeploy_step_duration_seconds{%s,succeeded}: %v, want one per host", step, m)
		}
	}
	if m := series(fams, "pushdeploy_hosts_disagree", nil); len(m) != 1 || m[0].GetGauge().GetValue() != 0 {
		t.Errorf("pushdeploy_hosts_disagree: %v, want 0", m)
	}
	if m := series(fams, "pushdeploy_queue_length", nil); len(m) != 1 || m[0].GetGauge().GetValue() != 0 {
		t.Errorf("pushdeploy_queue_length: %v, want 0", m)
	}

	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not exit after SIGTERM\n%s", s.stderr)
	}
	logs := s.stderr.String()
	for _, secret := range []string{token, "SECRETPATH"} {
		if strings.Contains(logs, secret) {
			t.Errorf("serve's log holds %q", secret)
		}
	}
	if strings.Contains(logs, "notifications not sent") {
		t.Errorf("notifications were lost:\n%s", logs)
	}
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
