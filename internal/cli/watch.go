package cli

import (
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// watcher keeps a command-line deployment from going silent: a step that
// runs for longer than a few seconds is said to be still running (often on
// a terminal, seldom in a log, where every line stays), and with -v each
// line the remote command prints is shown as it comes (pip's own progress).
// It is a deploy.Observer; its ticker goroutine lives until stop.
type watcher struct {
	log     *slog.Logger
	verbose bool
	first   time.Duration // a step is first said to be running after this long
	every   time.Duration // and again this often
	now     func() time.Time

	mu      sync.Mutex
	running map[stepKey]*runningStep

	stopOnce sync.Once
	done     chan struct{}
	exited   chan struct{}
}

type stepKey struct {
	host string
	step deploy.Step
}

type runningStep struct {
	started, told time.Time
}

var _ deploy.Observer = (*watcher)(nil)

// newWatcher starts a watcher that prints through log. On a terminal it
// speaks up after 5 s and then every 10 s; elsewhere (a CI log, a file,
// --json) after 30 s and then every minute.
func newWatcher(log *slog.Logger, stderr io.Writer, verbose bool) *watcher {
	w := &watcher{
		log: log, verbose: verbose, first: 30 * time.Second, every: time.Minute, now: time.Now,
		running: map[stepKey]*runningStep{}, done: make(chan struct{}), exited: make(chan struct{}),
	}
	if isTerminal(stderr) {
		w.first, w.every = 5*time.Second, 10*time.Second
	}
	go w.loop(time.Second)
	return w
}

// Observe follows steps as they start and end, and prints output lines
// under -v.
func (w *watcher) Observe(ev deploy.Event) {
	switch ev.Kind {
	case deploy.EventStep:
		k := stepKey{ev.Host, ev.Step}
		w.mu.Lock()
		if ev.Status == deploy.StatusRunning {
			w.running[k] = &runningStep{started: ev.Time}
		} else {
			delete(w.running, k)
		}
		w.mu.Unlock()
	case deploy.EventOutput:
		if w.verbose {
			w.log.Info("output", "host", ev.Host, "step", ev.Step, "line", ev.Line)
		}
	}
}

func (w *watcher) loop(tick time.Duration) {
	defer close(w.exited)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
			w.tell()
		}
	}
}

// tell says which steps have been running long enough to be mentioned,
// in the order they started.
func (w *watcher) tell() {
	now := w.now()
	type due struct {
		k       stepKey
		elapsed time.Duration
		started time.Time
	}
	var list []due
	w.mu.Lock()
	for k, s := range w.running {
		elapsed := now.Sub(s.started)
		if elapsed < w.first || (!s.told.IsZero() && now.Sub(s.told) < w.every) {
			continue
		}
		s.told = now
		list = append(list, due{k, elapsed, s.started})
	}
	w.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].started.Before(list[j].started) })
	for _, d := range list {
		w.log.Info("still running", "host", d.k.host, "step", d.k.step, "running", d.elapsed.Truncate(time.Second))
	}
}

// stop ends the ticker and waits for it.
func (w *watcher) stop() {
	w.stopOnce.Do(func() { close(w.done) })
	<-w.exited
}

// isTerminal tells whether w is a terminal (stderr of an interactive run).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// useColor tells whether progress written to w may be coloured: only on a
// terminal, and never when NO_COLOR is set (https://no-color.org) or
// TERM is dumb.
func useColor(w io.Writer) bool {
	if _, set := os.LookupEnv("NO_COLOR"); set || os.Getenv("TERM") == "dumb" {
		return false
	}
	return isTerminal(w)
}
