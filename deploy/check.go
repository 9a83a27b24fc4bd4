package deploy

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// CheckResult is one preflight check: on a host, or of the repository
// (Host empty).
type CheckResult struct {
	Host     string
	Name     string
	Detail   string // what was found, e.g. the Python version
	Err      error
	Duration time.Duration
}

// Check runs the preflight checks: the repository and branch resolve,
// every jump host is reached and logged into (once, however many hosts
// are behind it; the hosts behind one that fails are not tried), and on
// every host the key is known, the login works, the tools and Python
// are there, and the host itself can reach the repository with the lent
// deploy key. Hosts are checked maxDials at a time; results come back in
// order (repository first, then the jump hosts, then hosts in file order). Nothing is changed
// on the hosts beyond creating the root folder.
func (d *Deployer) Check(ctx context.Context, hosts []Host) []CheckResult {
	var results []CheckResult
	start := time.Now()
	rel, err := d.Resolver.Resolve(ctx, Push{Branch: d.branch()})
	results = append(results, CheckResult{Name: "repository", Detail: fmt.Sprintf("%s %s at %.12s", rel.RepoURL, rel.Branch, rel.Commit), Err: err, Duration: time.Since(start)})

	jumps := d.checkJumps(ctx, hosts)
	defer jumps.close()
	results = append(results, jumps.results...)

	per := make([][]CheckResult, len(hosts))
	forEachHost(hosts, maxDials, func(i int, h Host) {
		if name := jumps.blocked(h.Jump); name != "" {
			per[i] = []CheckResult{{Host: h.String(), Name: "login", Err: fmt.Errorf("not tried: its jump host %s failed", name)}}
			return
		}
		per[i] = d.checkHost(ctx, h, rel, err == nil)
	})
	for _, r := range per {
		results = append(results, r...)
	}
	// check prints every result: none shows the repository's password,
	// whatever quotes the URL (the detail, a host's git).
	for i := range results {
		results[i].Detail = RedactPassword(results[i].Detail, rel.RepoURL)
		results[i].Err = RedactError(results[i].Err, rel.RepoURL)
	}
	return results
}

func (d *Deployer) branch() string {
	if d.Branch != "" {
		return d.Branch
	}
	return "release"
}

func (d *Deployer) checkHost(ctx context.Context, h Host, rel Release, haveRepo bool) []CheckResult {
	var out []CheckResult
	add := func(name string, start time.Time, detail string, err error) bool {
		out = append(out, CheckResult{Host: h.String(), Name: name, Detail: detail, Err: err, Duration: time.Since(start)})
		return err == nil
	}
	ctx, cancel := context.WithTimeout(ctx, d.StepTimeout)
	defer cancel()
	var conn Conn
	run := func(cmd Command) (string, error) {
		var stdout strings.Builder
		tail := newTail(2 << 10)
		cmd.Stdout, cmd.Stderr = io.MultiWriter(&stdout, tail), tail
		if err := conn.Run(ctx, cmd); err != nil {
			if t := tail.String(); t != "" {
				return "", fmt.Errorf("%w: %s", err, t)
			}
			return "", err
		}
		return strings.TrimSpace(stdout.String()), nil
	}

	start := time.Now()
	c, err := d.Dialer.Dial(ctx, h)
	login := "host key known, logged in as " + h.User
	if len(h.Jump) > 0 {
		login += " through " + jumpNames(h.Jump)
	}
	if h.Local {
		login = "this machine, without SSH"
	}
	if !add("login", start, login, err) {
		return out
	}
	defer c.Close()
	conn = c

	start = time.Now()
	root, err := run(Command{Args: script(checkScript, d.Root, d.hostTools())})
	if !add("host", start, "root "+root+"; "+strings.ReplaceAll(d.hostTools(), " ", ", ")+" present", err) {
		return out
	}
	start = time.Now()
	py, err := run(Command{Args: script(pythonCheckScript, d.Python)})
	add("python", start, py, err)
	if !haveRepo || d.Archiver != nil {
		return out // push mode: hosts need no access to the repository
	}
	start = time.Now()
	got, err := run(lsRemote(rel, d.LendGitKey))
	if err == nil && !strings.HasPrefix(got, rel.Commit) {
		err = fmt.Errorf("the host sees branch %s at %q, the deployer at %s", rel.Branch, got, rel.Commit)
	}
	add("git access", start, "the host can read "+rel.Branch+" from the repository", err)
	return out
}

// hostTools are the programs a deploy runs on the hosts besides the shell
// and coreutils: git only when hosts fetch the repository themselves.
func (d *Deployer) hostTools() string {
	if d.Archiver != nil {
		return "flock timeout tar"
	}
	return "git flock timeout tar"
}
