package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// chromiumPath is Debian's Chromium (apt-get install chromium, in
// .ci/install). Without it the browser test skips, or fails under
// DEPLOY_TEST_DISALLOW_SKIP.
const chromiumPath = "/usr/bin/chromium"

func needChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		testhosts.SkipOrFail(t, "no Chromium at "+chromiumPath+" (apt-get install chromium)")
	}
}

// browser starts a headless Chromium that can reach loopback only. Its
// context has no timeout (a timeout on the first run would stop the
// browser); each step gets its own, through step.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		chromedp.WindowSize(1100, 1000),
		chromedp.UserDataDir(t.TempDir()),
		// Nothing but loopback: no name resolves, no background fetches.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.Flag("proxy-server", "direct://"),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-pings", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// step runs one browser action with a timeout of its own.
func step[T any](ctx context.Context, d time.Duration, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return chromedp.Run(ctx, a)
}

// pageText is the page's address and text, for failure messages.
func pageText(ctx context.Context) string {
	loc, _ := step(ctx, 5*time.Second, chromedp.Location())
	text, err := step(ctx, 5*time.Second, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		return loc + ": " + err.Error()
	}
	return loc + "\n" + text
}

// pageState is what the test reads from a deployment's page.
type pageState struct {
	Hosts  [][2]string `json:"hosts"`
	Status string      `json:"status"`
	Mark   int         `json:"mark"`
	Log    int         `json:"log"`
}

const pageProbe = `({
	hosts: Array.from(document.querySelectorAll("#hosts .host")).map(h => [h.dataset.host, h.dataset.status]),
	status: document.querySelector("#dep-status").dataset.status,
	mark: window.pushdeployTestMark || 0,
	log: document.querySelector("#log").textContent.length,
})`

// TestEndToEndStatusPage drives the status page in headless Chromium: sign
// in with the token, start a deploy with the page's button, and watch both
// hosts go from running to succeeded on the same page load, as the event
// stream tells them; then save a screenshot.
func TestEndToEndStatusPage(t *testing.T) {
	needChromium(t)
	e := newE2E(t, 2)
	sha := e.commit("1.0", nil)
	s := e.serve()
	ctx := browser(t)
	const wait = 30 * time.Second

	// Signed out, / sends to the sign-in form.
	if _, err := step(ctx, wait, chromedp.Steps(chromedp.Navigate(s.url+"/"), chromedp.WaitVisible(chromedp.ID("token")))); err != nil {
		t.Fatalf("open the page: %v", err)
	}
	if loc, _ := step(ctx, wait, chromedp.Location()); !strings.Contains(loc, "/login") {
		t.Fatalf("signed out, / went to %s, want the sign-in form", loc)
	}
	_, err := step(ctx, wait, chromedp.Steps(
		chromedp.SendKeys(chromedp.ID("token"), s.token),
		chromedp.Click(chromedp.ID("sign-in")),
		chromedp.WaitVisible(chromedp.ID("deploy-tip")),
		chromedp.WaitVisible(chromedp.CSS("#releases table")), // asked for after the page was shown
	))
	if err != nil {
		t.Fatalf("sign in: %v\npage: %s\n%s", err, pageText(ctx), s.stderr)
	}
	html, err := step(ctx, wait, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(html, s.token) {
		t.Fatal("the token is in the page")
	}
	if n, err := step(ctx, wait, chromedp.Evaluate[int](`document.querySelectorAll("#releases tbody tr").length`)); err != nil || n != 2 {
		t.Errorf("the releases table has %d rows (%v), want one per host", n, err)
	}

	// Deploy from the button: the page goes to the deployment's page.
	_, err = step(ctx, wait, chromedp.Steps(
		chromedp.Click(chromedp.ID("deploy-tip")),
		chromedp.WaitReady(chromedp.CSS(`#hosts[data-live="1"]`)),
	))
	if err != nil {
		t.Fatalf("deploy from the page: %v\npage: %s\n%s", err, pageText(ctx), s.stderr)
	}
	// Marks this page load: a reload would lose it.
	if _, err := step(ctx, wait, chromedp.Evaluate[int](`window.pushdeployTestMark = 1`)); err != nil {
		t.Fatal(err)
	}
	loc, _ := step(ctx, wait, chromedp.Location())
	id := loc[strings.LastIndex(loc, "/")+1:]
	if !strings.Contains(loc, "/deployments/") || id == "" {
		t.Fatalf("after the button: %s, want a deployment's page", loc)
	}

	// Watch the hosts' elements change as events arrive.
	seen := map[string][]string{} // host: the statuses it showed, in order
	var st pageState
	deadline := time.Now().Add(3 * time.Minute)
	for {
		st, err = step(ctx, wait, chromedp.Evaluate[pageState](pageProbe))
		if err != nil {
			t.Fatalf("read the page: %v", err)
		}
		if st.Mark != 1 {
			t.Fatal("the page was reloaded: the hosts must change live")
		}
		for _, h := range st.Hosts {
			if l := seen[h[0]]; len(l) == 0 || l[len(l)-1] != h[1] {
				seen[h[0]] = append(l, h[1])
			}
		}
		if st.Status != "queued" && st.Status != "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page still shows %q after 3 minutes; hosts %v\n%s", st.Status, seen, s.stderr)
		}
		time.Sleep(40 * time.Millisecond)
	}
	t.Logf("host states seen on the page: %v", seen)
	if st.Status != "succeeded" {
		t.Fatalf("deployment shown as %q, want succeeded\n%s", st.Status, s.stderr)
	}
	if len(seen) != 2 {
		t.Fatalf("the page showed hosts %v, want 2", seen)
	}
	for host, states := range seen {
		r, ok := slices.Index(states, "running"), slices.Index(states, "succeeded")
		if r < 0 || ok < r || states[len(states)-1] != "succeeded" {
			t.Errorf("host %s went through %v on the page, want running, then succeeded (live)", host, states)
		}
	}
	if st.Log == 0 {
		t.Error("the live log stayed empty")
	}
	// Each host's name (user@127.x.y.z:port) is on one line of its card,
	// not broken mid-address, and whole at this width; its title is the name.
	type nameBox struct {
		Name, Title string
		Lines       int
		Cut         bool
	}
	names, err := step(ctx, wait, chromedp.Evaluate[[]nameBox](`Array.from(document.querySelectorAll("#hosts .host h3")).map(h => {
		const r = document.createRange(); r.selectNodeContents(h);
		return {name: h.textContent, title: h.title, lines: r.getClientRects().length, cut: h.scrollWidth > h.clientWidth};
	})`))
	if err != nil || len(names) != 2 {
		t.Errorf("host names on the page: %v (%v), want 2", names, err)
	}
	for _, n := range names {
		if n.Lines != 1 || n.Cut || n.Title != n.Name {
			t.Errorf("host name %q: %d line(s), cut %v, title %q; want 1 line, whole, the name as title", n.Name, n.Lines, n.Cut, n.Title)
		}
	}
	if note, err := step(ctx, wait, chromedp.Text(chromedp.ID("stream-note"))); err != nil || !strings.Contains(note, "succeeded") {
		t.Errorf("stream note %q (%v), want the end told", note, err)
	}

	// The Redeploy button names the commit, also when the deployment had
	// not resolved it yet as the page loaded.
	redeploy := `(() => { const b = document.getElementById("redeploy"); return b && !b.hidden ? b.textContent : ""; })()`
	if txt, err := step(ctx, wait, chromedp.Evaluate[string](redeploy)); err != nil || !strings.Contains(txt, sha[:7]) {
		t.Errorf("Redeploy button %q (%v), want it shown, naming %s", txt, err, sha[:7])
	}

	// The page told what the record says.
	rec := s.waitDone(id)
	if rec["status"] != "succeeded" || rec["commit"] != sha || rec["trigger"] != "api" {
		t.Errorf("record %v", rec)
	}
	for _, h := range e.env.Hosts {
		if rev := e.onHost(h, "cat", "app/current/REVISION"); rev != sha {
			t.Errorf("%s: REVISION %s, want %s", h.Name, rev, sha)
		}
	}

	// The page renders to a picture (the pictures in docs/ are the demo's:
	// go run ./demo --screenshots docs/images).
	png, err := step(ctx, wait, chromedp.FullScreenshot(100))
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot: %d bytes, %v; want a PNG", len(png), err)
	}
}

// sseEvent is one Server-Sent Event as a client reads it.
type sseEvent struct {
	ID, Kind string
	Data     map[string]any
}

// readSSE reads a stream until it closes.
func readSSE(t *testing.T, resp *http.Response) []sseEvent {
	t.Helper()
	var out []sseEvent
	var ev sseEvent
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.Kind != "" {
				out = append(out, ev)
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			ev.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.Kind = line[7:]
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(line[6:]), &ev.Data); err != nil {
				t.Fatalf("data %q: %v", line, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read the stream: %v", err)
	}
	return out
}

// TestEndToEndEventStream follows a real deploy through its event stream
// from the moment it is queued: every event in order without gaps, every
// step started before it ended, and the steps the stream told are the
// steps the record holds at the end.
func TestEndToEndEventStream(t *testing.T) {
	e := newE2E(t, 2)
	e.commit("1.0", nil)
	s := e.serve()
	code, out := s.api(http.MethodPost, "/api/deploy")
	if code != http.StatusAccepted {
		t.Fatalf("deploy: %d %v", code, out)
	}
	id := out["deployment"].(string)
	req, _ := http.NewRequest(http.MethodGet, s.url+"/api/deployments/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("events: %d", resp.StatusCode)
	}
	evs := readSSE(t, resp)
	t.Logf("%d events in %v", len(evs), time.Since(start).Round(time.Millisecond))
	if len(evs) < 2 || evs[len(evs)-1].Kind != "end" || evs[len(evs)-1].Data["status"] != "succeeded" {
		t.Fatalf("the stream did not end with the deployment's success: %d events, last %+v", len(evs), evs[len(evs)-1])
	}

	type stepKey struct{ host, step string }
	running := map[stepKey]bool{}
	told := map[string][]string{} // host: "step status" of each step end, in order
	lines := 0
	for i, ev := range evs[:len(evs)-1] {
		if ev.ID != fmt.Sprint(i+1) || ev.Data["seq"] != float64(i+1) {
			t.Fatalf("event %d has id %q (seq %v): the stream has a gap or is out of order", i, ev.ID, ev.Data["seq"])
		}
		host, _ := ev.Data["host"].(string)
		step, _ := ev.Data["step"].(string)
		k := stepKey{host, step}
		switch ev.Kind {
		case "step":
			if ev.Data["status"] == "running" {
				running[k] = true
				continue
			}
			if !running[k] {
				t.Errorf("step %s on %s ended before it started", step, host)
			}
			running[k] = false
			told[host] = append(told[host], fmt.Sprintf("%s %s", step, ev.Data["status"]))
		case "output":
			if !running[k] {
				t.Errorf("output of %s on %s outside the step", step, host)
			}
			lines++
		}
	}
	if lines == 0 {
		t.Error("no output line was streamed")
	}

	_, rec := s.api(http.MethodGet, "/api/deployments/"+id)
	if rec["status"] != "succeeded" {
		t.Fatalf("record: %v", rec)
	}
	hosts, _ := rec["hosts"].([]any)
	if len(hosts) != 2 {
		t.Fatalf("record has %d hosts", len(hosts))
	}
	for _, h := range hosts {
		hm := h.(map[string]any)
		var want []string
		for _, st := range hm["steps"].([]any) {
			sm := st.(map[string]any)
			want = append(want, fmt.Sprintf("%s %s", sm["step"], sm["status"]))
		}
		if got := told[hm["host"].(string)]; !slices.Equal(got, want) {
			t.Errorf("host %s: the stream told steps\n%v\nthe record says\n%v", hm["host"], got, want)
		}
	}

	// Resuming after the end from the last id gives just the end.
	req.Header.Set("Last-Event-ID", evs[len(evs)-2].ID)
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	if rest := readSSE(t, resp2); len(rest) != 1 || rest[0].Kind != "end" {
		t.Errorf("resumed after the last event: %+v, want only the end", rest)
	}
}
