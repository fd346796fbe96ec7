// Package cosmostest holds what tests of the store need in more than one package.
package cosmostest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FilesHolding returns the files under dir in which any 16-byte window of any
// needle occurs (every byte of every file is read): proof that an erased secret
// left no copy behind in the store's files (database, WAL, shared memory).
func FilesHolding(t testing.TB, dir string, needles ...[]byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range needles {
			for i := 0; i+16 <= len(n); i += 8 {
				if bytes.Contains(data, n[i:i+16]) {
					hits = append(hits, filepath.Base(path))
					return nil
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}
