package webhook

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/live"
)

// sseEvent is one event as a client parses it.
type sseEvent struct {
	id, kind string
	data     map[string]any
}

// sseReader parses a text/event-stream, skipping comments.
type sseReader struct {
	t  *testing.T
	sc *bufio.Scanner
}

// next returns the next event, or false at the end of the stream.
func (r *sseReader) next() (sseEvent, bool) {
	r.t.Helper()
	var ev sseEvent
	for r.sc.Scan() {
		line := r.sc.Text()
		switch {
		case line == "":
			if ev.kind != "" {
				return ev, true
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			ev.kind = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data); err != nil {
				r.t.Fatalf("data is not JSON: %q", line)
			}
		default:
			r.t.Fatalf("unexpected line %q", line)
		}
	}
	return ev, false
}

func (r *sseReader) all() []sseEvent {
	r.t.Helper()
	var out []sseEvent
	for {
		ev, ok := r.next()
		if !ok {
			return out
		}
		out = append(out, ev)
	}
}

// events of deployment "d1": it runs clone on web1 with two output lines,
// and succeeds (7 events).
func d1Events() []deploy.Event {
	evs := []deploy.Event{
		{Kind: deploy.EventDeployment, Status: deploy.StatusRunning, Deployment: &deploy.Deployment{ID: "d1", Status: deploy.StatusRunning}},
		{Kind: deploy.EventStep, Status: deploy.StatusRunning, Host: "web1", Step: "clone"},
		{Kind: deploy.EventOutput, Host: "web1", Step: "clone", Line: "Cloning <into> \"x\""},
		{Kind: deploy.EventOutput, Host: "web1", Step: "clone", Line: ""},
		{Kind: deploy.EventStep, Status: deploy.StatusSucceeded, Host: "web1", Step: "clone", Duration: 1500 * time.Millisecond},
		{Kind: deploy.EventHost, Status: deploy.StatusSucceeded, Host: "web1"},
		{Kind: deploy.EventDeployment, Status: deploy.StatusSucceeded, Deployment: &deploy.Deployment{ID: "d1", Status: deploy.StatusSucceeded}},
	}
	for i := range evs {
		evs[i].Seq, evs[i].DeploymentID, evs[i].Time = i+1, "d1", time.Unix(1700000000+int64(i), 0)
	}
	return evs
}

type streamRig struct {
	t   *testing.T
	hub *live.Hub
	f   *fakeDeployments
	srv *httptest.Server
}

func newStreamRig(t *testing.T, mod func(*Config)) *streamRig {
	t.Helper()
	r := &streamRig{t: t, hub: &live.Hub{}, f: &fakeDeployments{deps: map[string]*deploy.Deployment{}}}
	cfg := Config{APIToken: "tok", StateDir: t.TempDir(), Live: r.hub}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg, testApp(r.f))
	if err != nil {
		t.Fatal(err)
	}
	s.page.heartbeat = 50 * time.Millisecond
	r.srv = httptest.NewServer(s.Handler())
	t.Cleanup(r.srv.Close)
	return r
}

// get opens path with the bearer token and the given extra headers.
func (r *streamRig) get(path string, headers map[string]string) (*http.Response, *sseReader) {
	r.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, r.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer tok")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { resp.Body.Close() })
	return resp, &sseReader{t: r.t, sc: bufio.NewScanner(resp.Body)}
}

func kinds(evs []sseEvent) string {
	var parts []string
	for _, ev := range evs {
		parts = append(parts, ev.id+":"+ev.kind)
	}
	return strings.Join(parts, " ")
}

// TestEventStreamInOrderThenEnd connects mid-deployment: the stream
// replays what happened, follows live, and ends after the deployment's end.
func TestEventStreamInOrderThenEnd(t *testing.T) {
	r := newStreamRig(t, nil)
	evs := d1Events()
	for _, ev := range evs[:3] {
		r.hub.Observe(ev)
	}
	resp, rd := r.get("/api/deployments/d1/events", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("answer %d %q, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var got []sseEvent
	for range 3 {
		ev, ok := rd.next()
		if !ok {
			t.Fatal("stream ended during the replay")
		}
		got = append(got, ev)
	}
	for _, ev := range evs[3:] {
		time.Sleep(20 * time.Millisecond)
		r.hub.Observe(ev)
	}
	got = append(got, rd.all()...)
	want := "1:deployment 2:step 3:output 4:output 5:step 6:host 7:deployment :end"
	if k := kinds(got); k != want {
		t.Fatalf("events %q, want %q", k, want)
	}
	if line := got[2].data["line"]; line != `Cloning <into> "x"` {
		t.Errorf("output line %q", line)
	}
	if line, ok := got[3].data["line"]; !ok || line != "" {
		t.Errorf("an empty output line lost its line field: %v", got[3].data)
	}
	if d := got[4].data; d["host"] != "web1" || d["step"] != "clone" || d["status"] != "succeeded" || d["duration_s"] != 1.5 {
		t.Errorf("step end: %v", d)
	}
	if dep, _ := got[6].data["deployment"].(map[string]any); dep["status"] != "succeeded" || dep["id"] != "d1" {
		t.Errorf("final deployment event carries %v", got[6].data)
	}
	if got[7].data["status"] != "succeeded" {
		t.Errorf("end event %v", got[7].data)
	}
}

func TestEventStreamResumesAfterLastEventID(t *testing.T) {
	r := newStreamRig(t, nil)
	done := deploy.NewDeployment(deploy.Request{}, time.Now())
	done.Status = deploy.StatusSucceeded
	r.f.deps["d1"] = done
	for _, ev := range d1Events() {
		r.hub.Observe(ev)
	}
	for _, tc := range []struct{ last, want string }{
		{"4", "5:step 6:host 7:deployment :end"},
		{"7", ":end"}, // after the end: not lagged, or EventSource would reconnect forever
		{"0", "1:deployment 2:step 3:output 4:output 5:step 6:host 7:deployment :end"},
		{"garbage", "1:deployment 2:step 3:output 4:output 5:step 6:host 7:deployment :end"},
	} {
		_, rd := r.get("/api/deployments/d1/events", map[string]string{"Last-Event-ID": tc.last})
		if k := kinds(rd.all()); k != tc.want {
			t.Errorf("Last-Event-ID %s: events %q, want %q", tc.last, k, tc.want)
		}
	}
}

// TestEventStreamFromTheRecord: a deployment the hub does not hold (long
// finished, or from before a restart) gets a summary and an end; one that
// is queued is waited for until it starts.
func TestEventStreamFromTheRecord(t *testing.T) {
	r := newStreamRig(t, nil)
	old := deploy.NewDeployment(deploy.Request{Trigger: "api", Push: deploy.Push{Branch: "release"}}, time.Now())
	old.Status = deploy.StatusFailed
	old.Hosts = []*deploy.HostResult{{Host: deploy.Host{Name: "web1"}, Status: deploy.StatusFailed,
		Steps: []deploy.StepResult{{Name: "pip", Status: deploy.StatusFailed, Output: "no such package"}}}}
	r.f.deps[old.ID] = old
	_, rd := r.get("/api/deployments/"+old.ID+"/events", nil)
	got := rd.all()
	if k := kinds(got); k != ":summary :end" {
		t.Fatalf("events %q, want a summary and an end", k)
	}
	hosts, _ := got[0].data["hosts"].([]any)
	if len(hosts) != 1 || got[1].data["status"] != "failed" {
		t.Errorf("summary %v, end %v", got[0].data, got[1].data)
	}

	queued := deploy.NewDeployment(deploy.Request{Trigger: "api"}, time.Now())
	r.f.mu.Lock()
	r.f.deps[queued.ID] = queued
	r.f.mu.Unlock()
	go func() {
		time.Sleep(300 * time.Millisecond) // a few polls and heartbeats
		for _, ev := range d1Events() {
			ev.DeploymentID = queued.ID
			r.hub.Observe(ev)
		}
	}()
	_, rd = r.get("/api/deployments/"+queued.ID+"/events", nil)
	if k, want := kinds(rd.all()), "1:deployment 2:step 3:output 4:output 5:step 6:host 7:deployment :end"; k != want {
		t.Errorf("queued deployment: events %q, want %q", k, want)
	}
}

// TestEventStreamTellsALaggingClient: a subscription closed before the
// end (the client fell behind) ends with a lagged event, not an end.
func TestEventStreamTellsALaggingClient(t *testing.T) {
	f := &fakeDeployments{deps: map[string]*deploy.Deployment{}}
	running := deploy.NewDeployment(deploy.Request{}, time.Now())
	running.Status = deploy.StatusRunning
	f.deps["d1"] = running
	h := newTestServer(t, f, func(c *Config) { c.Live = lagging{} })
	w := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/api/deployments/d1/events", nil)
	req.Header.Set("Authorization", "Bearer tok")
	h.ServeHTTP(w, req)
	rd := &sseReader{t: t, sc: bufio.NewScanner(strings.NewReader(w.Body.String()))}
	if k := kinds(rd.all()); k != "1:deployment :lagged" {
		t.Errorf("events %q, want the one event then lagged", k)
	}
}

// lagging is a Live whose subscription is dropped after one event.
type lagging struct{}

func (lagging) Subscribe(string, int) (<-chan deploy.Event, func(), bool) {
	c := make(chan deploy.Event, 1)
	c <- d1Events()[0]
	close(c)
	return c, func() {}, true
}

func TestEventStreamRefusals(t *testing.T) {
	r := newStreamRig(t, nil)
	r.hub.Observe(d1Events()[0])
	for _, tc := range []struct {
		name, path, auth string
		want             int
	}{
		{"unknown deployment", "/api/deployments/nope/events", "Bearer tok", http.StatusNotFound},
		{"no token", "/api/deployments/d1/events", "", http.StatusUnauthorized},
		{"wrong token", "/api/deployments/d1/events", "Bearer tak", http.StatusUnauthorized},
		{"page stream without a session", "/deployments/d1/events", "", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, r.srv.URL+tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != tc.want || out["error"] == nil {
				t.Errorf("%d %v (%v), want %d with a JSON error", resp.StatusCode, out, err, tc.want)
			}
		})
	}
}

// TestEventStreamOutlivesServerTimeouts: a stream longer than the
// server's read and write timeouts is not cut: each write extends the
// deadline.
func TestEventStreamOutlivesServerTimeouts(t *testing.T) {
	hub := &live.Hub{}
	s, err := New(Config{APIToken: "tok", StateDir: t.TempDir(), Live: hub}, testApp(&fakeDeployments{}))
	if err != nil {
		t.Fatal(err)
	}
	s.page.heartbeat = 100 * time.Millisecond
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond
	srv.Start()
	defer srv.Close()
	evs := d1Events()
	hub.Observe(evs[0])
	go func() {
		for _, ev := range evs[1:] {
			time.Sleep(200 * time.Millisecond) // 1.2 s in all: 4 times the timeouts
			hub.Observe(ev)
		}
	}()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/deployments/d1/events", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := &sseReader{t: t, sc: bufio.NewScanner(resp.Body)}
	got := rd.all()
	if len(got) != len(evs)+1 || got[len(got)-1].kind != "end" {
		t.Fatalf("got %q: the stream was cut", kinds(got))
	}
	if id, _ := strconv.Atoi(got[len(got)-2].id); id != len(evs) {
		t.Errorf("last id %d", id)
	}
}

// TestEventStreamsAreBounded: one client may follow deployments with
// maxStreamsPerClient streams at once, and a deployment may have
// maxStreamsPerDeployment; beyond, 429 and 503 with Retry-After, and a
// closed stream gives its place back.
func TestEventStreamsAreBounded(t *testing.T) {
	r := newStreamRig(t, func(c *Config) {
		c.Guard.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} // clients named by X-Forwarded-For
	})
	r.hub.Observe(d1Events()[0]) // d1 runs
	r.hub.Observe(deploy.Event{Seq: 1, DeploymentID: "d2", Kind: deploy.EventDeployment, Status: deploy.StatusRunning})
	from := func(client string) map[string]string { return map[string]string{"X-Forwarded-For": client} }
	var first *http.Response
	for i := range maxStreamsPerClient {
		resp, _ := r.get("/api/deployments/d1/events", from("192.0.2.1"))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d of one client: %d", i+1, resp.StatusCode)
		}
		if first == nil {
			first = resp
		}
	}
	resp, _ := r.get("/api/deployments/d2/events", from("192.0.2.1"))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("one stream more from one client: %d (Retry-After %q), want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	first.Body.Close() // the client leaves: its place is free once the server notices
	waitUntil(t, func() bool {
		resp, _ := r.get("/api/deployments/d2/events", from("192.0.2.1"))
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	for i := maxStreamsPerClient - 1; i < maxStreamsPerDeployment; i++ {
		if resp, _ := r.get("/api/deployments/d1/events", from(fmt.Sprintf("198.51.100.%d", i))); resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d of d1: %d", i+1, resp.StatusCode)
		}
	}
	resp, _ = r.get("/api/deployments/d1/events", from("203.0.113.1"))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("one stream more of one deployment: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp, _ := r.get("/api/deployments/d2/events", from("203.0.113.1")); resp.StatusCode != http.StatusOK {
		t.Errorf("a stream of another deployment: %d, want 200", resp.StatusCode)
	}
}

// waitUntil waits for cond, for at most 5 seconds.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
