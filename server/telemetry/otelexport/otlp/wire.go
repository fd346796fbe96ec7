package otlp

import (
	"encoding/binary"
	"errors"
	"math"
)

// The protobuf wire format, as much of it as OTLP metrics need: varints, fixed
// 64-bit values, length-delimited fields. encoding/binary does the work; the
// protobuf module's protowire would do the same but its error package reads
// the executable at start-up to seed a random prefix.

const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

func appendTag(b []byte, field, wire int) []byte {
	return binary.AppendUvarint(b, uint64(field)<<3|uint64(wire))
}

func appendVarintField(b []byte, field int, v uint64) []byte {
	return binary.AppendUvarint(appendTag(b, field, wireVarint), v)
}

func appendFixed64Field(b []byte, field int, v uint64) []byte {
	return binary.LittleEndian.AppendUint64(appendTag(b, field, wireFixed64), v)
}

func appendDoubleField(b []byte, field int, v float64) []byte {
	return appendFixed64Field(b, field, math.Float64bits(v))
}

func appendBytesField(b []byte, field int, v []byte) []byte {
	b = binary.AppendUvarint(appendTag(b, field, wireBytes), uint64(len(v)))
	return append(b, v...)
}

func appendStringField(b []byte, field int, v string) []byte {
	b = binary.AppendUvarint(appendTag(b, field, wireBytes), uint64(len(v)))
	return append(b, v...)
}

// appendMessage appends field as a nested message that fill appends: fill
// writes at the end of b, then the content moves right to make room for its
// length (copy is a memmove), so nested messages need no buffers of their own.
func appendMessage(b []byte, field int, fill func([]byte) []byte) []byte {
	b = appendTag(b, field, wireBytes)
	mark := len(b)
	b = fill(b)
	n := len(b) - mark
	var size [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(size[:], uint64(n))
	b = append(b, size[:k]...)
	copy(b[mark+k:], b[mark:mark+n])
	copy(b[mark:], size[:k])
	return b
}

var errMalformed = errors.New("malformed protobuf")

// field is one decoded field: its number and wire type, with the varint or
// fixed value in n or the length-delimited bytes in data.
type field struct {
	num  int
	wire int
	n    uint64
	data []byte
}

// fields calls fn for each field of a message, in order.
func fields(b []byte, fn func(f field) error) error {
	for len(b) > 0 {
		tag, k := binary.Uvarint(b)
		if k <= 0 || tag>>3 == 0 || tag>>3 > math.MaxInt32 {
			return errMalformed
		}
		b = b[k:]
		f := field{num: int(tag >> 3), wire: int(tag & 7)}
		switch f.wire {
		case wireVarint:
			f.n, k = binary.Uvarint(b)
			if k <= 0 {
				return errMalformed
			}
			b = b[k:]
		case wireFixed64:
			if len(b) < 8 {
				return errMalformed
			}
			f.n, b = binary.LittleEndian.Uint64(b), b[8:]
		case wireFixed32:
			if len(b) < 4 {
				return errMalformed
			}
			f.n, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		case wireBytes:
			size, k := binary.Uvarint(b)
			if k <= 0 || size > uint64(len(b)-k) {
				return errMalformed
			}
			f.data, b = b[k:k+int(size)], b[k+int(size):]
		default:
			return errMalformed // groups: nothing OTLP or google.rpc sends
		}
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}
