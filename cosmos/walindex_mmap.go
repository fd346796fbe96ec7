//go:build linux || darwin

package cosmos

import (
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// walIndex watches the embedded store's WAL index (the "-shm" file SQLite shares
// between every process that has the database open) for committed transactions.
// Its header, documented in SQLite's "WAL-mode file format" (walformat.html, "The
// WAL-Index Header"), is written twice by every committing writer, in any process:
// copy 2 at byte 48, a memory barrier, then copy 1 at byte 0; iChange, mxFrame and
// the checksums change with every transaction and the salts with every WAL reset.
// So while both copies are equal and unchanged, nothing was committed: a user read
// may be answered from what the last read returned.
type walIndex struct {
	mem []byte // the first page of the -shm file, mapped read-only and shared
	// f is never closed: closing any descriptor of a file drops every POSIX lock
	// this process holds on it, SQLite's included, and another store handle of
	// this process may hold some. So each -shm file is opened once per process.
	f   *os.File
	ino uint64
}

// walHeader is one copy of the 48-byte header, as 12 words.
type walHeader [12]uint32

const walIndexVersion = 3007000 // iVersion of the header format

var (
	walIndexesMu sync.Mutex
	walIndexes   = map[string]*walIndex{} // by -shm path; one descriptor per file per process
)

// openWALIndex maps the -shm file at path, or returns the mapping this process
// already has of that same file. nil means it cannot be watched.
func openWALIndex(path string) *walIndex {
	var st syscall.Stat_t
	if syscall.Stat(path, &st) != nil {
		return nil
	}
	walIndexesMu.Lock()
	defer walIndexesMu.Unlock()
	if w := walIndexes[path]; w != nil && w.ino == uint64(st.Ino) {
		return w
	}
	// New, or the file was replaced (every connection to it had closed): map it.
	// An older mapping of a removed file is left as it is (see f).
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	var fst syscall.Stat_t
	if syscall.Fstat(int(f.Fd()), &fst) != nil || fst.Ino != st.Ino {
		walIndexes[path] = &walIndex{f: f} // replaced while we looked: keep the descriptor, watch nothing
		return nil
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, 4096, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		walIndexes[path] = &walIndex{f: f, ino: uint64(st.Ino)}
		return nil
	}
	w := &walIndex{mem: mem, f: f, ino: uint64(st.Ino)}
	walIndexes[path] = w
	return w
}

// version returns the header when it is initialised and both copies agree (no
// writer is between them); ok false means "cannot tell: read the store".
func (w *walIndex) version() (walHeader, bool) {
	var a, b walHeader
	if w == nil || w.mem == nil {
		return a, false
	}
	for i := range a {
		a[i] = atomic.LoadUint32((*uint32)(unsafe.Pointer(&w.mem[4*i])))
	}
	for i := range b {
		b[i] = atomic.LoadUint32((*uint32)(unsafe.Pointer(&w.mem[48+4*i])))
	}
	isInit := (*[48]byte)(unsafe.Pointer(&a))[12] // a byte field of the header, in the copy just read
	return a, a == b && a[0] == walIndexVersion && isInit == 1
}
