package cli

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// TestWatcherSaysLongStepsAreRunning: a step is mentioned once it has run
// for `first`, then every `every`, never after it ended; with verbose each
// output line is printed as it comes, without it none is.
func TestWatcherSaysLongStepsAreRunning(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	now := t0
	for _, verbose := range []bool{false, true} {
		var buf bytes.Buffer
		w := &watcher{
			log: slog.New(newProgressHandler(&buf)), verbose: verbose, first: 5 * time.Second, every: 10 * time.Second,
			now: func() time.Time { return now }, running: map[stepKey]*runningStep{},
		}
		w.Observe(deploy.Event{Kind: deploy.EventStep, Status: deploy.StatusRunning, Host: "web1", Step: "pip", Time: t0})
		w.Observe(deploy.Event{Kind: deploy.EventStep, Status: deploy.StatusRunning, Host: "web2", Step: "fetch", Time: t0.Add(2 * time.Second)})
		w.Observe(deploy.Event{Kind: deploy.EventOutput, Host: "web1", Step: "pip", Line: "Collecting flask"})
		var said []string
		for _, at := range []time.Duration{4, 5, 6, 7, 14, 15, 16, 25} {
			now = t0.Add(at * time.Second)
			if at == 16 {
				w.Observe(deploy.Event{Kind: deploy.EventStep, Status: deploy.StatusSucceeded, Host: "web2", Step: "fetch"})
			}
			buf.Reset()
			w.tell()
			for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
				if l != "" {
					said = append(said, fmt.Sprintf("%ds: ", at)+strings.Join(strings.Fields(l)[1:], " "))
				}
			}
		}
		want := []string{
			"5s: web1 pip running 5s…",
			"7s: web2 fetch running 5s…",
			"15s: web1 pip running 15s…",
			"25s: web1 pip running 25s…",
		}
		if strings.Join(said, "\n") != strings.Join(want, "\n") {
			t.Errorf("verbose=%v: said\n%s\nwant\n%s", verbose, strings.Join(said, "\n"), strings.Join(want, "\n"))
		}
	}
}

func TestWatcherVerboseOutput(t *testing.T) {
	for _, verbose := range []bool{false, true} {
		var buf bytes.Buffer
		w := &watcher{log: slog.New(newProgressHandler(&buf)), verbose: verbose, running: map[stepKey]*runningStep{}}
		w.Observe(deploy.Event{Kind: deploy.EventOutput, Host: "web1", Step: "pip", Line: "Collecting flask"})
		got := strings.Join(strings.Fields(buf.String()), " ")
		if verbose != strings.HasSuffix(got, "web1 pip | Collecting flask") {
			t.Errorf("verbose=%v: printed %q", verbose, buf.String())
		}
	}
}

// TestNewWatcherStops: the ticker goroutine ends with stop.
func TestNewWatcherStops(t *testing.T) {
	var buf bytes.Buffer
	w := newWatcher(slog.New(newProgressHandler(&buf)), &buf, false)
	if w.first != 30*time.Second || w.every != time.Minute {
		t.Errorf("not a terminal: first %v every %v, want 30s and 1m", w.first, w.every)
	}
	w.stop()
	w.stop() // twice is harmless
}

// TestProgressColor: colour only when asked for (a terminal without
// NO_COLOR); plain lines otherwise.
func TestProgressColor(t *testing.T) {
	for _, color := range []bool{false, true} {
		var buf bytes.Buffer
		h := newProgressHandler(&buf)
		h.color = color
		log := slog.New(h)
		log.Error("step failed", "host", "web1", "step", "pip", "duration", time.Second, "error", "exit status 1")
		log.Info("deployment succeeded", "duration", time.Second)
		log.Warn("old releases were not removed")
		if got := strings.Count(buf.String(), "\x1b["); (got > 0) != color {
			t.Errorf("color=%v: %d escape sequences in %q", color, got, buf.String())
		}
	}
	t.Setenv("NO_COLOR", "")
	if useColor(&bytes.Buffer{}) {
		t.Error("useColor with NO_COLOR set")
	}
}
