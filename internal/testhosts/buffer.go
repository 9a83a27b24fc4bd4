package testhosts

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer that is safe to read while another goroutine
// writes it: a command's log, read by the test while the command runs.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *Buffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// String is what was written so far.
func (w *Buffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
