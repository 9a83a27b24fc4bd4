package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrWouldFail is returned by Plan (wrapped, naming the hosts) when a
// problem found on some host would make the deploy fail there.
var ErrWouldFail = errors.New("the deploy would fail")

// Plan is what a deploy would do, worked out by Deployer.Plan without
// changing anything on any host.
type Plan struct {
	Branch string
	Commit string
	// ReleaseName is the release folder a deploy started now would make
	// (a real deploy names it after its own start time).
	ReleaseName string
	// Hosts are in the order they would be deployed.
	Hosts []HostPlan
}

// HostPlan is what a deploy would find and do on one host.
type HostPlan struct {
	Host Host
	// Root is the absolute root folder; when RootExists is false, where
	// the deploy would create it.
	Root       string
	RootExists bool
	// Current is the release current points at now ("" when there is
	// none; the raw symlink target when it points outside releases/),
	// Previous the release just before it (where a rollback goes).
	Current  string
	Previous string
	// Releases are the release folders, newest first.
	Releases []string
	// RemoveIncomplete are the releases prepare would remove (no REVISION,
	// not current: left by an interrupted deploy); RemoveOld those
	// retention would remove after a successful deploy.
	RemoveIncomplete []string
	RemoveOld        []string
	// LockHolder says who holds the host lock right now ("" when free).
	LockHolder string
	// Python is what DEPLOY_PYTHON reported (executable and version).
	Python string
	// Steps are the steps the deploy would run on this host, in order.
	Steps []string
	// Notes are things the deploy would do besides its steps' usual work
	// (create the root, a shared folder); Problems are what would make
	// it fail on this host.
	Notes    []string
	Problems []string
}

func (hp *HostPlan) problem(format string, args ...any) {
	hp.Problems = append(hp.Problems, fmt.Sprintf(format, args...))
}

// Plan works out what Deploy(ctx, hosts, p) would do, changing nothing on
// any host: it resolves the commit, logs in to every host (checking its
// key), and runs one read-only inspection there (root, current, releases,
// what cleanup and retention would remove, the host lock, tools, Python,
// shared files) plus the same git access check as Check. It creates no
// folder, not even the root, and no lock file. Hosts are inspected at the
// same time; the plan lists them in order. The error wraps ErrWouldFail
// (with the plan) when a problem on some host would make the deploy fail,
// or is the resolver's or configuration error (with no plan).
func (d *Deployer) Plan(ctx context.Context, hosts []Host, p Push) (*Plan, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	log := d.logger().With("dry_run", true)
	rel, err := d.resolve(ctx, log, p)
	if err != nil {
		return nil, err
	}
	plan := &Plan{Branch: rel.Branch, Commit: rel.Commit, ReleaseName: ReleaseName(d.now(), rel.Commit)}
	plan.Hosts = make([]HostPlan, len(hosts))
	forEachHost(hosts, maxDials, func(i int, h Host) {
		start := time.Now()
		plan.Hosts[i] = d.planHost(ctx, h, rel, p.Commit != "", plan.ReleaseName)
		log.Info("step done", "host", h.String(), "step", StepDryRun, "duration", time.Since(start))
	})
	var failing []string
	for _, hp := range plan.Hosts {
		if len(hp.Problems) > 0 {
			failing = append(failing, hp.Host.String())
		}
	}
	if len(failing) > 0 {
		return plan, fmt.Errorf("%w on %s", ErrWouldFail, strings.Join(failing, ", "))
	}
	return plan, nil
}

// planHost logs in to h and inspects it, all within one step timeout.
// pinned says the push named a commit (so the branch tip may differ).
func (d *Deployer) planHost(ctx context.Context, h Host, rel Release, pinned bool, name string) HostPlan {
	hp := HostPlan{Host: h, Steps: d.plannedSteps()}
	ctx, cancel := context.WithTimeout(ctx, d.StepTimeout)
	defer cancel()
	c, err := d.Dialer.Dial(ctx, h)
	if err != nil {
		hp.problem("connect: %v", err)
		return hp
	}
	defer c.Close()
	out, err := runOutput(ctx, c, Command{Args: script(planScript, append([]string{d.Root, d.Python, d.hostTools()}, d.SharedPaths...)...)})
	if err != nil {
		hp.problem("inspect: %v", err)
		return hp
	}
	f, err := parseFacts(out)
	if err != nil {
		hp.problem("inspect: %v", err)
		return hp
	}
	d.apply(&hp, f, name)
	if slices.Contains(f.missingTools, "git") || d.Archiver != nil {
		return hp // push mode: the host needs no access to the repository
	}
	if err := d.gitAccess(ctx, c, rel, pinned); err != nil {
		hp.problem("git access: %v", err)
	}
	return hp
}

// runOutput runs cmd on c and returns its output; a failure carries the
// command's error output.
func runOutput(ctx context.Context, c Conn, cmd Command) (string, error) {
	var stdout strings.Builder
	tail := newTail(2 << 10)
	cmd.Stdout, cmd.Stderr = &stdout, tail
	if err := c.Run(ctx, cmd); err != nil {
		if t := strings.TrimSpace(tail.String()); t != "" {
			return "", fmt.Errorf("%w: %s", err, t)
		}
		return "", err
	}
	return stdout.String(), nil
}

// gitAccess checks, as Check does, that the host itself can read the branch
// with the lent deploy key and the git server key the deployer verified.
// gitScript only makes (and removes) a temporary file in /tmp.
func (d *Deployer) gitAccess(ctx context.Context, c Conn, rel Release, pinned bool) error {
	out, err := runOutput(ctx, c, lsRemote(rel, d.LendGitKey))
	if err != nil {
		return RedactError(err, rel.RepoURL)
	}
	got := strings.TrimSpace(out)
	switch {
	case got == "":
		return fmt.Errorf("the host does not see branch %s in the repository", rel.Branch)
	case !pinned && !strings.HasPrefix(got, rel.Commit):
		return fmt.Errorf("the host sees branch %s at %q, the deployer at %s", rel.Branch, got, rel.Commit)
	}
	return nil
}

// deploySteps are the steps Deploy runs on each host, in order, as
// recorded in its results (the hook steps always run; they do nothing when
// the release has no hook).
func (d *Deployer) deploySteps() []Step {
	// prepare, fetch and pip-copy come before the lock: they run on every
	// host at once (preparerun.go).
	steps := []Step{StepPrepare, StepFetch, StepPipCopy, StepLock, StepCheckout, StepVenv, StepPip}
	if d.Archiver != nil {
		steps = []Step{StepPrepare, StepPipCopy, StepLock, StepUpload, StepVenv, StepPip}
	}
	if len(d.SharedPaths) > 0 {
		steps = append(steps, StepShared)
	}
	steps = append(steps, StepBeforeSwitch, StepSwitch)
	if d.RestartCmd != "" {
		steps = append(steps, StepRestart)
	}
	if d.HealthURL != "" {
		steps = append(steps, StepHealth)
	}
	steps = append(steps, StepAfterSwitch)
	if d.KeepReleases > 0 {
		steps = append(steps, StepRetention)
	}
	return steps
}

// plannedSteps are deploySteps as a plan shows them.
func (d *Deployer) plannedSteps() []string {
	var steps []string
	for _, s := range d.deploySteps() {
		text := string(s)
		switch {
		case s == StepBeforeSwitch || s == StepAfterSwitch:
			text += " (if the release has .pushdeploy/" + string(s) + ")"
		case s == StepPipCopy:
			text += " (makes the host's compiled copy of pip, once per Python)"
		case s == StepPip && d.VenvReuse:
			text += " (skipped when an earlier release has the same requirements.txt: its venv is reused)"
		}
		steps = append(steps, text)
	}
	return steps
}

// entry is one thing under releases/ named like a release.
type entry struct {
	name           string
	dir            bool
	revision, venv bool
}

// hostFacts is planScript's report.
type hostFacts struct {
	missingTools        []string
	python, pythonState string
	root                string
	rootExists          bool
	unwritable          string
	current             string // raw target of current
	entries             []entry
	stale               []string
	lock, holder        string
	sharedMissing       []string
	sharedCreate        []string
}

// parseFacts reads planScript's output.
func parseFacts(s string) (hostFacts, error) {
	var f hostFacts
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		kind, rest, _ := strings.Cut(line, "\t")
		a, b, _ := strings.Cut(rest, "\t")
		switch kind {
		case "tool":
			f.missingTools = append(f.missingTools, rest)
		case "python":
			f.pythonState, f.python = a, b
		case "noroot", "root":
			f.root, f.rootExists = rest, kind == "root"
		case "unwritable":
			f.unwritable = rest
		case "current":
			f.current = rest
		case "release":
			fs := strings.Split(rest, "\t")
			if len(fs) != 4 || ValidReleaseName(fs[0]) != nil {
				return f, fmt.Errorf("unexpected release line %q", line)
			}
			f.entries = append(f.entries, entry{name: fs[0], dir: fs[1] == "d", revision: fs[2] == "1", venv: fs[3] == "1"})
		case "stale":
			f.stale = append(f.stale, rest)
		case "lock":
			f.lock, f.holder = a, b
		case "shared":
			if a == "missing" {
				f.sharedMissing = append(f.sharedMissing, b)
			} else {
				f.sharedCreate = append(f.sharedCreate, b)
			}
		case "":
		default:
			return f, fmt.Errorf("unexpected line %q", line)
		}
	}
	if !strings.HasPrefix(f.root, "/") {
		return f, fmt.Errorf("host reported an unusable root folder %q", f.root)
	}
	slices.SortFunc(f.entries, func(x, y entry) int { return strings.Compare(x.name, y.name) })
	return f, nil
}

// apply fills hp from what the host reported; name is the new release.
func (d *Deployer) apply(hp *HostPlan, f hostFacts, name string) {
	for _, t := range f.missingTools {
		hp.problem("%s is not installed on this host", t)
	}
	switch f.pythonState {
	case "ok":
		hp.Python = f.python
	case "missing":
		hp.problem("python interpreter %s (DEPLOY_PYTHON) not found on this host", d.Python)
	default:
		hp.problem("python interpreter %s (DEPLOY_PYTHON) cannot build a venv: %s", d.Python, f.python)
	}
	hp.Root, hp.RootExists = f.root, f.rootExists
	if !f.rootExists {
		hp.Notes = append(hp.Notes, "root folder "+f.root+" would be created")
	}
	if f.unwritable != "" {
		hp.problem("folder %s is not writable by %s", f.unwritable, hp.Host.User)
	}
	d.applyReleases(hp, f, name)
	switch f.lock {
	case "held":
		hp.LockHolder = f.holder
		if hp.LockHolder == "" {
			hp.LockHolder = "another deployer"
		}
		hp.problem("host busy: locked by %s (a deploy would wait up to %s)", hp.LockHolder, d.lockWait())
	case "unreadable":
		hp.problem("lock file %s/.pushdeploy.lock is not readable", f.root)
	}
	for _, p := range f.sharedMissing {
		hp.problem("shared file %s/shared/%s is missing: create it on this host (DEPLOY_SHARED_PATHS lists %s)", f.root, p, p)
	}
	for _, p := range f.sharedCreate {
		hp.Notes = append(hp.Notes, "shared folder "+f.root+"/shared/"+strings.TrimSuffix(p, "/")+" would be created")
	}
}

func (d *Deployer) lockWait() time.Duration {
	if d.LockTimeout > 0 {
		return d.LockTimeout
	}
	return 2 * time.Minute
}

// applyReleases fills in current, previous, the releases and what prepare
// and retention would remove.
func (d *Deployer) applyReleases(hp *HostPlan, f hostFacts, name string) {
	cur, inReleases := strings.CutPrefix(f.current, "releases/")
	named := inReleases && ValidReleaseName(cur) == nil
	hp.Current = f.current
	if named {
		hp.Current = cur
	}
	for i := len(f.entries) - 1; i >= 0; i-- {
		e := f.entries[i]
		if !e.dir {
			continue
		}
		hp.Releases = append(hp.Releases, e.name)
		if hp.Previous == "" && named && e.name < cur && e.revision {
			hp.Previous = e.name
		}
	}
	var kept []entry
	hp.RemoveIncomplete, kept = incomplete(f.entries, f.current)
	if d.KeepReleases > 0 {
		hp.RemoveOld = retentionVictims(kept, name, cur, d.KeepReleases)
	}
	for _, s := range f.stale {
		hp.Notes = append(hp.Notes, "prepare would remove the leftover link "+f.root+"/"+s)
	}
}

// incomplete applies phase.sh's rule (its lock step) to entries (sorted): folders
// without REVISION that current does not point at are removed. It returns
// those and the entries left.
func incomplete(entries []entry, current string) (removed []string, kept []entry) {
	for _, e := range entries {
		if e.dir && "releases/"+e.name != current && !e.revision {
			removed = append(removed, e.name)
			continue
		}
		kept = append(kept, e)
	}
	return removed, kept
}

// retentionVictims applies retentionScript's rule to entries (sorted, as
// left by prepare) once the new release is added and current points at
// it: of all entries, the oldest beyond keep are removed, except the new
// release, prev (what current pointed at before) and non-folders.
func retentionVictims(entries []entry, newName, prev string, keep int) []string {
	// As retentionScript: only folders count, and are considered.
	dirs := []string{newName}
	for _, e := range entries {
		if e.dir {
			dirs = append(dirs, e.name)
		}
	}
	slices.Sort(dirs)
	var removed []string
	for _, name := range dirs[:max(len(dirs)-keep, 0)] {
		if name != newName && name != prev {
			removed = append(removed, name)
		}
	}
	return removed
}
