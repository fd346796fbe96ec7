package rpc

import (
	"fmt"
	"net/http"

	"github.com/sourcegraph/jsonrpc2"
)

// Bounds on one JSON-RPC batch (2025-03-26 only): however the key is tiered, one POST
// may start at most MaxBatch calls and send back about MaxBatchResponseBytes.
const (
	// DefaultMaxBatch is Options.MaxBatch when unset.
	DefaultMaxBatch = 50
	// DefaultMaxBatchResponseBytes is Options.MaxBatchResponseBytes when unset.
	DefaultMaxBatchResponseBytes = 4 << 20
)

// Codes for batch entries that were not run (implementation-defined server errors).
const (
	// CodeBatchResponseTooLarge: the batch's answers reached MaxBatchResponseBytes
	// before this entry ran; the client may send it again in another request.
	CodeBatchResponseTooLarge = -32010
	// CodeBatchCancelled: the request ended (the client went away) before this entry ran.
	CodeBatchCancelled = -32011
	// CodeTooManyRequests goes with HTTP 429: the caller has too many requests in
	// flight; it may send this one again once one of them finishes.
	CodeTooManyRequests = -32012
)

func errBatchTooLong(max int) *jsonrpc2.Error {
	return NewError(CodeInvalidRequest, fmt.Sprintf("Invalid Request: a batch may hold at most %d messages", max), nil)
}

func errBatchResponseTooLarge(max int) *jsonrpc2.Error {
	return NewError(CodeBatchResponseTooLarge, fmt.Sprintf(
		"Response too large: this batch's answers reached %d bytes; send the rest again in another request", max), nil)
}

var errBatchCancelled = NewError(CodeBatchCancelled,
	"Request cancelled: the request ended before this entry ran; send it again in another request", nil)

// batchLen counts the top-level elements of a JSON array without decoding them, and
// stops counting once it passes limit. It is exact for valid JSON; for anything else
// its count means nothing, and the decode that follows reports the parse error.
func batchLen(body []byte, limit int) int {
	n, depth := 0, 0
	inString, escaped, expect := false, false, false
	for _, c := range body {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		if expect && depth == 1 && c != ']' {
			expect = false
			if n++; n > limit {
				return n
			}
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			expect = depth == 1
		case ']', '}':
			depth--
		case ',':
			expect = depth == 1
		}
	}
	return n
}

// batchWriter streams a batch's answers into the response as they are produced, so
// memory holds one answer at a time, not the whole array. The status and the opening
// bracket go out with the first answer: a batch that produces none stays a 202.
type batchWriter struct {
	w       http.ResponseWriter
	written int // bytes of the JSON array so far
	started bool
}

var (
	openBracket  = []byte{'['}
	comma        = []byte{','}
	closeBracket = []byte{']'}
)

func (b *batchWriter) add(entry []byte) {
	sep := comma
	if !b.started {
		b.started = true
		b.w.Header().Set("Content-Type", "application/json")
		b.w.WriteHeader(http.StatusOK)
		sep = openBracket
	}
	// A failed write means the client is gone; the request's context says so too, and
	// the batch loop stops on that.
	_, _ = b.w.Write(sep)
	_, _ = b.w.Write(entry)
	b.written += len(sep) + len(entry)
}

func (b *batchWriter) close() {
	if b.started {
		_, _ = b.w.Write(closeBracket)
	}
}
