package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/history"
)

var h0 = time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)

// storedDeployments fills a real history store with n finished
// deployments, one a minute, alternately succeeded and failed, with
// commits a…, b…, …; it returns their ids newest first.
func storedDeployments(t *testing.T, n int) (history.Store, []string) {
	t.Helper()
	st, err := history.Open(context.Background(), t.TempDir(), history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var ids []string
	for i := range n {
		status := deploy.StatusSucceeded
		if i%2 == 1 {
			status = deploy.StatusFailed
		}
		q := h0.Add(time.Duration(i) * time.Minute)
		d := &deploy.Deployment{ID: fmt.Sprintf("20261125-20%02d00-00000%d", i, i), Action: "deploy", Status: status,
			Queued: q, Started: q, Finished: q.Add(30 * time.Second),
			Request: deploy.Request{Trigger: "webhook", Push: deploy.Push{Branch: "release"}},
			Release: deploy.Release{Branch: "release", Commit: strings.Repeat(string(rune('a'+i)), 40)},
			Hosts: []*deploy.HostResult{{Host: deploy.Host{Name: "web1"}, Status: status, Duration: time.Second,
				Steps: []deploy.StepResult{{Name: "clone", Status: status, Started: q, Duration: time.Second, Output: "cloned"}}}},
		}
		if err := st.Save(context.Background(), d, history.Self()); err != nil {
			t.Fatal(err)
		}
		ids = append([]string{d.ID}, ids...)
	}
	return st, ids
}

func getList(t *testing.T, h http.Handler, query string) (int, []string, string, map[string]any) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/api/deployments"+query, nil)
	r.Header.Set("Authorization", "Bearer tok")
	code, out := serveJSON(h, r)
	var ids []string
	list, _ := out["deployments"].([]any)
	for _, d := range list {
		ids = append(ids, d.(map[string]any)["id"].(string))
	}
	next, _ := out["next"].(string)
	return code, ids, next, out
}

func TestListPaging(t *testing.T) {
	st, ids := storedDeployments(t, 7)
	h := newTestServer(t, &fakeDeployments{}, func(c *Config) { c.History = st })
	var got []string
	query := "?limit=3"
	pages := 0
	for {
		code, page, next, out := getList(t, h, query)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %v", query, code, out)
		}
		pages++
		got = append(got, page...)
		if next == "" {
			break
		}
		if next != page[len(page)-1] {
			t.Errorf("next %q is not the page's last id %q", next, page[len(page)-1])
		}
		query = "?limit=3&before=" + next
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if pages != 3 {
		t.Errorf("%d pages of 3 for 7 deployments, want 3", pages)
	}
	if diff := cmp.Diff(ids, got); diff != "" {
		t.Errorf("pages put together (-want +got):\n%s", diff)
	}
	// The default limit covers them all, with no next.
	if _, page, next, _ := getList(t, h, ""); len(page) != 7 || next != "" {
		t.Errorf("default page: %d deployments, next %q", len(page), next)
	}
}

func TestListFilters(t *testing.T) {
	st, ids := storedDeployments(t, 7) // ids[0] is the newest (index 6: commit g…, succeeded)
	for _, withHistory := range []bool{true, false} {
		f := &fakeDeployments{}
		if !withHistory {
			// The worker's memory alone, with the same deployments.
			f.deps = map[string]*deploy.Deployment{}
			all, err := st.Deployments(context.Background(), deploy.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range all {
				f.deps[d.ID] = d
			}
		}
		h := newTestServer(t, f, func(c *Config) {
			if withHistory {
				c.History = st
			}
		})
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"?status=failed", []string{ids[1], ids[3], ids[5]}},
			{"?status=succeeded&limit=2", []string{ids[0], ids[2]}},
			{"?commit=ccc", []string{ids[4]}},
			{"?commit=CCC", []string{ids[4]}},
			{"?commit=c", []string{ids[4]}},
			{"?since=" + url.QueryEscape(h0.Add(4*time.Minute).Format(time.RFC3339)), ids[:3]},
			{"?since=" + url.QueryEscape(h0.Add(4*time.Minute).Format(time.RFC3339)) + "&status=succeeded", []string{ids[0], ids[2]}},
			{"?status=interrupted", nil},
			{"?before=" + ids[4], ids[5:]},
		} {
			t.Run(fmt.Sprintf("history=%v %s", withHistory, tc.query), func(t *testing.T) {
				code, got, _, out := getList(t, h, tc.query)
				if code != http.StatusOK {
					t.Fatalf("%d %v", code, out)
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("ids (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestListBadParameters(t *testing.T) {
	st, _ := storedDeployments(t, 2)
	h := newTestServer(t, &fakeDeployments{}, func(c *Config) { c.History = st })
	for _, tc := range []struct{ query, param string }{
		{"?limit=0", "limit"},
		{"?limit=501", "limit"},
		{"?limit=ten", "limit"},
		{"?status=done", "status"},
		{"?status=rolled+back", "status"},
		{"?commit=xyz", "commit"},
		{"?commit=" + strings.Repeat("a", 41), "commit"},
		{"?since=yesterday", "since"},
		{"?since=2026-11-25", "since"},
		{"?before=20261125-000000-ffffff", "before"},
		{"?before=" + url.QueryEscape("x' OR 1=1 --"), "before"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			code, _, _, out := getList(t, h, tc.query)
			msg, _ := out["error"].(string)
			if code != http.StatusBadRequest || !strings.HasPrefix(msg, tc.param+":") {
				t.Errorf("%d %v, want 400 naming %s", code, out, tc.param)
			}
		})
	}
	if code, _, _, out := getList(t, h, "?limit=500"); code != http.StatusOK {
		t.Errorf("limit=500: %d %v", code, out)
	}
}

// TestListPrefersTheWorkersCopy: the record is written a moment after the
// worker changes a deployment; the API shows the worker's copy, and a
// deployment just queued that the record has not heard of yet.
func TestListPrefersTheWorkersCopy(t *testing.T) {
	st, ids := storedDeployments(t, 3)
	running, _, err := st.Deployment(context.Background(), ids[0])
	if err != nil {
		t.Fatal(err)
	}
	running.Status, running.Finished = deploy.StatusRunning, time.Time{}
	queued := &deploy.Deployment{ID: "20261125-210000-aaaaaa", Action: "deploy", Status: deploy.StatusQueued, Queued: h0.Add(time.Hour)}
	f := &fakeDeployments{deps: map[string]*deploy.Deployment{running.ID: running, queued.ID: queued}}
	h := newTestServer(t, f, func(c *Config) { c.History = st })

	code, got, _, out := getList(t, h, "")
	if code != http.StatusOK {
		t.Fatal(code, out)
	}
	if want := []string{queued.ID, ids[0], ids[1], ids[2]}; !cmp.Equal(want, got) {
		t.Fatalf("ids %v, want %v", got, want)
	}
	if st := out["deployments"].([]any)[1].(map[string]any)["status"]; st != "running" {
		t.Errorf("status %v, want the worker's running", st)
	}
	if _, got, _, _ := getList(t, h, "?status=running"); !cmp.Equal(got, []string{ids[0]}) {
		t.Errorf("status=running: %v", got)
	}
	if _, got, _, _ := getList(t, h, "?status=succeeded"); !cmp.Equal(got, []string{ids[2]}) {
		t.Errorf("status=succeeded: %v (the worker says %s is running)", got, ids[0])
	}
	// A page boundary: the queued one only shows on the first page.
	_, first, next, _ := getList(t, h, "?limit=2")
	_, second, _, _ := getList(t, h, "?limit=2&before="+next)
	if !cmp.Equal(first, []string{queued.ID, ids[0]}) || !cmp.Equal(second, []string{ids[1], ids[2]}) {
		t.Errorf("pages %v %v", first, second)
	}
}

func TestGetFromHistory(t *testing.T) {
	st, ids := storedDeployments(t, 2)
	h := newTestServer(t, &fakeDeployments{}, func(c *Config) { c.History = st })
	r := httptest.NewRequest(http.MethodGet, "/api/deployments/"+ids[1], nil)
	r.Header.Set("Authorization", "Bearer tok")
	code, out := serveJSON(h, r)
	if code != http.StatusOK || out["status"] != "succeeded" {
		t.Fatalf("%d %v", code, out)
	}
	hosts, _ := out["hosts"].([]any)
	if len(hosts) != 1 {
		t.Fatalf("hosts %v", out["hosts"])
	}
	steps := hosts[0].(map[string]any)["steps"].([]any)
	step := steps[0].(map[string]any)
	if step["step"] != "clone" || step["output_tail"] != "cloned" || step["duration_s"] != 1.0 {
		t.Errorf("step %v", step)
	}
	r = httptest.NewRequest(http.MethodGet, "/api/deployments/nope", nil)
	r.Header.Set("Authorization", "Bearer tok")
	if code, out := serveJSON(h, r); code != http.StatusNotFound {
		t.Errorf("unknown id: %d %v", code, out)
	}
}

func TestHealthzChecksTheHistory(t *testing.T) {
	st, ids := storedDeployments(t, 2)
	h := newTestServer(t, &fakeDeployments{}, func(c *Config) { c.History = st })
	code, out := serveJSON(h, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	last, _ := out["last_deployment"].(map[string]any)
	if code != http.StatusOK || last["id"] != ids[0] {
		t.Errorf("healthz with a working history: %d %v (want the record's last deployment %s)", code, out, ids[0])
	}
	// A history that can no longer be written: 503 with the reason.
	st2, _ := storedDeployments(t, 1)
	h = newTestServer(t, &fakeDeployments{}, func(c *Config) { c.History = st2 })
	st2.Close()
	code, out = serveJSON(h, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if reason, _ := out["reason"].(string); code != http.StatusServiceUnavailable || !strings.Contains(reason, "history database") {
		t.Errorf("healthz with a closed history: %d %v, want 503 naming the history database", code, out)
	}
}

// TestHealthzShowsNoOutput: /healthz needs no token, so of the running and
// the last deployment it tells the status, the times and where it failed
// (host and step), never an error message or output, whether the
// deployment comes from the worker or, after a restart, from the record.
// (A failing hook printed a database URL, and /healthz showed it.)
func TestHealthzShowsNoOutput(t *testing.T) {
	const leak = "postgres://app:hunter2@db.internal/app"
	failed := func(id string) *deploy.Deployment {
		q := h0
		return &deploy.Deployment{ID: id, Action: "deploy", Status: deploy.StatusFailed, Queued: q, Started: q, Finished: q.Add(time.Minute),
			Request: deploy.Request{Trigger: "webhook", Actor: "Ada", Push: deploy.Push{Branch: "release"}},
			Release: deploy.Release{Branch: "release", Commit: strings.Repeat("a", 40)},
			Err:     &deploy.StepError{Host: "web2", Step: "before-switch", Err: fmt.Errorf("exit status 1: %s", leak), Output: "DATABASE_URL=" + leak},
			Hosts: []*deploy.HostResult{{Host: deploy.Host{Name: "web2"}, Status: deploy.StatusFailed,
				Steps: []deploy.StepResult{{Name: "before-switch", Status: deploy.StatusFailed, Started: q, Output: "DATABASE_URL=" + leak, Err: errors.New(leak)}}}},
		}
	}
	running := failed("20261125-200000-000002")
	running.Status, running.Err, running.Finished = deploy.StatusRunning, nil, time.Time{}
	running.Hosts[0].Status, running.Hosts[0].Steps[0].Status = deploy.StatusSucceeded, deploy.StatusSucceeded

	st, err := history.Open(context.Background(), t.TempDir(), history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Save(context.Background(), failed("20261125-200000-000001"), history.Self()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		health deploy.Health
	}{
		{"from the worker", deploy.Health{Running: running, Last: failed("20261125-200000-000001")}},
		{"from the record", deploy.Health{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestServer(t, &fakeDeployments{health: tc.health}, func(c *Config) { c.History = st })
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
			body := w.Body.String()
			for _, secret := range []string{"hunter2", "DATABASE_URL", "exit status", "Ada"} {
				if strings.Contains(body, secret) {
					t.Errorf("/healthz shows %q: %s", secret, body)
				}
			}
			want := `"last_deployment":{"id":"20261125-200000-000001","action":"deploy","status":"failed","queued":"2026-11-25T20:00:00Z","started":"2026-11-25T20:00:00Z","finished":"2026-11-25T20:01:00Z","failed_host":"web2","failed_step":"before-switch"}`
			if !strings.Contains(body, want) {
				t.Errorf("/healthz: %s\nwant it to hold %s", body, want)
			}
		})
	}
}
