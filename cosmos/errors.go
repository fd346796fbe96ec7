package cosmos

import (
	"errors"
	"fmt"
)

// Errors every Store operation returns, whichever backend is behind it.
// Test with errors.Is; the wrapped message names the operation and the item.
var (
	ErrNotFound           = errors.New("not found")
	ErrConflict           = errors.New("already exists")      // HTTP 409
	ErrPreconditionFailed = errors.New("etag does not match") // HTTP 412: another writer got in first
	ErrThrottled          = errors.New("throttled")           // HTTP 429 after the SDK's bounded retries
	ErrUnavailable        = errors.New("store unavailable")   // down, timing out, or refusing our credentials
	ErrInvalid            = errors.New("invalid request")     // a bad record, id, filter or continuation token
)

// CorruptRecordError reports a stored document that cannot be decoded into
// its record type or breaks the record's rules. Such records are reported,
// never skipped: an operator repairs or deletes the item named here.
type CorruptRecordError struct {
	Container string
	ID        string
	Err       error
}

func (e *CorruptRecordError) Error() string {
	return fmt.Sprintf("cosmos: corrupt record %s/%s: %v", e.Container, e.ID, e.Err)
}

func (e *CorruptRecordError) Unwrap() error { return e.Err }
