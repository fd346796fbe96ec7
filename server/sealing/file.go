package sealing

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// KeyFile is the key file's name in the data directory.
const KeyFile = "refresh-token-keys.json"

// FileKeys keeps key versions in a file (mode 0600), for embedded mode and
// anywhere without Key Vault: {"versions":[{"version":"1","key":"<base64>",
// "created":"<RFC 3339>"}, ...]}, oldest first. The file is created with its
// first version on first use, atomically, so a CLI and a server starting
// together agree on one key. Add writes a new file and renames it over the
// old one; run one rotate-key at a time.
type FileKeys struct {
	path string
}

// NewFileKeys returns the source for the key file at path.
func NewFileKeys(path string) *FileKeys { return &FileKeys{path: path} }

type keyFile struct {
	Versions []fileVersion `json:"versions"`
}

type fileVersion struct {
	Version string    `json:"version"`
	Key     string    `json:"key"` // base64 of KeySize bytes
	Created time.Time `json:"created"`
}

func (f *FileKeys) read() (*keyFile, error) {
	b, err := os.ReadFile(f.path)
	if err != nil {
		return nil, err
	}
	var kf keyFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return nil, fmt.Errorf("key file %s: %w", f.path, err)
	}
	return &kf, nil
}

// load reads the file, creating it with a first version when missing.
func (f *FileKeys) load() (*keyFile, error) {
	kf, err := f.read()
	if !errors.Is(err, os.ErrNotExist) {
		return kf, err
	}
	first := &keyFile{Versions: []fileVersion{{Version: "1", Key: base64.StdEncoding.EncodeToString(newKey()), Created: time.Now().UTC()}}}
	// Write a complete temporary file, then link it into place: the link fails
	// if another process got there first, and nobody ever sees a partial file.
	tmp, err := f.writeTemp(first)
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, f.path); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	return f.read()
}

func (f *FileKeys) writeTemp(kf *keyFile) (string, error) {
	if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return "", err
	}
	t, err := os.CreateTemp(filepath.Dir(f.path), ".keys-*")
	if err != nil {
		return "", err
	}
	name := t.Name()
	if err := t.Chmod(0o600); err == nil {
		if _, err = t.Write(append(b, '\n')); err == nil {
			err = t.Sync()
		}
		if cerr := t.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			return name, nil
		}
	} else {
		t.Close()
	}
	os.Remove(name)
	return "", err
}

func decodeKey(v fileVersion) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(v.Key)
	if err != nil || len(k) != KeySize {
		return nil, fmt.Errorf("key version %s is not base64 of %d bytes", v.Version, KeySize)
	}
	return k, nil
}

// Latest returns the last version in the file.
func (f *FileKeys) Latest(context.Context) (string, []byte, error) {
	kf, err := f.load()
	if err != nil {
		return "", nil, err
	}
	if len(kf.Versions) == 0 {
		return "", nil, fmt.Errorf("key file %s has no versions", f.path)
	}
	last := kf.Versions[len(kf.Versions)-1]
	k, err := decodeKey(last)
	return last.Version, k, err
}

// Get returns the key of a version.
func (f *FileKeys) Get(_ context.Context, version string) ([]byte, error) {
	kf, err := f.read()
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrUnknownVersion
	}
	if err != nil {
		return nil, err
	}
	for _, v := range kf.Versions {
		if v.Version == version {
			return decodeKey(v)
		}
	}
	return nil, ErrUnknownVersion
}

// Add appends a new version numbered one past the highest.
func (f *FileKeys) Add(context.Context) (string, error) {
	kf, err := f.load()
	if err != nil {
		return "", err
	}
	next := 1
	for _, v := range kf.Versions {
		if n, err := strconv.Atoi(v.Version); err == nil && n >= next {
			next = n + 1
		}
	}
	version := strconv.Itoa(next)
	kf.Versions = append(kf.Versions, fileVersion{Version: version, Key: base64.StdEncoding.EncodeToString(newKey()), Created: time.Now().UTC()})
	tmp, err := f.writeTemp(kf)
	if err != nil {
		return "", err
	}
	if err := os.Rename(tmp, f.path); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return version, nil
}
