package cli

// Tests of the serve command itself, run in-process through run and
// exitCode (what main does), with a configuration that is valid but names
// no host that answers: the webhook secret rule is decided before any host
// or repository is needed.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// serveCmd is a configuration for serve in the test's environment.
type serveCmd struct {
	envFile string // an empty env file, so that no deploy.env is read
	dataDir string // not created yet: serve makes it once it starts
	// secrets serve is given besides the webhook secret; none may ever be
	// printed.
	secrets []string
}

// newServeCmd clears every DEPLOY_ variable (and the unprefixed names
// envconfig falls back to) for the test, then sets a valid configuration
// without DEPLOY_WEBHOOK_SECRET: a hosts file with one host on a closed
// loopback port, a new passphrase-protected admin key, a known_hosts file
// with that host's key, a local-path repository, an API token and
// DEPLOY_LISTEN 127.0.0.1:0. envconfig reads the process environment, so
// these tests cannot be parallel.
func newServeCmd(t *testing.T) *serveCmd {
	t.Helper()
	clearDeployEnv(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A port nothing listens on: the host is never reached (serve's only
	// contact is a background read of its releases, which fails).
	port := closedPort(t)

	pass := "passphrase-of-the-admin-key-7d41"
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "admin", []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	hostPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, err := ssh.NewPublicKey(hostPub)
	if err != nil {
		t.Fatal(err)
	}
	c := &serveCmd{
		envFile: write("empty.env", nil),
		dataDir: filepath.Join(dir, "data"),
		secrets: []string{pass, "api-token-that-must-not-show-93c2"},
	}
	for k, v := range map[string]string{
		"DEPLOY_REPO_URL":           filepath.Join(dir, "app.git"),
		"DEPLOY_HOSTS_FILE":         write("hosts.txt", []byte("deploy@127.0.0.1:"+port+"\n")),
		"DEPLOY_SSH_KEY":            write("admin_key", pem.EncodeToMemory(block)),
		"DEPLOY_SSH_KEY_PASSPHRASE": pass,
		"DEPLOY_KNOWN_HOSTS":        write("known_hosts", []byte("[127.0.0.1]:"+port+" "+string(ssh.MarshalAuthorizedKey(hostKey)))),
		"DEPLOY_DATA_DIR":           c.dataDir,
		"DEPLOY_LISTEN":             "127.0.0.1:0",
		"DEPLOY_API_TOKEN":          c.secrets[1],
		"DEPLOY_CONNECT_TIMEOUT":    "5s",
	} {
		t.Setenv(k, v)
	}
	return c
}

// clearDeployEnv unsets, for the test, every DEPLOY_ variable of the
// environment (the test runner's own DEPLOY_TEST_DISALLOW_SKIP would be an
// unknown variable to serve) and the unprefixed alternates of every
// variable serve knows (BRANCH, ROOT, ...).
func clearDeployEnv(t *testing.T) {
	t.Helper()
	var keys []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, config.Prefix+"_") {
			keys = append(keys, k)
		}
	}
	var usage bytes.Buffer
	if err := config.Usage(&usage); err != nil {
		t.Fatal(err)
	}
	known := regexp.MustCompile(`(?m)^#? ?`+config.Prefix+`_([A-Z0-9_]+)=`).FindAllStringSubmatch(usage.String(), -1)
	if len(known) < 10 {
		t.Fatalf("config.Usage lists only %d variables:\n%s", len(known), usage.String())
	}
	for _, m := range known {
		keys = append(keys, config.Prefix+"_"+m[1], m[1])
	}
	for _, k := range keys {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
}

// closedPort returns a loopback port that was free a moment ago.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// noSecrets fails the test when out shows any of c's secrets.
func (c *serveCmd) noSecrets(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range c.secrets {
		if strings.Contains(out, s) {
			t.Errorf("%s shows a secret (%.6s…):\n%s", what, s, out)
		}
	}
}

// TestServeCmdRefusesWithoutWebhookSecret: without DEPLOY_WEBHOOK_SECRET,
// and without DEPLOY_WEBHOOK_INSECURE=true, serve exits 2 before it does
// anything (no data folder, no listener), naming the variable and both
// ways out.
func TestServeCmdRefusesWithoutWebhookSecret(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
	}{
		{"secret unset", nil},
		{"secret empty", map[string]string{"DEPLOY_WEBHOOK_SECRET": ""}},
		{"insecure false", map[string]string{"DEPLOY_WEBHOOK_INSECURE": "false"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newServeCmd(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			// Bounded: a serve that started would run until ctx ends.
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			var stdout, stderr bytes.Buffer
			err := run(ctx, []string{"serve", "--env-file", c.envFile}, &stdout, &stderr)
			if ctx.Err() != nil {
				t.Fatalf("serve ran until its context ended (err %v): it started without a webhook secret\n%s", err, stderr.String())
			}
			if code := exitCode(err, &stderr); code != 2 {
				t.Errorf("exit %d, want 2 (bad configuration); err %v", code, err)
			}
			out := stderr.String()
			for _, want := range []string{
				"DEPLOY_WEBHOOK_SECRET is required by serve",
				"set it to a long random string",
				"give the same secret to the forge's webhook",
				"DEPLOY_WEBHOOK_INSECURE=true",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("stderr lacks %q:\n%s", want, out)
				}
			}
			c.noSecrets(t, "stderr", out)
			c.noSecrets(t, "stdout", stdout.String())
			if _, err := os.Stat(c.dataDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("DEPLOY_DATA_DIR %s was made (%v): serve went on after refusing", c.dataDir, err)
			}
		})
	}
}

// TestServeCmdInsecureStartsAndStops: with DEPLOY_WEBHOOK_INSECURE=true and
// no secret, serve starts on a loopback port, warns that webhooks are not
// verified, takes an unsigned webhook, and returns nil (exit 0) once its
// context is cancelled, with its listener closed.
func TestServeCmdInsecureStartsAndStops(t *testing.T) {
	c := newServeCmd(t)
	t.Setenv("DEPLOY_WEBHOOK_INSECURE", "true")
	t.Setenv("DEPLOY_WEBHOOK_MAX_BODY", "2048")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout bytes.Buffer
	stderr := &testhosts.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--json", "--env-file", c.envFile, "--grace", "5s"}, &stdout, stderr)
	}()

	// The address comes from the "serving" line: DEPLOY_LISTEN's port is 0.
	var addr string
	deadline := time.Now().Add(time.Minute)
	for addr == "" {
		select {
		case err := <-done:
			t.Fatalf("serve returned before serving: %v\n%s", err, stderr.String())
		default:
		}
		for _, l := range logLines(t, stderr.String()) {
			if l["msg"] == "serving" {
				addr, _ = l["listen"].(string)
			}
		}
		if addr == "" && time.Now().After(deadline) {
			t.Fatalf("no \"serving\" line after a minute; the log so far:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if host, port, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" || port == "0" {
		t.Errorf("serving on %q, want 127.0.0.1 and the port the system chose", addr)
	}

	warned := false
	for _, l := range logLines(t, stderr.String()) {
		msg, _ := l["msg"].(string)
		if l["level"] == "WARN" && strings.Contains(msg, "DEPLOY_WEBHOOK_INSECURE=true") && strings.Contains(msg, "without a valid signature") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning that webhooks are accepted unsigned:\n%s", stderr.String())
	}
	// DEPLOY_WEBHOOK_REPO is empty here too: said at start-up.
	if !strings.Contains(stderr.String(), `"level":"WARN","msg":"DEPLOY_WEBHOOK_REPO is empty: a push to release from any repository`) {
		t.Errorf("no warning that pushes from any repository are deployed:\n%s", stderr.String())
	}

	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz: %d, want 200", resp.StatusCode)
	}
	// Unsigned, and answered on its merits (another branch) instead of 401.
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhook", bytes.NewReader(testhosts.BitbucketPush("team/app", "other", strings.Repeat("a", 40))))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Event-Key", "repo:push")
	req.Header.Set("X-Request-UUID", "insecure-1")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /webhook: %v", err)
	}
	var answer map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&answer)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || answer["status"] != "ignored" || answer["reason"] != "other branch" {
		t.Errorf("unsigned push to another branch: %d %v, want 200 ignored (other branch)", resp.StatusCode, answer)
	}
	// DEPLOY_WEBHOOK_MAX_BODY is serve's body limit.
	req, _ = http.NewRequest(http.MethodPost, "http://"+addr+"/webhook", bytes.NewReader(make([]byte, 2049)))
	req.Header.Set("X-Event-Key", "repo:push")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatalf("POST /webhook: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a body of 2049 bytes with DEPLOY_WEBHOOK_MAX_BODY=2048: %d, want 413", resp.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if code := exitCode(err, &bytes.Buffer{}); err != nil || code != 0 {
			t.Errorf("serve returned %v (exit %d) after its context was cancelled, want nil (exit 0)\n%s", err, code, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("serve did not return within a minute of its context being cancelled\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), `"msg":"stopped"`) {
		t.Errorf("no \"stopped\" line:\n%s", stderr.String())
	}
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("serve returned but %s still answers (%d)", addr, resp.StatusCode)
	}
	c.noSecrets(t, "stderr", stderr.String())
	c.noSecrets(t, "stdout", stdout.String())
}

// logLines parses serve's --json log; a line that is not JSON fails the
// test.
func logLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		if line == "" {
			continue
		}
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		out = append(out, l)
	}
	return out
}

// TestServeWarnings: serve warns at start-up about what its configuration
// lets through: unsigned webhooks, and pushes from any repository when
// DEPLOY_WEBHOOK_REPO is empty.
func TestServeWarnings(t *testing.T) {
	tests := []struct {
		name string
		cfg  config.Config
		want []string // one substring per warning, in order
	}{
		{"repo set", config.Config{Branch: "release", WebhookRepo: "team/app"}, nil},
		{"repo empty", config.Config{Branch: "release"}, []string{
			"DEPLOY_WEBHOOK_REPO is empty: a push to release from any repository whose webhook has the secret is deployed; set it to this app's repository (e.g. team/app)",
		}},
		{"insecure, repo empty", config.Config{Branch: "main", WebhookInsecure: true}, []string{
			"DEPLOY_WEBHOOK_INSECURE=true: webhooks are accepted without a valid signature",
			"DEPLOY_WEBHOOK_REPO is empty: a push to main from any repository",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := serveWarnings(&tt.cfg)
			if len(got) != len(tt.want) {
				t.Fatalf("serveWarnings = %q, want %d warnings like %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

// TestServeCmdPortTaken: a second serve on a taken port reports only that,
// before it logs into any host: no connect failure comes first.
func TestServeCmdPortTaken(t *testing.T) {
	c := newServeCmd(t)
	t.Setenv("DEPLOY_WEBHOOK_INSECURE", "true")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("DEPLOY_LISTEN", ln.Addr().String())
	var stdout bytes.Buffer
	stderr := &testhosts.Buffer{}
	err = run(t.Context(), []string{"serve", "--json", "--env-file", c.envFile}, &stdout, stderr)
	if err == nil || !strings.Contains(err.Error(), "DEPLOY_LISTEN: listen "+ln.Addr().String()) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("serve on a taken port: %v", err)
	}
	for _, l := range logLines(t, stderr.String()) {
		if l["level"] == "ERROR" || l["host"] != nil {
			t.Errorf("serve on a taken port logged %v before its error", l)
		}
	}
}
