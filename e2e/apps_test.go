package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// appsRig is one serve with two apps from DEPLOY_APPS_DIR: staging (branch
// staging, hosts 0 and 1, root "staging") and production (branch release,
// hosts 1 and 2, root "production"): host 1 carries both, in two roots.
type appsRig struct {
	*e2e
	dir     string // DEPLOY_APPS_DIR
	s       *server
	secrets map[string]string // app: its webhook secret
}

func newAppsRig(t *testing.T) *appsRig {
	t.Helper()
	e := newE2E(t, 3)
	r := &appsRig{e2e: e, dir: t.TempDir(), secrets: map[string]string{
		"staging":    "staging-webhook-secret",
		"production": "production-webhook-secret",
	}}
	r.writeHosts("staging", 0, 1)
	r.writeHosts("production", 1, 2)
	r.writeApp("staging", "DEPLOY_BRANCH=staging\nDEPLOY_ROOT=staging\n")
	r.writeApp("production", "DEPLOY_BRANCH=release\nDEPLOY_ROOT=production\n")
	e.vars["DEPLOY_APPS_DIR"] = r.dir
	return r
}

// writeHosts writes the hosts file of app: the test hosts idx, in order.
func (r *appsRig) writeHosts(app string, idx ...int) {
	r.t.Helper()
	var b strings.Builder
	for _, i := range idx {
		b.WriteString(r.env.Hosts[i].Name + "\n")
	}
	if err := os.WriteFile(filepath.Join(r.dir, app+"-hosts.txt"), []byte(b.String()), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// writeApp writes app's file: vars, its hosts file and its secret
// (when it has one).
func (r *appsRig) writeApp(app, vars string) {
	r.t.Helper()
	body := vars + "DEPLOY_HOSTS_FILE=" + filepath.Join(r.dir, app+"-hosts.txt") + "\n"
	if s, ok := r.secrets[app]; ok {
		body += "DEPLOY_WEBHOOK_SECRET=" + s + "\n"
	}
	// Secrets: not readable by others (pushdeploy warns otherwise).
	if err := os.WriteFile(filepath.Join(r.dir, app+".env"), []byte(body), 0o600); err != nil {
		r.t.Fatal(err)
	}
}

// push posts a Bitbucket push of branch at commit to path (/webhook/APP),
// signed with secret.
func (r *appsRig) push(path, secret, delivery, branch, commit string) (int, map[string]any) {
	r.t.Helper()
	body := bitbucketPush(branch, commit)
	req, _ := http.NewRequest(http.MethodPost, r.s.url+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Event-Key", "repo:push")
	req.Header.Set("X-Request-UUID", delivery)
	req.Header.Set("X-Hook-UUID", "{hook}")
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req.Header.Set("X-Hub-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	return r.s.do(req)
}

// deployApp pushes branch at commit to app's webhook, expects it queued and
// returns the deployment id.
func (r *appsRig) deployApp(app, delivery, branch, commit string) string {
	r.t.Helper()
	code, out := r.push("/webhook/"+app, r.secrets[app], delivery, branch, commit)
	if code != http.StatusAccepted || out["status"] != "queued" {
		r.t.Fatalf("push of %s to /webhook/%s: %d %v, want 202 queued\n%s", branch, app, code, out, r.s.stderr)
	}
	return out["deployment"].(string)
}

// mustSucceed waits for deployment id and checks it is app's and succeeded
// with commit.
func (r *appsRig) mustSucceed(app, id, commit string) deploymentJSON {
	r.t.Helper()
	raw := r.s.waitDone(id)
	if raw["status"] != "succeeded" || raw["commit"] != commit || raw["app"] != app {
		r.t.Fatalf("deployment %s: %v; want app %s, succeeded with %s\n%s", id, raw, app, commit, r.s.stderr)
	}
	var d deploymentJSON
	b, _ := json.Marshal(raw)
	if err := json.Unmarshal(b, &d); err != nil {
		r.t.Fatal(err)
	}
	return d
}

// revision is what root/current/REVISION holds on host i ("" when there
// is no current).
func (r *appsRig) revision(i int, root string) string {
	r.t.Helper()
	b, err := os.ReadFile(r.env.Hosts[i].Path(root + "/current/REVISION"))
	if os.IsNotExist(err) {
		return ""
	}
	if err != nil {
		r.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// prepareWindow is when a deployment's hosts were prepared: from its
// first step to the end of its last before-switch step.
func prepareWindow(d deploymentJSON) (from, to time.Time) {
	for _, h := range d.Hosts {
		for _, s := range h.Steps {
			if s.Started.IsZero() {
				continue
			}
			if from.IsZero() || s.Started.Before(from) {
				from = s.Started
			}
			end := s.Started.Add(time.Duration(s.Seconds * float64(time.Second)))
			if s.Step == "before-switch" && end.After(to) {
				to = end
			}
		}
	}
	return from, to
}

// atOnce pushes commit to both apps' webhooks at the same moment and waits
// for both deployments; it returns them (staging, production) and the wall
// time from the pushes to the end of the later one.
func (r *appsRig) atOnce(tag, commit string) (deploymentJSON, deploymentJSON, time.Duration) {
	r.t.Helper()
	start := time.Now()
	ids := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for app, branch := range map[string]string{"staging": "staging", "production": "release"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, out := r.push("/webhook/"+app, r.secrets[app], tag+"-"+app, branch, commit)
			mu.Lock()
			defer mu.Unlock()
			if code == http.StatusAccepted {
				ids[app], _ = out["deployment"].(string)
			} else {
				ids[app] = fmt.Sprintf("%d %v", code, out)
			}
		}()
	}
	wg.Wait()
	for app, id := range ids {
		if !strings.HasPrefix(id, "20") {
			r.t.Fatalf("push to /webhook/%s: %s, want 202 queued", app, id)
		}
	}
	st := r.mustSucceed("staging", ids["staging"], commit)
	pr := r.mustSucceed("production", ids["production"], commit)
	return st, pr, time.Since(start)
}

// TestEndToEndApps runs one serve with two apps (staging and production)
// against real sshd hosts and the real git server: each push deploys only
// its app, with its own secret; the two deploy at the same time, also on
// the host they share (different roots); the API and the CLI see both.
func TestEndToEndApps(t *testing.T) {
	r := newAppsRig(t)
	ctx := context.Background()
	a := r.commit("1.0", nil)
	if err := r.env.PushBranch(ctx, a, "staging"); err != nil {
		t.Fatal(err)
	}
	r.s = r.serve()

	// With several apps, /webhook and /api/deploy name the per-app paths.
	code, out := r.push("/webhook", r.secrets["staging"], "w-0", "staging", a)
	if msg := fmt.Sprint(out); code != http.StatusNotFound || !strings.Contains(msg, "/webhook/") {
		t.Errorf("POST /webhook with two apps: %d %v, want 404 naming /webhook/{app}", code, out)
	}
	code, out = r.s.api(http.MethodPost, "/api/deploy")
	if msg := fmt.Sprint(out); code != http.StatusNotFound || !strings.Contains(msg, "/api/apps/") {
		t.Errorf("POST /api/deploy with two apps: %d %v, want 404 naming /api/apps/{app}/deploy", code, out)
	}
	// Each app verifies with its own secret only; a push of another branch
	// than the app's is ignored.
	if code, out := r.push("/webhook/production", r.secrets["staging"], "w-1", "release", a); code != http.StatusUnauthorized {
		t.Errorf("push signed with staging's secret to /webhook/production: %d %v, want 401", code, out)
	}
	if code, out := r.push("/webhook/production", r.secrets["production"], "w-2", "staging", a); code != http.StatusOK || out["status"] != "ignored" {
		t.Errorf("push of branch staging to /webhook/production: %d %v, want 200 ignored", code, out)
	}
	if code, out := r.push("/webhook/nosuchapp", r.secrets["staging"], "w-3", "staging", a); code != http.StatusNotFound {
		t.Errorf("push to an unknown app: %d %v, want 404", code, out)
	}
	if n := r.s.deploymentCount(); n != 0 {
		t.Fatalf("%d deployments after refused and ignored pushes, want 0", n)
	}

	// A first deploy of both at once: the prepare steps overlap in time,
	// also on host 1, which both apps share in different roots.
	st, pr, _ := r.atOnce("first", a)
	sf, stTo := prepareWindow(st)
	pf, prTo := prepareWindow(pr)
	if !sf.Before(prTo) || !pf.Before(stTo) {
		t.Errorf("prepare windows do not overlap: staging %v–%v, production %v–%v", sf, stTo, pf, prTo)
	}
	for i, want := range []struct{ staging, production string }{{a, ""}, {a, a}, {"", a}} {
		if got := r.revision(i, "staging"); got != want.staging {
			t.Errorf("host %d staging/current: %q, want %q", i, got, want.staging)
		}
		if got := r.revision(i, "production"); got != want.production {
			t.Errorf("host %d production/current: %q, want %q", i, got, want.production)
		}
	}

	// Code-only redeploys: one app after the other, then both at once, on
	// the same hosts (the figure for the note).
	b := r.commit("1.0", map[string]string{"version.txt": "b"})
	if err := r.env.PushBranch(ctx, b, "staging"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r.mustSucceed("staging", r.deployApp("staging", "seq-s", "staging", b), b)
	r.mustSucceed("production", r.deployApp("production", "seq-p", "release", b), b)
	oneAfterOther := time.Since(start)
	c := r.commit("1.0", map[string]string{"version.txt": "c"})
	if err := r.env.PushBranch(ctx, c, "staging"); err != nil {
		t.Fatal(err)
	}
	_, _, together := r.atOnce("both", c)
	t.Logf("code-only redeploy of staging (2 hosts) and production (2 hosts, one shared): one after the other %.2fs, at once %.2fs",
		oneAfterOther.Seconds(), together.Seconds())

	// The API: every app with its hosts' commits; deployments per app.
	code, out = r.s.api(http.MethodGet, "/api/apps")
	apps, _ := out["apps"].([]any)
	if code != http.StatusOK || len(apps) != 2 {
		t.Fatalf("GET /api/apps: %d %v, want 2 apps", code, out)
	}
	for _, x := range apps {
		app := x.(map[string]any)
		hosts, _ := app["hosts"].([]any)
		if len(hosts) != 2 || app["disagree"] != false {
			t.Errorf("app %v: want 2 hosts that agree", app)
		}
		for _, h := range hosts {
			if h.(map[string]any)["commit"] != c {
				t.Errorf("app %s host %v: want commit %s", app["name"], h, c)
			}
		}
		if last, _ := app["last_deployment"].(map[string]any); last["status"] != "succeeded" {
			t.Errorf("app %s: last deployment %v, want succeeded", app["name"], app["last_deployment"])
		}
	}
	_, out = r.s.api(http.MethodGet, "/api/deployments?app=staging")
	list, _ := out["deployments"].([]any)
	if len(list) != 3 {
		t.Errorf("GET /api/deployments?app=staging: %d deployments, want 3", len(list))
	}
	for _, x := range list {
		if d := x.(map[string]any); d["app"] != "staging" {
			t.Errorf("?app=staging lists %v", d)
		}
	}

	// The CLI: apps; releases needs --app with several apps.
	res := r.pushdeploy("apps", "--json")
	if res.code != 0 || !strings.Contains(res.stdout, "staging") || !strings.Contains(res.stdout, "production") {
		t.Errorf("pushdeploy apps: %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	res = r.pushdeploy("releases")
	if res.code != 2 || !strings.Contains(res.stderr, "staging") || !strings.Contains(res.stderr, "production") || !strings.Contains(res.stderr, "--app") {
		t.Errorf("releases without --app: exit %d\n%s, want 2 naming --app and the apps", res.code, res.stderr)
	}
	res = r.pushdeploy("releases", "--app", "production", "--json")
	if res.code != 0 || !strings.Contains(res.stdout, c[:7]) || strings.Contains(res.stdout, r.env.Hosts[0].Name) {
		t.Errorf("releases --app production: %d\n%s%s, want production's hosts only", res.code, res.stdout, res.stderr)
	}
	for _, secret := range r.secrets {
		if strings.Contains(r.s.stderr.String(), secret) {
			t.Error("an app's webhook secret is in serve's log")
		}
	}
}

// TestEndToEndAppsPromotionAndReload: production promotes from staging
// (taken in with SIGHUP, as a changed app file is): it refuses a commit
// staging has not deployed, deploys with --from staging the commit staging
// runs, and refuses a staging commit that is not on its own branch. A new
// app file starts an app, a broken one keeps the app's previous
// configuration and is reported, a removed one stops the app.
func TestEndToEndAppsPromotionAndReload(t *testing.T) {
	r := newAppsRig(t)
	ctx := context.Background()
	a := r.commit("1.0", nil)
	if err := r.env.PushBranch(ctx, a, "staging"); err != nil {
		t.Fatal(err)
	}
	r.s = r.serve()
	r.mustSucceed("staging", r.deployApp("staging", "s-a", "staging", a), a)

	// Reload: production now promotes from staging and runs 3 processes;
	// a new app, qa, on host 0.
	r.writeApp("production", "DEPLOY_BRANCH=release\nDEPLOY_ROOT=production\nDEPLOY_PROMOTE_FROM=staging\nDEPLOY_APP_PROCESSES=3\n")
	r.secrets["qa"] = "qa-webhook-secret"
	r.writeHosts("qa", 0)
	r.writeApp("qa", "DEPLOY_BRANCH=staging\nDEPLOY_ROOT=qa\n")
	r.reload(func(apps []string, _ map[string]any) bool { return slices.Contains(apps, "qa") })

	// A commit staging has not deployed: refused, recorded with the reason.
	d := r.commit("1.0", map[string]string{"version.txt": "d"})
	code, out := r.push("/webhook/production", r.secrets["production"], "p-d", "release", d)
	if reason, _ := out["reason"].(string); code != http.StatusOK || out["status"] != "refused" || !strings.Contains(reason, "staging") {
		t.Fatalf("push of a commit staging has not deployed: %d %v, want 200 refused naming staging\n%s", code, out, r.s.stderr)
	}
	if id, _ := out["deployment"].(string); id != "" {
		if _, rec := r.s.api(http.MethodGet, "/api/deployments/"+id); rec["status"] != "refused" || rec["app"] != "production" {
			t.Errorf("the refused push's record: %v, want status refused, app production", rec)
		}
	} else {
		t.Errorf("the refused push names no deployment record: %v", out)
	}
	if got := r.revision(1, "production"); got != "" {
		t.Fatalf("production deployed %s on host 1 although staging has not deployed it", got)
	}

	// Staging deploys it; then production takes what staging runs.
	if err := r.env.PushBranch(ctx, d, "staging"); err != nil {
		t.Fatal(err)
	}
	r.mustSucceed("staging", r.deployApp("staging", "s-d", "staging", d), d)
	req, _ := http.NewRequest(http.MethodPost, r.s.url+"/api/apps/production/deploy", strings.NewReader(`{"from":"staging"}`))
	req.Header.Set("Authorization", "Bearer "+r.s.token)
	code, out = r.s.do(req)
	if code != http.StatusAccepted || out["commit"] != d {
		t.Fatalf("POST /api/apps/production/deploy from staging: %d %v, want 202 with %s\n%s", code, out, d, r.s.stderr)
	}
	r.mustSucceed("production", out["deployment"].(string), d)
	for _, i := range []int{1, 2} {
		if got := r.revision(i, "production"); got != d {
			t.Errorf("host %d production: %q, want %q", i, got, d)
		}
	}
	// The changed file took effect at this deployment.
	if env := r.onHost(r.env.Hosts[2], "cat", "restart.env"); !strings.Contains(env, "APP_PROCESSES=3") {
		t.Errorf("host 2's restart saw %q, want APP_PROCESSES=3 from the reloaded production.env", env)
	}

	// A staging commit that is not on production's branch is refused by
	// the CLI's --from as well.
	e := r.commitOn(ctx, "staging", "e")
	r.mustSucceed("staging", r.deployApp("staging", "s-e", "staging", e), e)
	res := r.pushdeploy("deploy", "--app", "production", "--from", "staging")
	if res.code == 0 || !strings.Contains(res.stderr, e[:7]) || !strings.Contains(res.stderr, "release") {
		t.Errorf("deploy --app production --from staging with a commit not on release: exit %d\n%s, want a refusal naming %s and branch release", res.code, res.stderr, e[:7])
	}
	if got := r.revision(2, "production"); got != d {
		t.Errorf("host 2 production after the refused --from: %q, want %q", got, d)
	}

	// The new app deploys from its own webhook.
	r.mustSucceed("qa", r.deployApp("qa", "q-e", "staging", e), e)
	if got := r.revision(0, "qa"); got != e {
		t.Errorf("host 0 qa: %q, want %q", got, e)
	}

	// A broken staging file keeps staging's previous configuration and is
	// reported on /healthz; a removed qa file stops qa.
	r.writeApp("staging", "DEPLOY_BRANCH=staging\nDEPLOY_ROOT=staging\nDEPLOY_LISTEN=127.0.0.1:1\n")
	if err := os.Remove(filepath.Join(r.dir, "qa.env")); err != nil {
		t.Fatal(err)
	}
	r.reload(func(apps []string, health map[string]any) bool {
		return !slices.Contains(apps, "qa") && strings.Contains(fmt.Sprint(health), "staging.env")
	})
	if h := r.health(); !strings.Contains(fmt.Sprint(h), "DEPLOY_LISTEN") {
		t.Errorf("/healthz after a broken staging.env: %v, want the file and the variable named", h)
	}
	if code, out := r.push("/webhook/qa", r.secrets["qa"], "q-2", "staging", e); code != http.StatusNotFound {
		t.Errorf("push to the removed app qa: %d %v, want 404", code, out)
	}
	f := r.commitOn(ctx, "staging", "f")
	r.mustSucceed("staging", r.deployApp("staging", "s-f", "staging", f), f)
	if got := r.revision(0, "staging"); got != f {
		t.Errorf("host 0 staging after the broken file: %q, want %q (the previous configuration)", got, f)
	}
	if err := r.s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-r.s.exited
}

// commitOn commits a change on branch only (release stays where it was).
func (r *appsRig) commitOn(ctx context.Context, branch, version string) string {
	r.t.Helper()
	sha, err := r.env.CommitBranch(ctx, branch, r.env.AppFiles("1.0"), "on "+branch+" "+version)
	if err != nil {
		r.t.Fatal(err)
	}
	return sha
}

func (r *appsRig) health() map[string]any {
	r.t.Helper()
	resp, err := http.Get(r.s.url + "/healthz")
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var h map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&h)
	return h
}

// reload sends serve SIGHUP and waits until done says the apps it lists
// (GET /api/apps) and /healthz show the reload.
func (r *appsRig) reload(done func(apps []string, health map[string]any) bool) {
	r.t.Helper()
	if err := r.s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		r.t.Fatal(err)
	}
	await(r.t, "serve to reload DEPLOY_APPS_DIR", 30*time.Second, func() (bool, any) {
		_, out := r.s.api(http.MethodGet, "/api/apps")
		var names []string
		list, _ := out["apps"].([]any)
		for _, x := range list {
			names = append(names, fmt.Sprint(x.(map[string]any)["name"]))
		}
		h := r.health()
		return done(names, h), fmt.Sprintf("apps %v, healthz %v\n%s", names, h, r.s.stderr)
	})
}

// overviewState is what the test reads from the overview of several apps.
type overviewState struct {
	Mark int  `json:"mark"`
	Live bool `json:"live"`
	Apps []struct {
		Name    string      `json:"name"`
		Running string      `json:"running"`
		Last    string      `json:"last"`
		Hosts   [][3]string `json:"hosts"` // host, status, commit
	} `json:"apps"`
}

const overviewProbe = `({
	mark: window.pushdeployTestMark || 0,
	live: document.querySelector("#apps").dataset.live === "1",
	apps: Array.from(document.querySelectorAll("#apps section.app")).map(a => ({
		name: a.dataset.app,
		running: a.dataset.running || "",
		last: a.querySelector("[data-role=last]").dataset.status || "",
		hosts: Array.from(a.querySelectorAll("tr[data-host]")).map(r => [r.dataset.host, r.dataset.status || "", r.dataset.commit || ""]),
	})),
})`

// TestEndToEndAppsStatusPage drives the overview of two apps in headless
// Chromium: both apps with their hosts on one page; each app's Deploy
// button starts that app's deployment, and the page follows both live on
// one page load, hosts running then done, until each app's last
// deployment is succeeded and its hosts show the new commit.
func TestEndToEndAppsStatusPage(t *testing.T) {
	needChromium(t)
	r := newAppsRig(t)
	a := r.commit("1.0", nil)
	if err := r.env.PushBranch(context.Background(), a, "staging"); err != nil {
		t.Fatal(err)
	}
	r.s = r.serve()
	ctx := browser(t)
	const wait = 30 * time.Second
	_, err := step(ctx, wait, chromedp.Steps(
		chromedp.Navigate(r.s.url+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), r.s.token),
		chromedp.Click(chromedp.ID("sign-in")),
		chromedp.WaitVisible(chromedp.ID("app-staging")),
		chromedp.WaitVisible(chromedp.ID("app-production")),
		chromedp.WaitReady(chromedp.CSS(`#apps[data-live="1"]`)),
	))
	if err != nil {
		t.Fatalf("sign in to the overview: %v\npage: %s\n%s", err, pageText(ctx), r.s.stderr)
	}
	if _, err := step(ctx, wait, chromedp.Evaluate[int](`window.pushdeployTestMark = 1`)); err != nil {
		t.Fatal(err)
	}
	st, err := step(ctx, wait, chromedp.Evaluate[overviewState](overviewProbe))
	if err != nil || len(st.Apps) != 2 || len(st.Apps[0].Hosts) != 2 || len(st.Apps[1].Hosts) != 2 {
		t.Fatalf("the overview shows %+v (%v), want two apps of two hosts each\n%s", st, err, pageText(ctx))
	}
	for _, app := range []string{"staging", "production"} {
		if _, err := step(ctx, wait, chromedp.Click(chromedp.ID("deploy-"+app))); err != nil {
			t.Fatalf("click deploy-%s: %v\n%s", app, err, pageText(ctx))
		}
	}

	// Both apps change live on this page load.
	seen := map[string][]string{} // app/host: statuses shown, in order
	deadline := time.Now().Add(4 * time.Minute)
	for {
		st, err = step(ctx, wait, chromedp.Evaluate[overviewState](overviewProbe))
		if err != nil {
			t.Fatalf("read the overview: %v", err)
		}
		if st.Mark != 1 {
			t.Fatal("the overview was reloaded: it must change live")
		}
		done := 0
		for _, app := range st.Apps {
			for _, h := range app.Hosts {
				k := app.Name + "/" + h[0]
				if l := seen[k]; h[1] != "" && (len(l) == 0 || l[len(l)-1] != h[1]) {
					seen[k] = append(l, h[1])
				}
			}
			committed := true
			for _, h := range app.Hosts {
				committed = committed && h[2] == a
			}
			if app.Running == "" && app.Last == "succeeded" && committed {
				done++
			}
		}
		if done == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the overview after 4 minutes: %+v; seen %v\n%s", st, seen, r.s.stderr)
		}
		time.Sleep(40 * time.Millisecond)
	}
	t.Logf("host states seen on the overview: %v", seen)
	if len(seen) != 4 {
		t.Errorf("the overview showed hosts %v running, want all 4 (2 per app)", seen)
	}
	for k, states := range seen {
		if !slices.Contains(states, "running") {
			t.Errorf("%s went through %v on the overview, want running (live)", k, states)
		}
	}
	_, out := r.s.api(http.MethodGet, "/api/deployments")
	list, _ := out["deployments"].([]any)
	apps := map[string]int{}
	for _, x := range list {
		d := x.(map[string]any)
		if d["trigger"] == "api" && d["status"] == "succeeded" {
			apps[fmt.Sprint(d["app"])]++
		}
	}
	if apps["staging"] != 1 || apps["production"] != 1 {
		t.Errorf("deployments from the buttons: %v, want one succeeded per app", apps)
	}
}
