package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// guidePath is the guide TestGettingStarted follows.
const guidePath = "../docs/getting-started.md"

// The markers of the guide's shell blocks: the info string of the fence.
// A ```sh block without one is a step the test cannot take here; it must
// be in a section of guideSubstitutes, which says what the test does
// instead.
const (
	markRun    = "sh {test}"        // run, in order, each in its own bash -eu
	markServe  = "sh {test serve}"  // started in the background, as in a second terminal
	markValues = "sh {test values}" // the reader's values: the test sets its own, of the same names
)

// guideBlock is one fenced block of the guide.
type guideBlock struct {
	section string // the "## " heading it is under
	info    string // the fence's info string
	text    string
	line    int // of the opening fence, for messages
}

// parseGuide returns the guide's fenced blocks and its section headings,
// in order.
func parseGuide(t *testing.T, path string) (blocks []guideBlock, sections []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		section string
		cur     *guideBlock
		body    strings.Builder
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &guideBlock{section: section, info: strings.TrimSpace(strings.TrimPrefix(line, "```")), line: n}
			body.Reset()
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.text = body.String()
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line + "\n")
		case strings.HasPrefix(line, "## "):
			section = strings.TrimPrefix(line, "## ")
			sections = append(sections, section)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s:%d: the block is never closed", path, cur.line)
	}
	return blocks, sections
}

// guideSubstitute is what the test does in place of a section's steps that
// it cannot take here (a server's root login, the forge's web pages,
// systemd), and checks of what the section's commands did. It runs at the
// section's end, after its marked blocks.
type guideSubstitute struct {
	why string // what is done instead, and why; logged
	do  func(g *guideRun)
}

// guideSubstitutes, by section heading. Every heading must exist in the
// guide, and every unmarked sh block must be in one of these sections.
var guideSubstitutes = map[string]guideSubstitute{
	"2. Install pushdeploy on the deployer": {
		why: "not `go install …@latest`, which would fetch a published version: the pushdeploy the blocks run is the binary TestMain built from this checkout, first on PATH",
		do: func(g *guideRun) {
			if !strings.Contains(g.lastOutput, "pushdeploy") {
				g.t.Errorf("pushdeploy version printed %q", g.lastOutput)
			}
		},
	},
	"4. Trust the servers' and the git server's host keys": {
		why: "the servers' own fingerprints, read on their consoles in the guide, are read from the test servers' host keys; each must be the one ssh-keyscan fetched",
		do:  (*guideRun).checkKnownHosts,
	},
	"5. Prepare each server": {
		why: "the test servers have no root login: testhosts made each a Unix user of its own (WEBn_USER) with its own sshd on this machine, which has git, flock, timeout, tar and python3 with venv; " +
			"APP_ROOT is app, in each user's home, because the two servers share this file system; prepare.sh is only checked with sh -n, and id_deploy_admin.pub becomes each user's only authorized key (Env.AuthorizeKey), as prepare.sh would add it",
		do: (*guideRun).prepareServers,
	},
	"6. Register the deploy key": {
		why: "the forge's web page: id_deploy_git.pub becomes the test git server's only key, read-only (Env.AuthorizeKey), as a Bitbucket access key is",
		do: func(g *guideRun) {
			g.authorize(g.env.Git, "id_deploy_git.pub")
		},
	},
	"8. Check, look, deploy": {
		why: "checks that both servers run the commit of the release branch",
		do: func(g *guideRun) {
			g.checkServers(g.commits[0], "1.0")
			g.deployTook = time.Since(g.start)
			g.deployCommands = g.commandTime
		},
	},
	"10. Look back": {
		why: "checks that the history lists the CLI deploy and the webhook's, both succeeded",
		do:  (*guideRun).checkHistory,
	},
	"11. Run serve as a service": {
		why: "systemd, /etc and /var/lib are this machine's, not the test's: the foreground serve started in section 9 goes on running, as the unit runs it (pushdeploy serve, the same deploy.env)",
	},
	"12. The webhook on Bitbucket": {
		why: "the forge: the test commits pdtestdep 2.0 to the release branch (the git push) and posts the delivery Bitbucket sends for it (repo:push, signed with DEPLOY_WEBHOOK_SECRET in X-Hub-Signature), then waits for that deployment and checks both servers",
		do:  (*guideRun).pushAndDeliver,
	},
}

// guideRun is one run of the guide against test hosts.
type guideRun struct {
	t       *testing.T
	env     *testhosts.Env
	home    string            // the reader's HOME
	values  map[string]string // the guide's values, for the test hosts
	commits []string          // on the release branch, oldest first

	serve      *exec.Cmd
	serveLog   *syncWriter
	serveDone  chan error
	lastOutput string // of the last block run

	start          time.Time     // when the first block started
	commandTime    time.Duration // the blocks' own time so far
	deployTook     time.Duration // from start to the end of the first deploy's section
	deployCommands time.Duration // commandTime then
}

// TestGettingStarted follows docs/getting-started.md end to end on two
// test servers and a test git server: every block marked for it runs, in
// order, in bash, as the reader would run it, with the guide's values
// pointing at the test hosts; the steps it cannot take are replaced by
// guideSubstitutes, which say how. A failing block fails the test. It
// logs how long the commands take up to the first deploy.
func TestGettingStarted(t *testing.T) {
	testhosts.NeedTools(t, "bash", "ssh-keygen", "ssh-keyscan", "curl", "openssl", "sed", "awk", "grep")
	blocks, sections := parseGuide(t, guidePath)
	checkGuideMarks(t, blocks, sections)

	env := testhosts.New(t, testhosts.Options{Hosts: 2})
	// Fresh servers: they trust no git server of their own; the deployer
	// hands them the key it checked.
	for _, h := range env.Hosts {
		if err := os.Remove(h.Path(".ssh/known_hosts")); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	// The reader's repository, with its release branch.
	sha, err := env.Commit(context.Background(), env.AppFiles("1.0"), "app with pdtestdep 1.0")
	if err != nil {
		t.Fatal(err)
	}
	g := &guideRun{t: t, env: env, home: t.TempDir(), commits: []string{sha}}
	g.values = g.hostValues()
	checkGuideValues(t, blocks, g.values)

	t.Cleanup(g.killServe)
	section := ""
	for _, b := range blocks {
		if b.section != section {
			g.endSection(section)
			section = b.section
		}
		switch b.info {
		case markRun:
			g.run(b)
		case markServe:
			g.startServe(b)
		}
	}
	g.endSection(section)
	g.stopServe()

	t.Logf("first deploy by the guide: %.1fs of commands (%.1fs wall, with the test's substitutes and checks); the whole guide: %.1fs of commands",
		g.deployCommands.Seconds(), g.deployTook.Seconds(), g.commandTime.Seconds())
}

// checkGuideMarks checks that every sh block is marked, or is in a section
// whose substitute says what the test does instead, and that every
// substitute's section exists.
func checkGuideMarks(t *testing.T, blocks []guideBlock, sections []string) {
	t.Helper()
	for name := range guideSubstitutes {
		if !slices.Contains(sections, name) {
			t.Errorf("guideSubstitutes has section %q, which %s does not have (renamed?)", name, guidePath)
		}
	}
	for _, b := range blocks {
		lang, _, _ := strings.Cut(b.info, " ")
		switch {
		case b.info == markRun || b.info == markServe || b.info == markValues:
		case strings.Contains(b.info, "{"):
			t.Errorf("%s:%d: unknown marker %q (%q, %q or %q)", guidePath, b.line, b.info, markRun, markServe, markValues)
		case lang == "sh":
			if _, ok := guideSubstitutes[b.section]; !ok {
				t.Errorf("%s:%d: a sh block that is not run, in section %q, for which guideSubstitutes says nothing: mark it %q, or say what the test does instead", guidePath, b.line, b.section, markRun)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// hostValues are the guide's values for the test hosts.
func (g *guideRun) hostValues() map[string]string {
	h1, h2 := g.env.Hosts[0], g.env.Hosts[1]
	return map[string]string{
		"WEB1": h1.Addr, "WEB1_USER": h1.User, "WEB1_PORT": fmt.Sprint(h1.Port),
		"WEB2": h2.Addr, "WEB2_USER": h2.User, "WEB2_PORT": fmt.Sprint(h2.Port),
		// Relative: in each user's home (the servers share one file system).
		"APP_ROOT":  "app",
		"REPO":      g.env.RepoURL,
		"REPO_NAME": "team/app",
		"GIT_HOST":  g.env.Git.Addr,
		"GIT_PORT":  fmt.Sprint(g.env.Git.Port),
		// What the forge publishes: the fingerprint of the git server's own
		// key, not of what a scan fetches.
		"GIT_FINGERPRINT": fingerprint(g.t, g.env.Git.HostKeyLine),
		"LISTEN":          freePort(g.t),
	}
}

// checkGuideValues checks that the guide's values block exports exactly
// the names the test sets.
func checkGuideValues(t *testing.T, blocks []guideBlock, values map[string]string) {
	t.Helper()
	var names []string
	for _, b := range blocks {
		if b.info != markValues {
			continue
		}
		for _, line := range strings.Split(b.text, "\n") {
			line, _, _ = strings.Cut(line, "#")
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			if f[0] != "export" {
				t.Fatalf("%s:%d: values block line %q: want export NAME=value …", guidePath, b.line, line)
			}
			for _, kv := range f[1:] {
				name, _, _ := strings.Cut(kv, "=")
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	want := slices.Sorted(maps.Keys(values))
	if !slices.Equal(names, want) {
		t.Fatalf("the guide's values %v, the test sets %v", names, want)
	}
}

// dir is the deployer's folder, ~/pushdeploy, once the guide has made it
// (its cd carries over, as in a terminal); HOME before.
func (g *guideRun) dir() string {
	d := filepath.Join(g.home, "pushdeploy")
	if _, err := os.Stat(d); err == nil {
		return d
	}
	return g.home
}

// environ is a block's whole environment: the fresh pushdeploy first on
// PATH, the reader's HOME, and the guide's values.
func (g *guideRun) environ() []string {
	env := []string{
		"PATH=" + filepath.Dir(binary) + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + g.home,
		// Not in the guide: the end-to-end tests run in parallel on two
		// cores, where a login has been seen to take longer than the 10 s
		// default. The environment wins over deploy.env.
		"DEPLOY_CONNECT_TIMEOUT=30s",
	}
	for k, v := range g.values {
		env = append(env, k+"="+v)
	}
	return env
}

// run runs a marked block in bash -eu (a failing command or an unset
// value fails it) and fails the test when it fails.
func (g *guideRun) run(b guideBlock) {
	g.t.Helper()
	if g.start.IsZero() {
		g.start = time.Now()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-eu", "-c", b.text)
	cmd.Dir, cmd.Env = g.dir(), g.environ()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	g.commandTime += took
	g.lastOutput = out.String()
	g.t.Logf("%s:%d (§%s) %.2fs, %.1fs in all:\n%s%s", guidePath, b.line, b.section, took.Seconds(), g.commandTime.Seconds(), indent("$ ", b.text), indent("  ", out.String()))
	if err != nil {
		g.t.Fatalf("%s:%d: the block failed: %v\n%s", guidePath, b.line, err, out.String())
	}
}

func indent(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix) + "\n"
}

// startServe starts a serve block in the background, in its own process
// group (as a second terminal would run it), and waits until it answers
// /healthz.
func (g *guideRun) startServe(b guideBlock) {
	g.t.Helper()
	if g.serve != nil {
		g.t.Fatalf("%s:%d: a second serve block", guidePath, b.line)
	}
	g.serveLog = &syncWriter{w: &bytes.Buffer{}}
	g.serveDone = make(chan error, 1)
	cmd := exec.Command("bash", "-eu", "-c", b.text)
	cmd.Dir, cmd.Env = g.dir(), g.environ()
	cmd.Stdout, cmd.Stderr = g.serveLog, g.serveLog
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	g.serve = cmd
	go func() { g.serveDone <- cmd.Wait() }()
	url := "http://" + g.values["LISTEN"] + "/healthz"
	await(g.t, "serve to answer "+url, 30*time.Second, func() (bool, any) {
		select {
		case err := <-g.serveDone:
			g.serveDone <- err
			g.t.Fatalf("%s:%d: serve exited: %v\n%s", guidePath, b.line, err, g.serveLog)
		default:
		}
		resp, err := http.Get(url)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return true, nil
	})
	g.commandTime += time.Since(start)
	g.t.Logf("%s:%d (§%s) started in the background, answering after %.2fs:\n%s", guidePath, b.line, b.section, time.Since(start).Seconds(), indent("$ ", b.text))
}

// stopServe stops serve as Ctrl-C would (SIGINT to its process group) and
// checks that it stops cleanly.
func (g *guideRun) stopServe() {
	g.t.Helper()
	if g.serve == nil {
		g.t.Fatal("the guide started no serve")
	}
	if err := syscall.Kill(-g.serve.Process.Pid, syscall.SIGINT); err != nil {
		g.t.Fatal(err)
	}
	select {
	case err := <-g.serveDone:
		g.serve = nil
		g.t.Logf("serve's log:\n%s", indent("  ", g.serveLog.String()))
		if err != nil {
			g.t.Errorf("serve after Ctrl-C: %v", err)
		}
	case <-time.After(time.Minute):
		g.t.Errorf("serve still runs a minute after Ctrl-C; log:\n%s", g.serveLog)
	}
}

// killServe kills what is left of serve's process group.
func (g *guideRun) killServe() {
	if g.serve != nil {
		_ = syscall.Kill(-g.serve.Process.Pid, syscall.SIGKILL)
		<-g.serveDone
	}
}

// endSection runs the substitute of the section that ends, if any.
func (g *guideRun) endSection(section string) {
	g.t.Helper()
	s, ok := guideSubstitutes[section]
	if !ok {
		return
	}
	g.t.Logf("§%s: instead, or besides: %s", section, s.why)
	if s.do != nil {
		s.do(g)
	}
}

// file reads a file of the deployer's folder.
func (g *guideRun) file(name string) string {
	g.t.Helper()
	b, err := os.ReadFile(filepath.Join(g.dir(), name))
	if err != nil {
		g.t.Fatal(err)
	}
	return string(b)
}

// authorize makes the public key in the deployer's folder's file the only
// one h accepts.
func (g *guideRun) authorize(h *testhosts.Host, pubFile string) {
	g.t.Helper()
	if err := g.env.AuthorizeKey(h, g.file(pubFile)); err != nil {
		g.t.Fatal(err)
	}
}

// checkKnownHosts checks that known_hosts has, for each server and the git
// server, exactly the server's own key.
func (g *guideRun) checkKnownHosts() {
	g.t.Helper()
	got := map[string][]string{}
	for _, line := range strings.Split(g.file("known_hosts"), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && !strings.HasPrefix(f[0], "#") {
			got[f[0]] = append(got[f[0]], f[1]+" "+f[2])
		}
	}
	for _, h := range append(slices.Clip(g.env.Hosts), g.env.Git) {
		f := strings.Fields(h.HostKeyLine)
		if want := []string{f[1] + " " + f[2]}; !slices.Equal(got[f[0]], want) {
			g.t.Errorf("known_hosts has %v for %s, want its own key %v", got[f[0]], f[0], want)
		}
	}
}

// prepareServers checks prepare.sh and puts the admin key where it would.
func (g *guideRun) prepareServers() {
	g.t.Helper()
	script := g.file("prepare.sh")
	if out, err := exec.Command("sh", "-n", filepath.Join(g.dir(), "prepare.sh")).CombinedOutput(); err != nil {
		g.t.Fatalf("sh -n prepare.sh: %v\n%s", err, out)
	}
	pub := strings.TrimSpace(g.file("id_deploy_admin.pub"))
	for _, want := range []string{"install -d -o deploy -g deploy -m 755 app\n", "echo '" + pub + "' >> ~deploy/.ssh/authorized_keys\n"} {
		if !strings.Contains(script, want) {
			g.t.Errorf("prepare.sh lacks %q:\n%s", want, script)
		}
	}
	for _, h := range g.env.Hosts {
		g.authorize(h, "id_deploy_admin.pub")
	}
}

// checkServers checks that every server's current release is commit, with
// pdtestdep at depVersion in its venv.
func (g *guideRun) checkServers(commit, depVersion string) {
	g.t.Helper()
	for _, h := range g.env.Hosts {
		rev, err := os.ReadFile(h.Path("app/current/REVISION"))
		if err != nil || strings.TrimSpace(string(rev)) != commit {
			g.t.Errorf("%s: current REVISION %q (%v), want %s", h.Name, rev, err, commit)
		}
		out, err := exec.Command(h.Path("app/current/venv/bin/python"), "-c", "import pdtestdep; print(pdtestdep.VERSION)").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != depVersion {
			g.t.Errorf("%s: the venv of current has pdtestdep %q (%v), want %s", h.Name, out, err, depVersion)
		}
	}
}

// historyRow is one line of pushdeploy history's list.
type historyRow struct{ id, action, status, trigger, commit string }

// history runs pushdeploy history in the deployer's folder and returns its
// rows, newest first.
func (g *guideRun) history() []historyRow {
	g.t.Helper()
	cmd := exec.Command(binary, "history")
	cmd.Dir, cmd.Env = g.dir(), g.environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		g.t.Fatalf("pushdeploy history: %v\n%s", err, out)
	}
	var rows []historyRow
	for i, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 6 {
			continue // the header
		}
		rows = append(rows, historyRow{id: f[0], action: f[1], status: f[2], trigger: f[3], commit: f[5]})
	}
	return rows
}

// checkHistory checks the history after the CLI deploy and the guide's
// signed push.
func (g *guideRun) checkHistory() {
	g.t.Helper()
	rows := g.history()
	want := []historyRow{
		{action: "deploy", status: "succeeded", trigger: "webhook", commit: g.commits[0][:7]},
		{action: "deploy", status: "succeeded", trigger: "cli", commit: g.commits[0][:7]},
	}
	for i := range rows {
		rows[i].id = ""
	}
	if !slices.Equal(rows, want) {
		g.t.Errorf("history %v, want %v\n%s", rows, want, g.lastOutput)
	}
	g.checkServers(g.commits[0], "1.0")
}

// pushAndDeliver pushes a new commit to the release branch and delivers
// the webhook Bitbucket sends for it, then waits for the deployment it
// queued and checks the servers.
func (g *guideRun) pushAndDeliver() {
	g.t.Helper()
	sha, err := g.env.Commit(context.Background(), g.env.AppFiles("2.0"), "app with pdtestdep 2.0")
	if err != nil {
		g.t.Fatal(err)
	}
	g.commits = append(g.commits, sha)
	secret := regexp.MustCompile(`(?m)^DEPLOY_WEBHOOK_SECRET=(\S+)$`).FindStringSubmatch(g.file("deploy.env"))
	if secret == nil {
		g.t.Fatal("deploy.env has no DEPLOY_WEBHOOK_SECRET")
	}
	// As the other end-to-end tests send it: serve_test.go's webhook.
	hook := &server{t: g.t, url: "http://" + g.values["LISTEN"], secret: secret[1]}
	code, answer := hook.webhook("{guide-push}", testhosts.BitbucketPush(g.values["REPO_NAME"], "release", sha), true)
	id, _ := answer["deployment"].(string)
	if code != http.StatusAccepted || answer["status"] != "queued" || id == "" {
		g.t.Fatalf("the push's webhook: %d %v, want 202 queued\n%s", code, answer, g.serveLog)
	}
	// Each look runs pushdeploy history: a few a second are enough.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		rows := g.history()
		if len(rows) > 0 && rows[0].id == id && rows[0].status != "queued" && rows[0].status != "running" {
			break
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("the push's deployment %s has not finished after 3 minutes: history %+v\n%s", id, rows, g.serveLog)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if rows := g.history(); rows[0].status != "succeeded" || rows[0].trigger != "webhook" || rows[0].commit != sha[:7] {
		g.t.Errorf("the push's deployment: %+v, want a succeeded webhook deploy of %s\n%s", rows[0], sha[:7], g.serveLog)
	}
	g.checkServers(sha, "2.0")
}
