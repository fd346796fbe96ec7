// Package logtest is a log sink for tests: a zapcore.WriteSyncer that the code
// under test may write from many goroutines while the test reads it.
package logtest

import (
	"bufio"
	"bytes"
	"sync"
)

// Buffer keeps everything written to it.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Sync makes Buffer a zapcore.WriteSyncer; there is nothing to flush.
func (b *Buffer) Sync() error { return nil }

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Lines is everything written so far, a line each (lines up to 1 MiB).
func (b *Buffer) Lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
