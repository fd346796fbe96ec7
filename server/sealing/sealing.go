// Package sealing seals users' refresh tokens for storage: AES-256-GCM with a
// random nonce, the user id as additional data (a sealed token copied onto
// another user does not open), and the key version stored beside the
// ciphertext. Keys come from a Keys source, Key Vault in Azure (VaultKeys) or
// a key file in the data directory (FileKeys). A Sealer encrypts with the
// newest version and decrypts with the one named; the versions it has read
// are cached, the newest is asked for again every few minutes, and at once
// after opening a version not seen before (another process rotated).
package sealing

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/flowstudio/mcp/tools/pattern"
	"golang.org/x/sync/singleflight"
)

// KeySize is the size of every key: AES-256.
const KeySize = 32

// Keys is where key versions live.
type Keys interface {
	// Latest returns the newest version and its key; a source with no key
	// yet creates its first one.
	Latest(ctx context.Context) (version string, key []byte, err error)
	// Get returns the key of a version, ErrUnknownVersion if there is none.
	Get(ctx context.Context, version string) ([]byte, error)
	// Add stores a new random key as the newest version.
	Add(ctx context.Context) (version string, err error)
}

var (
	// ErrUnknownVersion: the key version named beside a sealed token does not exist.
	ErrUnknownVersion = errors.New("sealing: unknown key version")
	// ErrOpen: the sealed token does not open with its key and user id (tampered,
	// moved to another user, or sealed under a different key).
	ErrOpen = errors.New("sealing: sealed data does not open")
)

// Defaults of Options.
const (
	DefaultLatestTTL = 5 * time.Minute
	DefaultTimeout   = 10 * time.Second
)

// Options tune a Sealer; zero fields take the defaults.
type Options struct {
	// LatestTTL is how long the newest version is trusted before asking the
	// source again (so a rotation by another process is picked up).
	LatestTTL time.Duration
	// Timeout bounds each call to the source.
	Timeout time.Duration
	Now     func() time.Time
}

// Sealer seals and opens. It is safe for concurrent use.
type Sealer struct {
	keys Keys
	opts Options
	sf   singleflight.Group

	mu       sync.Mutex
	aeads    map[string]cipher.AEAD // versions read so far (immutable)
	latest   string
	latestAt time.Time
}

// New returns a Sealer over keys. It does no I/O: the first Seal or Open
// reads the source (see Warm).
func New(keys Keys, opts Options) *Sealer {
	if opts.LatestTTL <= 0 {
		opts.LatestTTL = DefaultLatestTTL
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Sealer{keys: keys, opts: opts, aeads: map[string]cipher.AEAD{}}
}

// additionalData binds a ciphertext to its user and purpose.
func additionalData(userID string) []byte {
	return []byte("flowstudio refresh-token v1\x00" + userID)
}

// Seal encrypts plaintext for userID with the newest key and returns the
// sealed bytes (nonce then ciphertext) and the key version to store beside.
func (s *Sealer) Seal(ctx context.Context, userID string, plaintext []byte) (sealed []byte, version string, err error) {
	if userID == "" {
		return nil, "", errors.New("sealing: empty user id")
	}
	version, aead, err := s.current(ctx)
	if err != nil {
		return nil, "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, "", err
	}
	return aead.Seal(nonce, nonce, plaintext, additionalData(userID)), version, nil
}

// Open decrypts what Seal returned for the same userID and version.
func (s *Sealer) Open(ctx context.Context, userID string, sealed []byte, version string) ([]byte, error) {
	aead, err := s.version(ctx, version)
	if err != nil {
		return nil, err
	}
	n := aead.NonceSize()
	if len(sealed) < n+aead.Overhead() {
		return nil, ErrOpen
	}
	plain, err := aead.Open(nil, sealed[:n], sealed[n:], additionalData(userID))
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// Latest returns the version Seal uses now.
func (s *Sealer) Latest(ctx context.Context) (string, error) {
	v, _, err := s.current(ctx)
	return v, err
}

// Warm reads the newest key, so that the first sign-in or tool call does not
// wait for it. Call it in the background at start-up.
func (s *Sealer) Warm(ctx context.Context) error {
	_, _, err := s.current(ctx)
	return err
}

// Rotate adds a new key version and makes it the one Seal uses. Tokens sealed
// under older versions still open; re-seal them (identity.Reseal).
func (s *Sealer) Rotate(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	v, err := s.keys.Add(ctx)
	if err != nil {
		return "", fmt.Errorf("sealing: add key version: %w", err)
	}
	key, err := s.keys.Get(ctx, v)
	if err != nil {
		return "", fmt.Errorf("sealing: read new key version: %w", err)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.aeads[v] = aead
	s.latest, s.latestAt = v, s.opts.Now()
	return v, nil
}

func (s *Sealer) current(ctx context.Context) (string, cipher.AEAD, error) {
	s.mu.Lock()
	v, at := s.latest, s.latestAt
	aead := s.aeads[v]
	s.mu.Unlock()
	if v != "" && s.opts.Now().Sub(at) < s.opts.LatestTTL {
		return v, aead, nil
	}
	type result struct {
		v    string
		aead cipher.AEAD
	}
	res, err, _ := s.sf.Do("\x00latest", func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Timeout)
		defer cancel()
		nv, key, err := s.keys.Latest(ctx)
		if err != nil {
			return nil, err
		}
		if !validVersion(nv) {
			return nil, fmt.Errorf("sealing: key source returned an invalid version %q", nv)
		}
		na, err := newAEAD(key)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if existing, ok := s.aeads[nv]; ok {
			na = existing
		}
		s.aeads[nv] = na
		s.latest, s.latestAt = nv, s.opts.Now()
		return result{nv, na}, nil
	})
	if err != nil {
		if v != "" {
			return v, aead, nil // the source is out of reach: keep sealing with what we had
		}
		return "", nil, fmt.Errorf("sealing: read newest key: %w", err)
	}
	r := res.(result)
	return r.v, r.aead, nil
}

var versionPattern = pattern.MustClass(`^[0-9A-Za-z-]{1,64}$`)

func validVersion(v string) bool { return versionPattern.Match(v) }

func (s *Sealer) version(ctx context.Context, v string) (cipher.AEAD, error) {
	if !validVersion(v) {
		return nil, ErrUnknownVersion
	}
	s.mu.Lock()
	aead, ok := s.aeads[v]
	s.mu.Unlock()
	if ok {
		return aead, nil
	}
	res, err, _ := s.sf.Do(v, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Timeout)
		defer cancel()
		key, err := s.keys.Get(ctx, v)
		if err != nil {
			return nil, err
		}
		a, err := newAEAD(key)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.aeads[v] = a
		// A version we had not seen is likely a rotation by another process:
		// ask for the newest again before the next Seal.
		s.latestAt = time.Time{}
		s.mu.Unlock()
		return a, nil
	})
	if errors.Is(err, ErrUnknownVersion) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("sealing: read key version %s: %w", v, err)
	}
	return res.(cipher.AEAD), nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("sealing: key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// newKey returns KeySize random bytes.
func newKey() []byte {
	k := make([]byte, KeySize)
	rand.Read(k) // never fails (crypto/rand panics instead)
	return k
}
