package deploy

import (
	"strings"
	"sync"
)

// tailBuffer keeps the last max bytes written to it: enough of a failing
// command's output to explain the failure, without holding a pip log in
// memory. Safe for concurrent writes (stdout and stderr arrive on separate
// goroutines).
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
	cut bool
}

func newTail(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.cut = true
	}
	return len(p), nil
}

// String returns the kept output; when the start was cut, it begins at the
// first whole line, after a "…" marker.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(t.buf)
	if t.cut {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
		s = "…\n" + s
	}
	return strings.TrimRight(s, "\n")
}

// signalWriter closes C the first time the text written to it holds
// marker as a line of its own (marker ends with "\n"). The lock command
// uses it to say "the lock is mine".
type signalWriter struct {
	mu     sync.Mutex
	marker string
	seen   strings.Builder
	C      chan struct{}
	done   bool
}

func newSignalWriter(marker string) *signalWriter {
	return &signalWriter{marker: marker, C: make(chan struct{})}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.seen.Write(p)
		if strings.Contains("\n"+w.seen.String(), "\n"+w.marker) {
			w.done = true
			close(w.C)
		}
	}
	return len(p), nil
}
