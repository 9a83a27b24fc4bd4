package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// The benchmark shares its machine with whatever else runs there (on a
// CI or development box, other test suites), and every tool's time grows
// with the load. With -quiet, each operation waits until the machine's
// CPUs, measured over quietSample with the benchmark itself idle, are at
// most that busy (or until -quiet-max has passed: then it goes ahead and
// says so), and every operation records the load average it started at.

const quietSample = 2 * time.Second

// cpuTimes reads the machine's busy and total CPU time (in USER_HZ ticks)
// from /proc/stat's first line.
func cpuTimes() (busy, total uint64, err error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, errors.New("/proc/stat: no cpu line")
	}
	for i, s := range f[1:] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total, nil
}

// busyShare is the share of all CPUs in use over d.
func busyShare(ctx context.Context, d time.Duration) (float64, error) {
	b0, t0, err := cpuTimes()
	if err != nil {
		return 0, err
	}
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(d):
	}
	b1, t1, err := cpuTimes()
	if err != nil {
		return 0, err
	}
	if t1 == t0 {
		return 0, nil
	}
	return float64(b1-b0) / float64(t1-t0), nil
}

// waitQuiet waits until the machine is at most o.quiet busy, for at most
// o.quietMax; it returns the last share measured (-1: not asked).
func (o options) waitQuiet(ctx context.Context) (float64, error) {
	if o.quiet <= 0 {
		return -1, nil
	}
	start, said := time.Now(), time.Time{}
	for {
		share, err := busyShare(ctx, quietSample)
		if err != nil {
			return -1, err
		}
		waited := time.Since(start)
		if share <= o.quiet {
			if !said.IsZero() {
				note("  the machine is %.0f%% busy: going on after %s", 100*share, waited.Round(time.Second))
			}
			return share, nil
		}
		if waited >= o.quietMax {
			note("  the machine is still %.0f%% busy after %s: measuring anyway", 100*share, waited.Round(time.Second))
			return share, nil
		}
		if time.Since(said) > 30*time.Second {
			note("  the machine is %.0f%% busy (load average %s): waiting for at most %.0f%%", 100*share, loadAvg(), 100*o.quiet)
			said = time.Now()
		}
	}
}

// parsePercent reads "50%" or "0.5" as 0.5.
func parsePercent(s string) (float64, error) {
	v, pct := strings.CutSuffix(strings.TrimSpace(s), "%")
	x, err := strconv.ParseFloat(v, 64)
	if pct {
		x /= 100
	}
	if err != nil || x < 0 || x > 1 {
		return 0, fmt.Errorf("%q: want a share of the CPUs such as 50%%", s)
	}
	return x, nil
}
