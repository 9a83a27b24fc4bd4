package deploy

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// ReleaseInfo is one release folder on a host.
type ReleaseInfo struct {
	// Name is the folder name under releases/ (YYYYMMDDHHMMSS-abcdef0).
	Name string
	// Time is the deployment time the name carries (UTC).
	Time time.Time
	// Commit is the full commit from REVISION; "" when REVISION is missing
	// or does not hold a commit hash.
	Commit string
	// Complete says the release can be pointed at: REVISION holds a commit
	// and venv/ is there (a folder, or a symlink to one).
	Complete bool
	// Missing names what an incomplete release lacks ("REVISION", "venv").
	Missing []string
	// Current and Previous mark the release current points at, and the
	// one a rollback without --to goes back to.
	Current  bool
	Previous bool
}

// HostReleases is what one host holds.
type HostReleases struct {
	Host Host
	// Root is the absolute root folder; "" when it does not exist.
	Root string
	// Current is the release current points at ("" when there is no
	// current); CurrentTarget is the raw symlink target, which may point
	// outside releases/ on a host someone changed by hand.
	Current       string
	CurrentTarget string
	// Previous is the release just before Current: the newest older one
	// with a REVISION, so one that was deployed (a folder without it is
	// what an interrupted deploy left, never served). It is the default
	// rollback target ("" when there is none). It may lack its venv; a
	// rollback then refuses rather than skip to an older one, which would
	// leave this host further back than the others.
	Previous string
	// Releases are newest first.
	Releases []ReleaseInfo
	// Err is why the host could not be read (the others are still listed).
	Err error
}

// Release returns the release called name, if the host has it.
func (h HostReleases) Release(name string) (ReleaseInfo, bool) {
	for _, r := range h.Releases {
		if r.Name == name {
			return r, true
		}
	}
	return ReleaseInfo{}, false
}

// Disagree reports whether the hosts that could be read point current at
// different releases (a host without current counts as disagreeing with
// one that has it).
func Disagree(hs []HostReleases) bool {
	seen, first := "", true
	for _, h := range hs {
		if h.Err != nil {
			continue
		}
		if first {
			seen, first = h.Current, false
		} else if h.Current != seen {
			return true
		}
	}
	return false
}

// Releases lists the releases of every host, reading them at the same
// time; the result is in host order. It changes nothing on the hosts. A
// host that cannot be reached or read has Err set and does not stop the
// others; the returned error is only for a deployer that cannot work at
// all (bad configuration).
func (d *Deployer) Releases(ctx context.Context, hosts []Host) ([]HostReleases, error) {
	if err := d.checkHostsOnly(); err != nil {
		return nil, err
	}
	out := make([]HostReleases, len(hosts))
	forEachHost(hosts, maxDials, func(i int, h Host) { out[i] = d.hostReleases(ctx, h) })
	return out, nil
}

// hostReleases logs in to h and reads its releases, all within one step
// timeout.
func (d *Deployer) hostReleases(ctx context.Context, h Host) HostReleases {
	ctx, cancel := context.WithTimeout(ctx, d.StepTimeout)
	defer cancel()
	c, err := d.Dialer.Dial(ctx, h)
	if err != nil {
		return HostReleases{Host: h, Err: fmt.Errorf("host %s: connect: %w", h, err)}
	}
	defer c.Close()
	tail := newTail(2 << 10)
	hr, err := d.readReleases(ctx, c, tail)
	hr.Host = h
	if err != nil {
		hr.Err = &StepError{Host: h.String(), Step: "releases", Err: err, Output: tail.String()}
	}
	return hr
}

// readReleases runs releasesScript on c and parses its answer. Errors of
// the command go to out.
func (d *Deployer) readReleases(ctx context.Context, c Conn, out io.Writer) (HostReleases, error) {
	var stdout strings.Builder
	err := c.Run(ctx, Command{
		Args:    script(releasesScript, d.Root),
		Stdout:  &stdout,
		Stderr:  out,
		Timeout: d.StepTimeout,
	})
	if err != nil {
		return HostReleases{}, err
	}
	return parseReleases(stdout.String())
}

// parseReleases reads releasesScript's output.
func parseReleases(s string) (HostReleases, error) {
	var hr HostReleases
	for _, line := range strings.Split(s, "\n") {
		if line == "" {
			continue
		}
		f := strings.SplitN(line, "\t", 5)
		switch {
		case f[0] == "root" && len(f) == 2:
			hr.Root = f[1]
		case f[0] == "current" && len(f) == 2:
			hr.CurrentTarget = f[1]
		case f[0] == "release" && len(f) == 5:
			r, err := releaseInfo(f[1], f[2] == "1", f[3] == "1", f[4])
			if err != nil {
				return HostReleases{}, err
			}
			hr.Releases = append(hr.Releases, r)
		default:
			return HostReleases{}, fmt.Errorf("unexpected line from the host: %q", line)
		}
	}
	if hr.Root != "" && (!strings.HasPrefix(hr.Root, "/") || ValidPath(hr.Root) != nil) {
		return HostReleases{}, fmt.Errorf("host reported an unusable root folder %q", hr.Root)
	}
	slices.SortFunc(hr.Releases, func(a, b ReleaseInfo) int { return strings.Compare(b.Name, a.Name) })
	if name, ok := strings.CutPrefix(hr.CurrentTarget, "releases/"); ok && ValidReleaseName(name) == nil {
		hr.Current = name
	}
	for i := range hr.Releases {
		r := &hr.Releases[i]
		r.Current = r.Name == hr.Current
		if hr.Current != "" && hr.Previous == "" && r.Commit != "" && r.Name < hr.Current {
			hr.Previous, r.Previous = r.Name, true
		}
	}
	return hr, nil
}

func releaseInfo(name string, hasRevision, hasVenv bool, revision string) (ReleaseInfo, error) {
	if err := ValidReleaseName(name); err != nil {
		return ReleaseInfo{}, err
	}
	r := ReleaseInfo{Name: name}
	// A name that is not a real date-time (made by hand) keeps a zero Time.
	if t, err := time.Parse("20060102150405", name[:14]); err == nil {
		r.Time = t.UTC()
	}
	switch rev := strings.TrimSpace(revision); {
	case !hasRevision:
		r.Missing = append(r.Missing, "REVISION")
	case ValidCommit(rev) != nil:
		r.Missing = append(r.Missing, "REVISION (holds no commit)")
	default:
		r.Commit = rev
	}
	if !hasVenv {
		r.Missing = append(r.Missing, "venv")
	}
	r.Complete = len(r.Missing) == 0
	return r, nil
}

// checkHostsOnly is check for the work that needs no repository: listing
// and rolling back.
func (d *Deployer) checkHostsOnly() error {
	var missing []string
	if d.Dialer == nil {
		missing = append(missing, "Dialer")
	}
	if d.StepTimeout <= 0 {
		missing = append(missing, "StepTimeout")
	}
	if len(missing) > 0 {
		return fmt.Errorf("deployer is missing %s", strings.Join(missing, ", "))
	}
	if err := ValidPath(d.Root); err != nil {
		return fmt.Errorf("root: %w", err)
	}
	return nil
}
