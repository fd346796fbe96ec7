//go:build !(linux || darwin)

package cosmos

// walIndex is for Linux and macOS only (it maps SQLite's -shm file); elsewhere every user read goes
// to the store.
type walIndex struct{}

type walHeader [12]uint32

func openWALIndex(string) *walIndex { return nil }

func (*walIndex) version() (walHeader, bool) { return walHeader{}, false }
