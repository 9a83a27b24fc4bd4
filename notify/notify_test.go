package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// recorder is a local HTTP server that records every request it gets and
// answers with the statuses in answers (then 200).
type recorder struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []received
	answers []int
	// hold, when set, makes every request wait until it is closed.
	hold chan struct{}
}

type received struct {
	path, auth string
	body       []byte
}

func newRecorder(t *testing.T, answers ...int) *recorder {
	t.Helper()
	r := &recorder{answers: answers}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if r.hold != nil {
			select {
			case <-r.hold:
			case <-req.Context().Done():
				return
			}
		}
		r.mu.Lock()
		r.got = append(r.got, received{path: req.URL.Path, auth: req.Header.Get("Authorization"), body: body})
		code := http.StatusOK
		if len(r.answers) > 0 {
			code, r.answers = r.answers[0], r.answers[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(code)
		if code >= 400 {
			// Echo the request's token, as a careless server might.
			io.WriteString(w, `{"error": "nope", "auth": "`+req.Header.Get("Authorization")+`"}`)
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// logs captures a Notifier's log output.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newNotifier(t *testing.T, cfg Config) (*Notifier, *logs) {
	t.Helper()
	l := &logs{}
	cfg.Logger = slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.Backoff == 0 {
		cfg.Backoff = 5 * time.Millisecond
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = n.Close(ctx)
	})
	return n, l
}

func closeNow(t *testing.T, n *Notifier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

const sha = "4f56267a0c9d69cb5c6e96c18b0d2cf14c3aafe4"

// deployment is a deployment as its events carry it: running with its
// commit, then ended with status and err.
func deployment(status deploy.Status, err error) *deploy.Deployment {
	start := time.Date(2026, 11, 25, 20, 29, 2, 0, time.UTC)
	d := &deploy.Deployment{
		ID: "20261125-202902-0c9d69", Action: "deploy", Status: status,
		Request:     deploy.Request{Trigger: "webhook", Provider: "bitbucket-cloud", Actor: "Ada", Push: deploy.Push{Branch: "release"}},
		Release:     deploy.Release{Branch: "release", Commit: sha},
		ReleaseName: "20261125202902-4f56267", Started: start, Err: err,
		Hosts: []*deploy.HostResult{
			{Host: deploy.Host{Name: "web1"}, Status: deploy.StatusSucceeded},
			{Host: deploy.Host{Name: "web2"}, Status: deploy.StatusSucceeded},
		},
	}
	if status != deploy.StatusRunning {
		d.Finished = start.Add(11800 * time.Millisecond)
	}
	return d
}

func event(d *deploy.Deployment) deploy.Event {
	return deploy.Event{Kind: deploy.EventDeployment, Status: d.Status, DeploymentID: d.ID, Deployment: d}
}

func payloads(t *testing.T, rs []received) []Payload {
	t.Helper()
	var out []Payload
	for _, r := range rs {
		var p Payload
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatalf("not JSON: %q", r.body)
		}
		out = append(out, p)
	}
	return out
}

func TestPayloads(t *testing.T) {
	pipErr := &deploy.StepError{Host: "web2", Step: "pip", Err: errors.New("exit status 1"), Output: "ERROR: No matching distribution found for broken"}
	for _, tc := range []struct {
		name    string
		end     *deploy.Deployment
		wantEnd Payload
	}{
		{"success", deployment(deploy.StatusSucceeded, nil), Payload{
			Text:  "pushdeploy: deploy of release 4f56267 to 2 host(s) succeeded in 11.8s (webhook, Ada) https://deploy.example.com/deployments/20261125-202902-0c9d69",
			Event: "deployment.succeeded", Status: "succeeded",
		}},
		{"failure", deployment(deploy.StatusFailed, pipErr), Payload{
			Text:  "pushdeploy: deploy of release 4f56267 to 2 host(s) FAILED after 11.8s on web2 at pip: exit status 1 (webhook, Ada) https://deploy.example.com/deployments/20261125-202902-0c9d69",
			Event: "deployment.failed", Status: "failed", FailedHost: "web2", FailedStep: "pip", Error: "host web2: pip: exit status 1",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder(t)
			n, _ := newNotifier(t, Config{URL: rec.srv.URL + "/hook/T0/SECRET", PublicURL: "https://deploy.example.com/"})
			start := deployment(deploy.StatusRunning, nil)
			// Resolving: no commit yet, so no start.
			resolving := deployment(deploy.StatusRunning, nil)
			resolving.Release.Commit = ""
			n.Observe(event(resolving))
			n.Observe(event(start))
			n.Observe(event(start)) // the release name learnt: no second start
			n.Observe(event(tc.end))
			closeNow(t, n)

			common := Payload{
				App: "default", Deployment: "20261125-202902-0c9d69", Action: "deploy", Commit: sha, Release: "20261125202902-4f56267",
				Branch: "release", Trigger: "webhook", Provider: "bitbucket-cloud", Actor: "Ada", Hosts: []string{"web1", "web2"},
				URL: "https://deploy.example.com/deployments/20261125-202902-0c9d69",
			}
			wantStart := common
			wantStart.Text = "pushdeploy: deploy of release 4f56267 to 2 host(s) started (webhook, Ada) https://deploy.example.com/deployments/20261125-202902-0c9d69"
			wantStart.Event, wantStart.Status = "deployment.started", "running"
			wantEnd := common
			wantEnd.Text, wantEnd.Event, wantEnd.Status = tc.wantEnd.Text, tc.wantEnd.Event, tc.wantEnd.Status
			wantEnd.FailedHost, wantEnd.FailedStep, wantEnd.Error = tc.wantEnd.FailedHost, tc.wantEnd.FailedStep, tc.wantEnd.Error
			secs := 11.8
			wantEnd.Duration = &secs

			got := rec.requests()
			if diff := cmp.Diff([]Payload{wantStart, wantEnd}, payloads(t, got), cmp.AllowUnexported(Payload{}), cmp.FilterPath(func(p cmp.Path) bool {
				return p.Last().String() == ".cause"
			}, cmp.Ignore())); diff != "" {
				t.Errorf("payloads (-want +got):\n%s", diff)
			}
			for _, r := range got {
				if r.path != "/hook/T0/SECRET" || r.auth != "" {
					t.Errorf("request to %s with Authorization %q", r.path, r.auth)
				}
			}
		})
	}
}

// TestSlackTextIsEscaped: free text in the message (an actor's name, the
// error) is escaped as Slack requires, so "<!channel>" is shown, not a
// mention of everyone; the fields for programs keep it as it is.
func TestSlackTextIsEscaped(t *testing.T) {
	rec := newRecorder(t)
	n, _ := newNotifier(t, Config{URL: rec.srv.URL})
	d := deployment(deploy.StatusFailed, &deploy.StepError{Host: "web2", Step: "pip", Err: errors.New("exit <1> & <@U024BE7LH>")})
	d.Request.Actor = "<!channel> & <https://evil.example|click>"
	n.Observe(event(d))
	closeNow(t, n)
	got := payloads(t, rec.requests())
	if len(got) != 1 {
		t.Fatalf("%d notifications, want 1", len(got))
	}
	want := "pushdeploy: deploy of release 4f56267 to 2 host(s) FAILED after 11.8s on web2 at pip: exit &lt;1&gt; &amp; &lt;@U024BE7LH&gt; (webhook, &lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;)"
	if got[0].Text != want {
		t.Errorf("text\n%s\nwant\n%s", got[0].Text, want)
	}
	if got[0].Actor != d.Request.Actor {
		t.Errorf("actor field %q, want it as it is", got[0].Actor)
	}
}

func TestRetryOn500ThenSuccess(t *testing.T) {
	rec := newRecorder(t, http.StatusInternalServerError, http.StatusTooManyRequests)
	n, l := newNotifier(t, Config{URL: rec.srv.URL})
	n.Observe(event(deployment(deploy.StatusSucceeded, nil)))
	closeNow(t, n)
	if got := len(rec.requests()); got != 3 {
		t.Errorf("%d attempts, want 3 (500, 429, then 200)", got)
	}
	if out := l.String(); strings.Contains(out, "notification not sent") || !strings.Contains(out, "status=500") || !strings.Contains(out, "notification sent") {
		t.Errorf("log:\n%s", out)
	}
}

func TestNoRetryOn400(t *testing.T) {
	rec := newRecorder(t, http.StatusBadRequest, http.StatusBadRequest)
	n, l := newNotifier(t, Config{URL: rec.srv.URL})
	n.Observe(event(deployment(deploy.StatusSucceeded, nil)))
	closeNow(t, n)
	if got := len(rec.requests()); got != 1 {
		t.Errorf("%d attempts, want 1", got)
	}
	out := l.String()
	for _, want := range []string{"notification not sent", "status=400", "nope", "to=" + rec.srv.URL} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestGivesUpAfterAttempts(t *testing.T) {
	rec := newRecorder(t, 502, 502, 502, 502, 502)
	n, l := newNotifier(t, Config{URL: rec.srv.URL, Attempts: 3})
	n.Observe(event(deployment(deploy.StatusSucceeded, nil)))
	closeNow(t, n)
	if got := len(rec.requests()); got != 3 {
		t.Errorf("%d attempts, want 3", got)
	}
	if out := l.String(); !strings.Contains(out, "notification not sent") || !strings.Contains(out, "attempts=3") {
		t.Errorf("log:\n%s", out)
	}
}

func TestBitbucketBuildStatus(t *testing.T) {
	rec := newRecorder(t)
	const token = "bb-t0ken-very-secret"
	n, _ := newNotifier(t, Config{
		PublicURL: "https://deploy.example.com",
		Bitbucket: &Bitbucket{APIURL: rec.srv.URL + "/2.0", Token: token, Workspace: "team", RepoSlug: "app"},
	})
	n.Observe(event(deployment(deploy.StatusRunning, nil)))
	n.Observe(event(deployment(deploy.StatusFailed, &deploy.StepError{Host: "web2", Step: "pip", Err: errors.New("exit status 1")})))
	// Rollbacks set no build status.
	rb := deployment(deploy.StatusRunning, nil)
	rb.ID, rb.Action = "rb", "rollback"
	n.Observe(event(rb))
	closeNow(t, n)

	got := rec.requests()
	if len(got) != 2 {
		t.Fatalf("%d requests, want 2: %v", len(got), got)
	}
	link := "https://deploy.example.com/deployments/20261125-202902-0c9d69"
	want := []buildStatus{
		{Key: "pushdeploy-release", State: "INPROGRESS", Name: "pushdeploy: release", URL: link, Description: "deploying to 2 host(s) (20261125-202902-0c9d69)"},
		{Key: "pushdeploy-release", State: "FAILED", Name: "pushdeploy: release", URL: link, Description: "deploy failed on web2 at pip: exit status 1"},
	}
	for i, r := range got {
		if r.path != "/2.0/repositories/team/app/commit/"+sha+"/statuses/build" {
			t.Errorf("path %s", r.path)
		}
		if r.auth != "Bearer "+token {
			t.Errorf("Authorization %q", r.auth)
		}
		var st buildStatus
		if err := json.Unmarshal(r.body, &st); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want[i], st); diff != "" {
			t.Errorf("status %d (-want +got):\n%s", i, diff)
		}
	}
}

// TestBitbucketLinkWithoutPublicURL: Bitbucket requires a url; without
// DEPLOY_PUBLIC_URL it is the commit's page.
func TestBitbucketLinkWithoutPublicURL(t *testing.T) {
	rec := newRecorder(t)
	n, _ := newNotifier(t, Config{Bitbucket: &Bitbucket{APIURL: rec.srv.URL, Token: "x", Workspace: "team", RepoSlug: "app"}})
	n.Observe(event(deployment(deploy.StatusSucceeded, nil)))
	closeNow(t, n)
	got := rec.requests()
	if len(got) != 1 {
		t.Fatalf("%d requests", len(got))
	}
	var st buildStatus
	_ = json.Unmarshal(got[0].body, &st)
	if want := "https://bitbucket.org/team/app/commits/" + sha; st.URL != want || st.State != "SUCCESSFUL" {
		t.Errorf("status %+v, want url %s and SUCCESSFUL", st, want)
	}
}

// TestSlowServerDoesNotBlock: Observe returns at once while the server
// hangs; Close gives up at its deadline and says what was not sent.
func TestSlowServerDoesNotBlock(t *testing.T) {
	rec := newRecorder(t)
	rec.hold = make(chan struct{})
	defer close(rec.hold)
	n, l := newNotifier(t, Config{URL: rec.srv.URL, QueueSize: 10, Timeout: time.Minute})
	start := time.Now()
	for i := 0; i < 50; i++ {
		n.Observe(event(deployment(deploy.StatusSucceeded, nil)))
	}
	if took := time.Since(start); took > 200*time.Millisecond {
		t.Errorf("50 Observe calls took %v while the server hangs", took)
	}
	if !strings.Contains(l.String(), "notification dropped") {
		t.Errorf("a full queue dropped nothing:\n%s", l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	err := n.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "not sent") {
		t.Errorf("Close: %v, want an error about notifications not sent", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close took %v past its deadline", took)
	}
}

// TestSecretsNeverLogged: failures at both destinations are logged with
// their status and body, but never the token (even when the server echoes
// it) nor the notify URL's path.
func TestSecretsNeverLogged(t *testing.T) {
	const token = "bb-t0ken-very-secret"
	rec := newRecorder(t, 500, 500, 500, 500, 500, 500, 500, 500)
	// A closed port: the connection is refused.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL + "/services/T000/B000/XXXXSECRETXXXX"
	dead.Close()
	n, l := newNotifier(t, Config{
		URL:       deadURL,
		Attempts:  2,
		Bitbucket: &Bitbucket{APIURL: rec.srv.URL, Token: token, Workspace: "team", RepoSlug: "app"},
	})
	n.Observe(event(deployment(deploy.StatusRunning, nil)))
	n.Observe(event(deployment(deploy.StatusSucceeded, nil)))
	closeNow(t, n)
	out := l.String()
	if !strings.Contains(out, "status=500") || !strings.Contains(out, "notification not sent") {
		t.Fatalf("failures not logged:\n%s", out)
	}
	for _, secret := range []string{token, "XXXXSECRETXXXX", "/services/"} {
		if strings.Contains(out, secret) {
			t.Errorf("log holds %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "[redacted]") {
		t.Errorf("the echoed token was not redacted:\n%s", out)
	}
}

func TestRedirectsToOtherHostsNotFollowed(t *testing.T) {
	other := newRecorder(t)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Another port is another host for a client.
		http.Redirect(w, r, other.srv.URL+"/stolen", http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	n, l := newNotifier(t, Config{Bitbucket: &Bitbucket{APIURL: redirect.URL, Token: "tok", Workspace: "team", RepoSlug: "app"}})
	n.Observe(event(deployment(deploy.StatusSucceeded, nil)))
	closeNow(t, n)
	if got := other.requests(); len(got) != 0 {
		t.Errorf("the redirect was followed: %v", got)
	}
	if out := l.String(); !strings.Contains(out, "not followed") {
		t.Errorf("log:\n%s", out)
	}
}

// TestAppNamed: with several apps the text names the app; the JSON always
// has it ("default" with one app, whose text stays as it was).
func TestAppNamed(t *testing.T) {
	for _, tc := range []struct {
		app, wantApp, wantText string
	}{
		{"", "default", "pushdeploy: deploy of release 4f56267 to 2 host(s) succeeded in 11.8s (webhook, Ada)"},
		{"default", "default", "pushdeploy: deploy of release 4f56267 to 2 host(s) succeeded in 11.8s (webhook, Ada)"},
		{"production", "production", "pushdeploy: production: deploy of release 4f56267 to 2 host(s) succeeded in 11.8s (webhook, Ada)"},
	} {
		t.Run(tc.wantApp+tc.app, func(t *testing.T) {
			rec := newRecorder(t)
			n, _ := newNotifier(t, Config{URL: rec.srv.URL})
			d := deployment(deploy.StatusSucceeded, nil)
			d.App = tc.app
			n.Observe(event(d))
			closeNow(t, n)
			got := payloads(t, rec.requests())
			if len(got) != 1 || got[0].App != tc.wantApp || got[0].Text != tc.wantText {
				t.Errorf("got %+v\nwant app %q, text %q", got, tc.wantApp, tc.wantText)
			}
			var raw map[string]any
			_ = json.Unmarshal(rec.requests()[0].body, &raw)
			if raw["app"] != tc.wantApp {
				t.Errorf("JSON app %v, want %q", raw["app"], tc.wantApp)
			}
		})
	}
}

// refused is a deployment promotion turned down, as Deployer.Refuse
// records it: never started, ended at once.
func refused() *deploy.Deployment {
	d := deployment(deploy.StatusRefused, errors.New("staging has not deployed 4f56267 to web2"))
	d.App, d.Started, d.ReleaseName = "production", time.Time{}, ""
	for _, h := range d.Hosts {
		h.Status = deploy.StatusSkipped
	}
	return d
}

func TestRefusedNotified(t *testing.T) {
	rec := newRecorder(t)
	n, _ := newNotifier(t, Config{URL: rec.srv.URL, PublicURL: "https://deploy.example.com"})
	n.Observe(event(refused()))
	closeNow(t, n)
	got := payloads(t, rec.requests())
	if len(got) != 1 {
		t.Fatalf("%d notifications, want 1", len(got))
	}
	p := got[0]
	want := "pushdeploy: production: deploy of release 4f56267 to 2 host(s) REFUSED: staging has not deployed 4f56267 to web2 (webhook, Ada) https://deploy.example.com/deployments/20261125-202902-0c9d69"
	if p.Text != want || p.Event != "deployment.refused" || p.Status != "refused" || p.Error != "staging has not deployed 4f56267 to web2" || p.Duration != nil {
		t.Errorf("got %+v\nwant text %q, event deployment.refused, status refused, the reason as error, no duration", p, want)
	}
}

// TestRefusedBuildStatus: a refused commit gets a STOPPED status with the
// reason, under the app's own key (staging, deploying the same branch,
// keeps its status).
func TestRefusedBuildStatus(t *testing.T) {
	rec := newRecorder(t)
	n, _ := newNotifier(t, Config{
		PublicURL: "https://deploy.example.com",
		Bitbucket: &Bitbucket{APIURL: rec.srv.URL + "/2.0", Token: "x", Workspace: "team", RepoSlug: "app"},
	})
	n.Observe(event(refused()))
	closeNow(t, n)
	got := rec.requests()
	if len(got) != 1 {
		t.Fatalf("%d requests, want 1", len(got))
	}
	var st buildStatus
	if err := json.Unmarshal(got[0].body, &st); err != nil {
		t.Fatal(err)
	}
	want := buildStatus{
		Key: "pushdeploy-production-release", State: "STOPPED", Name: "pushdeploy: production (release)",
		URL: "https://deploy.example.com/deployments/20261125-202902-0c9d69", Description: "not deployed: staging has not deployed 4f56267 to web2",
	}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	if got[0].path != "/2.0/repositories/team/app/commit/"+sha+"/statuses/build" {
		t.Errorf("path %s", got[0].path)
	}
}

func TestStatusKey(t *testing.T) {
	long := strings.Repeat("b", 50)
	for _, tc := range []struct{ app, branch, want string }{
		{"default", "release", "pushdeploy-release"},
		{"", "release", "pushdeploy-release"},
		{"default", long, ("pushdeploy-" + long)[:40]},
		{"staging", "main", "pushdeploy-staging-main"},
	} {
		if got := statusKey(tc.app, tc.branch); got != tc.want {
			t.Errorf("statusKey(%q, %q) = %q, want %q", tc.app, tc.branch, got, tc.want)
		}
	}
	a, b := statusKey("payments-service-staging", "main-release"), statusKey("payments-service-production", "main-release")
	if a == b || len(a) > 40 || len(b) > 40 {
		t.Errorf("long keys %q and %q: want different, at most 40 characters", a, b)
	}
}
