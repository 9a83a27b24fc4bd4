package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// webhookRepo is the repository the demo's webhooks come from, and
// DEPLOY_WEBHOOK_REPO.
const webhookRepo = "team/app"

// server is a running `pushdeploy serve`, its own process.
type server struct {
	url     string // http://127.0.0.1:PORT
	token   string // DEPLOY_API_TOKEN
	secret  string // DEPLOY_WEBHOOK_SECRET
	logPath string // serve's log (its stderr)
	tmp     string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when serve has exited and waitErr is set
	waitErr error
}

// startServe starts serve on a free port of 127.0.0.1 with a new webhook
// secret and API token, in its environment (never in its arguments), and
// waits until /healthz answers. public sets DEPLOY_STATUS_PUBLIC, so that
// a browser without the token can take pictures of the page.
func startServe(ctx context.Context, bin, envFile, tmp string, public bool) (*server, error) {
	s := &server{secret: testhosts.Secret(32), token: testhosts.Secret(32), logPath: filepath.Join(tmp, "serve.log"), tmp: tmp, exited: make(chan struct{})}
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("serve's log: %w", err)
	}
	args := []string{"serve", "--env-file", envFile, "--json", "--grace", "30s"}
	fmt.Printf("\n$ pushdeploy %s\n", strings.Join(args, " "))
	fmt.Println("  with DEPLOY_LISTEN=127.0.0.1:0 and a new DEPLOY_WEBHOOK_SECRET and DEPLOY_API_TOKEN in its environment")
	// Not CommandContext: stop ends serve with SIGTERM, as systemd would.
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = append(testhosts.CommandEnv(),
		"DEPLOY_LISTEN=127.0.0.1:0", // serve logs the port it got
		"DEPLOY_WEBHOOK_SECRET="+s.secret,
		"DEPLOY_API_TOKEN="+s.token,
		"DEPLOY_STATUS_PUBLIC="+strconv.FormatBool(public))
	// Its own process group, so that Ctrl-C reaches the demo only and the
	// demo stops serve in its turn; SIGTERM if the demo dies first.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start serve: %w", err)
	}
	listen := make(chan string, 1)
	go func() {
		copyLog(stderr, logFile, listen)
		logFile.Close()
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	if err := s.awaitReady(ctx, listen); err != nil {
		return nil, errors.Join(err, s.stop())
	}
	fmt.Printf("serving on %s (log: %s)\n", s.url, s.logPath)
	return s, nil
}

// copyLog copies serve's JSON log lines to w and sends the address of its
// "serving" line to listen.
func copyLog(r io.Reader, w io.Writer, listen chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		_, _ = w.Write(line)
		_, _ = io.WriteString(w, "\n")
		var rec struct{ Msg, Listen string }
		if json.Unmarshal(line, &rec) == nil && rec.Msg == "serving" && rec.Listen != "" {
			select {
			case listen <- rec.Listen:
			default:
			}
		}
	}
	_, _ = io.Copy(w, r) // a line too long for the scanner: keep the rest
}

// awaitReady waits for serve's address and then for /healthz to answer 200.
func (s *server) awaitReady(ctx context.Context, listen <-chan string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	select {
	case addr := <-listen:
		s.url = "http://" + addr
	case <-s.exited:
		return fmt.Errorf("serve exited before listening: %v\n%s", s.waitErr, s.logTail())
	case <-ctx.Done():
		return fmt.Errorf("serve did not say where it listens: %w\n%s", ctx.Err(), s.logTail())
	}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("serve exited: %v\n%s", s.waitErr, s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("serve's /healthz: %w (last: %v)\n%s", ctx.Err(), err, s.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop ends serve with SIGTERM (by its pid) and waits for it to exit,
// killing it if it takes longer than its grace and a margin.
func (s *server) stop() error {
	select {
	case <-s.exited:
		return fmt.Errorf("serve exited before the demo stopped it: %v\n%s", s.waitErr, s.logTail())
	default:
	}
	step(fmt.Sprintf("stopping serve (SIGTERM to pid %d)", s.cmd.Process.Pid))
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop serve: %w", err)
	}
	select {
	case <-s.exited:
	case <-time.After(45 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("serve did not exit within 45s of SIGTERM; killed\n%s", s.logTail())
	}
	if s.waitErr != nil {
		return fmt.Errorf("serve: %w\n%s", s.waitErr, s.logTail())
	}
	return nil
}

// logTail is the end of serve's log, for error messages.
func (s *server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return "serve's log: " + err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "serve's log (" + s.logPath + "), last lines:\n" + strings.Join(lines, "\n")
}

// webhook sends the Bitbucket Cloud repo:push delivery of a push of commit
// to the release branch, signed as Bitbucket signs it, and returns the id
// of the deployment serve queued.
func (s *server) webhook(ctx context.Context, commit string) (string, error) {
	body := testhosts.BitbucketPush(webhookRepo, "release", commit)
	req, err := testhosts.BitbucketRequest(ctx, s.url+"/webhook", s.secret, body)
	if err != nil {
		return "", err
	}
	fmt.Printf("POST %s/webhook  X-Event-Key: repo:push  X-Hub-Signature: %.19s…  (%d bytes, actor Ada)\n",
		s.url, req.Header.Get("X-Hub-Signature"), len(body))
	return s.queued(req)
}

// rollback asks serve's API to roll every host back, and returns the id of
// the deployment it queued.
func (s *server) rollback(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/api/rollback", strings.NewReader("{}"))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.token)
	fmt.Printf("POST %s/api/rollback  Authorization: Bearer …\n", s.url)
	return s.queued(req)
}

// queued sends req and reads serve's 202 answer.
func (s *server) queued(req *http.Request) (string, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	fmt.Printf("%d %s\n", resp.StatusCode, bytes.TrimSpace(raw))
	var out struct{ Status, Deployment string }
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(raw, &out) != nil || out.Status != "queued" || out.Deployment == "" {
		return "", fmt.Errorf("%s %s: answered %d %s, want 202 queued\n%s", req.Method, req.URL.Path, resp.StatusCode, raw, s.logTail())
	}
	return out.Deployment, nil
}

// api GETs path with the API token and decodes its JSON answer into out.
func (s *server) api(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// printKeep tells how to use what stays up. The curl line reads the token
// from a file (mode 0600), so that it is in no process's arguments.
func (s *server) printKeep(bin, envFile string) {
	header := filepath.Join(s.tmp, "api-header")
	if err := os.WriteFile(header, []byte("Authorization: Bearer "+s.token+"\n"), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
	}
	step("serve and the test hosts stay up until Ctrl-C")
	fmt.Printf(`status page   %[1]s/   (sign in with the API token)
API token     %[2]s
deploy again  curl -H @%[3]s -X POST %[1]s/api/deploy
the CLI       %[4]s releases --env-file %[5]s
serve's log   %[6]s
`, s.url, s.token, header, bin, envFile, s.logPath)
}
