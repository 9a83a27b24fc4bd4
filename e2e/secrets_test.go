package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Known, distinctive secrets: none of them may show anywhere the deployer
// writes or answers.
const (
	secretWebhook   = "whsec-Zq8Xv3Lm9Tk2Rp7N"
	secretAPIToken  = "apitok-Hd4Wf6Jc1Yb8Qs5G"
	secretSSHPass   = "sshpass-Ku7Ne2Vx9Pa4Mt"
	secretGitPass   = "gitpass-Lr3Bw8Ty6Cs1Hj"
	secretBitbucket = "bbtok-Fg5Dk9Qm2Zx7Wn"
	secretNotify    = "notifypath-Xc4Vb7Nm1Ql8"
	secretWrongPass = "sshpass-WRONG-Aa1Bb2Cc3"
)

// corpus is every byte the deployer wrote or answered, by where it came
// from.
type corpus struct {
	t     *testing.T
	parts map[string][]byte
}

func (c *corpus) add(name string, data []byte) {
	c.parts[name] = append(c.parts[name], data...)
}

func (c *corpus) addResult(name string, r result) {
	c.add(name+" stdout", []byte(r.stdout))
	c.add(name+" stderr", []byte(r.stderr))
}

// addTree adds every regular file under dir, except the Python packages
// pip installed into venvs (not written by the deployer, and large).
func (c *corpus) addTree(name, dir string) int {
	c.t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "site-packages" || d.Name() == "__pycache__") {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		c.add(name+" "+strings.TrimPrefix(path, dir), data)
		n++
		return nil
	})
	if err != nil {
		c.t.Fatalf("read %s: %v", dir, err)
	}
	return n
}

// keyWindows returns every 16-character piece of the base64 body of the
// private key file at path, except those also in its public key (which is
// not secret, and is part of the private key file).
func keyWindows(t *testing.T, path, pubPath string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	var body strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "-----") {
			body.WriteString(strings.TrimSpace(line))
		}
	}
	b := body.String()
	if len(b) < 200 {
		t.Fatalf("%s: key body of %d characters", path, len(b))
	}
	var out []string
	for i := 0; i+16 <= len(b); i++ {
		if w := b[i : i+16]; !bytes.Contains(pub, []byte(w)) {
			out = append(out, w)
		}
	}
	return out
}

// leaks lists every secret or key piece found in c, by source.
func (c *corpus) leaks(secrets []string, keyPieces map[string][]string) []string {
	names := make([]string, 0, len(c.parts))
	for name := range c.parts {
		names = append(names, name)
	}
	sort.Strings(names)
	windows := map[string]string{}
	for key, pieces := range keyPieces {
		for _, p := range pieces {
			windows[p] = key
		}
	}
	var out []string
	for _, name := range names {
		data := c.parts[name]
		for _, s := range secrets {
			if i := bytes.Index(data, []byte(s)); i >= 0 {
				out = append(out, fmt.Sprintf("%s holds the secret %q: …%s…", name, s, around(data, i, len(s))))
			}
		}
		for i := 0; i+16 <= len(data); i++ {
			if key, ok := windows[string(data[i:i+16])]; ok {
				out = append(out, fmt.Sprintf("%s holds a piece of the private key %s: …%s…", name, key, around(data, i, 16)))
				break
			}
		}
	}
	return out
}

func around(data []byte, i, n int) string {
	lo, hi := max(0, i-60), min(len(data), i+n+60)
	return string(data[lo:hi])
}

// encryptedCopy copies the key pair at path into dir, the private key
// encrypted with pass.
func encryptedCopy(t *testing.T, path, dir, pass string) string {
	t.Helper()
	dst := filepath.Join(dir, filepath.Base(path))
	for _, suffix := range []string{"", ".pub"} {
		data, err := os.ReadFile(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+suffix, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("ssh-keygen", "-q", "-p", "-P", "", "-N", pass, "-f", dst).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -p: %v: %s", err, out)
	}
	return dst
}

// startServe runs `pushdeploy serve` with the env file and e.vars, and
// keeps its stdout and stderr.
func (e *e2e) startServe(envFile, secret, token string) (*server, *bytes.Buffer) {
	e.t.Helper()
	addr := freePort(e.t)
	e.vars["DEPLOY_LISTEN"] = addr
	s := &server{t: e.t, url: "http://" + addr, secret: secret, token: token, stderr: &syncWriter{w: &bytes.Buffer{}}, exited: make(chan error, 1)}
	stdout := &bytes.Buffer{}
	s.start(e, &syncWriter{w: stdout}, "serve", "--json", "--grace", "20s", "--env-file", envFile)
	return s, stdout
}

// raw sends a request and returns the status and the whole answer
// (headers and body), for the corpus. A stream is read for at most 3 s.
func raw(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(req.Context(), 3*time.Second)
	defer cancel()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_ = resp.Header.Write(&b)
	b.WriteString("\r\n")
	_, _ = io.Copy(&b, resp.Body) // a stream ends with the context
	return resp.StatusCode, b.Bytes()
}

// TestEndToEndSecretsNeverShow runs every command and every endpoint with
// known secrets (webhook secret, API token, both keys' passphrases, the
// Bitbucket token, a notification URL with a secret path), successes and
// failures, then searches everything the deployer wrote or answered, the
// history and mirror in DEPLOY_DATA_DIR and the hosts' files, for each
// secret and any 16-character piece of either private key.
func TestEndToEndSecretsNeverShow(t *testing.T) {
	e := newE2E(t, 2)
	c := &corpus{t: t, parts: map[string][]byte{}}
	keys := t.TempDir()
	e.vars["DEPLOY_SSH_KEY"] = encryptedCopy(t, e.env.AdminKey, keys, secretSSHPass)
	e.vars["DEPLOY_GIT_KEY"] = encryptedCopy(t, e.env.GitKey, keys, secretGitPass)
	data := filepath.Join(t.TempDir(), "state", "data") // serve creates it
	e.vars["DEPLOY_DATA_DIR"] = data
	// The restart command and a hook print their whole environment into
	// the deploy's output: nothing secret may be in it.
	e.vars["DEPLOY_RESTART_CMD"] = `env; env > "$HOME/restart-env.txt"`
	rec := newHookRecorder(t)
	secretVars := map[string]string{
		"DEPLOY_WEBHOOK_SECRET":     secretWebhook,
		"DEPLOY_API_TOKEN":          secretAPIToken,
		"DEPLOY_SSH_KEY_PASSPHRASE": secretSSHPass,
		"DEPLOY_GIT_KEY_PASSPHRASE": secretGitPass,
		"DEPLOY_BITBUCKET_TOKEN":    secretBitbucket,
		"DEPLOY_NOTIFY_URL":         rec.srv.URL + "/chat/" + secretNotify,
		"DEPLOY_BITBUCKET_API_URL":  rec.srv.URL + "/bb/2.0",
		"DEPLOY_WEBHOOK_REPO":       "team/app",
	}
	envFile := filepath.Join(keys, "deploy.env")
	writeEnv := func(extra string) {
		var b strings.Builder
		for k, v := range secretVars {
			fmt.Fprintf(&b, "%s=%s\n", k, v)
		}
		b.WriteString(extra)
		if err := os.WriteFile(envFile, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeEnv("")
	run := func(name string, wantCode int, args ...string) result {
		t.Helper()
		r := e.pushdeploy(append(args, "--env-file", envFile)...)
		c.addResult(name, r)
		if r.code != wantCode {
			t.Errorf("%s: exit %d, want %d\n%s%s", name, r.code, wantCode, r.stdout, r.stderr)
		}
		return r
	}

	good := e.commit("1.0", nil)
	run("check", 0, "check")
	run("check --json", 0, "check", "--json")
	run("deploy", 0, "deploy")
	bad := e.commit("1.0", map[string]string{".pushdeploy/before-switch": "#!/bin/sh\nenv\necho failing on purpose >&2\nexit 7\n"})
	run("failing deploy", 1, "deploy")
	run("failing deploy --json", 1, "deploy", "--json")
	good2, err := e.env.Remove(context.Background(), []string{".pushdeploy/before-switch"}, "no failing hook") // the tip deploys again
	if err != nil {
		t.Fatal(err)
	}
	run("deploy --commit", 0, "deploy", "--json", "--commit", good[:10])
	run("releases", 0, "releases", "--json")
	run("rollback --dry-run", 0, "rollback", "--dry-run")
	run("deploy --dry-run", 0, "deploy", "--dry-run")

	// Failing configurations, the secrets beside the fault.
	writeEnv("DEPLOY_API_TOKN=" + secretAPIToken + "\nDEPLOY_STEP_TIMEOT=" + secretWebhook + "\n")
	run("typo'd variables", 2, "deploy")
	writeEnv("DEPLOY_BRANCH='unterminated " + secretSSHPass + "\n")
	run("unterminated quote", 2, "check")
	secretVars["DEPLOY_SSH_KEY_PASSPHRASE"] = secretWrongPass
	writeEnv("")
	run("wrong passphrase", 2, "check")
	secretVars["DEPLOY_SSH_KEY_PASSPHRASE"] = secretSSHPass
	writeEnv("")

	serveHTTP(t, e, c, envFile, good2, bad)

	if n := c.addTree("data dir", data); n == 0 {
		t.Errorf("nothing in DEPLOY_DATA_DIR %s", data)
	}
	checkPrivate(t, data)
	for _, h := range e.env.Hosts {
		if n := c.addTree(h.Name, h.Path("app")); n == 0 {
			t.Errorf("%s: no files under app/", h.Name)
		}
		if env, err := os.ReadFile(h.Path("restart-env.txt")); err != nil || len(env) == 0 {
			t.Errorf("%s: the restart command's environment was not recorded: %v", h.Name, err)
		} else {
			c.add(h.Name+" restart-env.txt", env)
		}
	}
	if len(c.parts["failing deploy stderr"]) == 0 || !bytes.Contains(c.parts["failing deploy stderr"], []byte("failing on purpose")) {
		t.Errorf("the failing deploy's output lacks its hook's output:\n%s", c.parts["failing deploy stderr"])
	}

	secrets := []string{secretWebhook, secretAPIToken, secretSSHPass, secretGitPass, secretBitbucket, secretNotify, secretWrongPass}
	pieces := map[string][]string{
		"admin key (plain)":      keyWindows(t, e.env.AdminKey, e.env.AdminKey+".pub"),
		"deploy key (plain)":     keyWindows(t, e.env.GitKey, e.env.GitKey+".pub"),
		"admin key (encrypted)":  keyWindows(t, e.vars["DEPLOY_SSH_KEY"], e.vars["DEPLOY_SSH_KEY"]+".pub"),
		"deploy key (encrypted)": keyWindows(t, e.vars["DEPLOY_GIT_KEY"], e.vars["DEPLOY_GIT_KEY"]+".pub"),
	}
	// The search finds what it looks for: a secret, and a key's middle
	// line, each in some other text.
	keyFile, _ := os.ReadFile(e.env.GitKey)
	lines := strings.Split(string(keyFile), "\n")
	probe := &corpus{t: t, parts: map[string][]byte{"probe 1": []byte("x " + secretGitPass + " y"), "probe 2": []byte("error: " + lines[len(lines)/2][3:40])}}
	if got := probe.leaks(secrets, pieces); len(got) != 2 {
		t.Fatalf("the search finds %q in the probes, want 2 leaks", got)
	}
	total := 0
	for _, p := range c.parts {
		total += len(p)
	}
	for _, leak := range c.leaks(secrets, pieces) {
		t.Errorf("LEAK: %s", leak)
	}
	t.Logf("searched %d sources, %d bytes, for %d secrets and pieces of 4 key files", len(c.parts), total, len(secrets))
}

// serveHTTP runs serve and calls every endpoint, with the right token,
// a wrong one and none; good and bad are commits on the branch (bad's hook
// fails).
func serveHTTP(t *testing.T, e *e2e, c *corpus, envFile, good, bad string) {
	s, stdout := e.startServe(envFile, secretWebhook, secretAPIToken)
	answer := func(name string, wantCode int, method, path, body string, header ...string) []byte {
		t.Helper()
		req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		code, out := raw(t, req)
		c.add("HTTP "+name, out)
		if wantCode != 0 && code != wantCode {
			t.Errorf("%s: %s %s: %d, want %d\n%s", name, method, path, code, wantCode, out)
		}
		return out
	}
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	right, wrong := bearer(secretAPIToken), bearer(secretAPIToken+"x")

	// Webhooks: signed, unsigned, signed with another secret, a signature
	// of another body, GitLab's token wrong and right.
	push := bitbucketPush("release", good)
	sign := func(key string, body []byte) string {
		m := hmac.New(sha256.New, []byte(key))
		m.Write(body)
		return "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	bb := func(delivery string) []string {
		return []string{"Content-Type", "application/json", "X-Event-Key", "repo:push", "X-Request-UUID", delivery, "X-Hook-UUID", "{hook}"}
	}
	out := answer("signed webhook", http.StatusAccepted, http.MethodPost, "/webhook", string(push), append(bb("s-1"), "X-Hub-Signature", sign(secretWebhook, push))...)
	answer("unsigned webhook", http.StatusUnauthorized, http.MethodPost, "/webhook", string(push), bb("s-2")...)
	answer("webhook signed with another secret", http.StatusUnauthorized, http.MethodPost, "/webhook", string(push), append(bb("s-3"), "X-Hub-Signature", sign(secretWebhook[:len(secretWebhook)-1], push))...)
	answer("webhook with another body's signature", http.StatusUnauthorized, http.MethodPost, "/webhook", string(push), append(bb("s-4"), "X-Hub-Signature", sign(secretWebhook, bitbucketPush("release", bad)))...)
	gl := []string{"Content-Type", "application/json", "X-Gitlab-Event", "Push Hook"}
	answer("GitLab webhook, wrong token", http.StatusUnauthorized, http.MethodPost, "/webhook", `{}`, append(gl, "X-Gitlab-Token", secretWebhook+"x")...)
	answer("GitLab webhook, right token", 0, http.MethodPost, "/webhook", `{"object_kind":"push","ref":"refs/heads/other"}`, append(gl, "X-Gitlab-Token", secretWebhook)...)
	if id := jsonField(out, "deployment"); id == "" {
		t.Fatalf("signed webhook: no deployment in %s", out)
	} else if d := s.waitDone(id); d["status"] != "succeeded" {
		t.Errorf("webhook deployment: %v", d)
	}

	// The API, every endpoint, with each token.
	for _, tok := range []struct {
		name   string
		header []string
		code   int
	}{{"no token", nil, http.StatusUnauthorized}, {"wrong token", wrong, http.StatusUnauthorized}} {
		for _, ep := range [][2]string{{"POST", "/api/deploy"}, {"POST", "/api/rollback"}, {"GET", "/api/deployments"}, {"GET", "/api/deployments/x"}, {"GET", "/api/releases"}, {"GET", "/api/deployments/x/events"}} {
			answer(ep[0]+" "+ep[1]+", "+tok.name, tok.code, ep[0], ep[1], "", tok.header...)
		}
	}
	out = answer("API deploy of the failing commit", http.StatusAccepted, http.MethodPost, "/api/deploy", `{"commit":"`+bad+`"}`, right...)
	failed := jsonField(out, "deployment")
	if d := s.waitDone(failed); d["status"] != "failed" {
		t.Errorf("deploying the failing commit: %v", d)
	}
	out = answer("API rollback", http.StatusAccepted, http.MethodPost, "/api/rollback", "", right...)
	if d := s.waitDone(jsonField(out, "deployment")); d["status"] != "succeeded" {
		t.Errorf("rollback: %v", d)
	}
	answer("API deploy, malformed commit", http.StatusBadRequest, http.MethodPost, "/api/deploy", `{"commit":"xyz"}`, right...)
	answer("API deployments", http.StatusOK, http.MethodGet, "/api/deployments", "", right...)
	detail := answer("API failed deployment", http.StatusOK, http.MethodGet, "/api/deployments/"+failed, "", right...)
	if !bytes.Contains(detail, []byte("failing on purpose")) {
		t.Errorf("the failed deployment's detail lacks the hook's output:\n%s", detail)
	}
	answer("API releases", http.StatusOK, http.MethodGet, "/api/releases", "", right...)
	answer("API events", 0, http.MethodGet, "/api/deployments/"+failed+"/events", "", right...)

	// The status page, signed in and not, and the monitoring endpoints.
	form := []string{"Content-Type", "application/x-www-form-urlencoded"}
	answer("page", 0, http.MethodGet, "/", "")
	answer("page sign-in, wrong token", 0, http.MethodPost, "/login", url.Values{"token": {secretAPIToken + "x"}}.Encode(), form...)
	login := answer("page sign-in", 0, http.MethodPost, "/login", url.Values{"token": {secretAPIToken}}.Encode(), form...)
	cookie := ""
	for _, line := range strings.Split(string(login), "\r\n") {
		if v, ok := strings.CutPrefix(line, "Set-Cookie: "); ok {
			cookie, _, _ = strings.Cut(v, ";")
		}
	}
	if cookie == "" {
		t.Logf("no status page sign-in (answer %.200q)", login)
	}
	for _, p := range []string{"/", "/deployments/" + failed, "/deployments/" + failed + "/events", "/releases.json"} {
		answer("page "+p, 0, http.MethodGet, p, "", "Cookie", cookie)
	}
	answer("metrics", http.StatusOK, http.MethodGet, "/metrics", "")
	answer("healthz", http.StatusOK, http.MethodGet, "/healthz", "")

	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.exited:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop")
	}
	c.add("serve stderr", []byte(s.stderr.String()))
	c.add("serve stdout", stdout.Bytes())
	if !strings.Contains(s.stderr.String(), "webhook") {
		t.Errorf("serve logged nothing about webhooks:\n%s", s.stderr)
	}
}

func jsonField(answer []byte, field string) string {
	_, body, _ := bytes.Cut(answer, []byte("\r\n\r\n"))
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return ""
	}
	s, _ := m[field].(string)
	return s
}

// checkPrivate fails for anything under dir that others may read or
// enter.
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink == 0 && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %04o, want no access for group and others", path, fi.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
