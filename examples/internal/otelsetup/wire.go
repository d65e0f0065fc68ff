package otelsetup

import (
	"encoding/binary"
	"math"
	"math/bits"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
)

// The OTLP messages are written field by field, from the SDK's own data,
// with the few protobuf wire primitives below: the generated OTLP types
// and the protobuf runtime would link packages that do work at init into
// every program (even google.golang.org/protobuf's protowire reads the
// executable at init). Field numbers are those of opentelemetry-proto
// (common/v1, resource/v1, trace/v1, metrics/v1 and the collector
// services). As proto3 does, a zero scalar is left out (a decoder reads an
// absent field as zero); a field of a oneof or an optional field is written
// whenever it is set, zero or not.

// fieldNum is a protobuf field number, 1 to 2^29-1.
type fieldNum int32

// wireType is a protobuf wire type. The group types (3 and 4), deprecated
// and unused by OTLP, are not among them: fields stops at one.
type wireType int8

const (
	varintType  wireType = 0
	fixed64Type wireType = 1
	bytesType   wireType = 2
	fixed32Type wireType = 5
)

// maxFieldNum is the largest protobuf field number.
const maxFieldNum = 1<<29 - 1

// appendTag appends the key of field num of wire type typ.
func appendTag(b []byte, num fieldNum, typ wireType) []byte {
	return binary.AppendUvarint(b, uint64(num)<<3|uint64(typ))
}

// setLen writes the length-delimited field num: its tag, v's length, then
// v; empty too, as a field of a oneof is.
func setLen[T string | []byte](b []byte, num fieldNum, v T) []byte {
	b = appendTag(b, num, bytesType)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// setVarint writes the varint field num, zero too, as a field of a oneof
// is.
func setVarint(b []byte, num fieldNum, v uint64) []byte {
	b = appendTag(b, num, varintType)
	return binary.AppendUvarint(b, v)
}

// sizeVarint is the number of bytes binary.AppendUvarint writes for v.
func sizeVarint(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

// zigzag is the sint32 and sint64 form of v.
func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

// boolVarint is the varint form of a bool.
func boolVarint(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

// beginMessage appends the tag of the length-delimited field num and room
// for a one-byte length; endMessage, given what beginMessage returned, sets
// the length of what was appended since, moving it when the length takes
// more than one byte.
func beginMessage(b []byte, num fieldNum) ([]byte, int) {
	b = appendTag(b, num, bytesType)
	return append(b, 0), len(b)
}

func endMessage(b []byte, at int) []byte {
	n := len(b) - at - 1
	if k := sizeVarint(uint64(n)); k > 1 {
		b = append(b, make([]byte, k-1)...)
		copy(b[at+k:], b[at+1:at+1+n])
	}
	binary.AppendUvarint(b[at:at], uint64(n)) // writes in place: the room is there
	return b
}

func appendString(b []byte, num fieldNum, s string) []byte {
	if s == "" {
		return b
	}
	return setLen(b, num, s)
}

func appendBytes(b []byte, num fieldNum, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return setLen(b, num, v)
}

// appendVarint writes a uint32, uint64, int64, bool or enum field.
func appendVarint(b []byte, num fieldNum, v uint64) []byte {
	if v == 0 {
		return b
	}
	return setVarint(b, num, v)
}

// appendSint32 writes a sint32 field (zigzag).
func appendSint32(b []byte, num fieldNum, v int32) []byte {
	return appendVarint(b, num, zigzag(int64(v)))
}

// appendFixed64 writes a fixed64 or sfixed64 field.
func appendFixed64(b []byte, num fieldNum, v uint64) []byte {
	if v == 0 {
		return b
	}
	return setFixed64(b, num, v)
}

// setFixed64 writes a fixed64 field of a oneof or an optional one: zero
// too.
func setFixed64(b []byte, num fieldNum, v uint64) []byte {
	b = appendTag(b, num, fixed64Type)
	return binary.LittleEndian.AppendUint64(b, v)
}

func appendFixed32(b []byte, num fieldNum, v uint32) []byte {
	if v == 0 {
		return b
	}
	b = appendTag(b, num, fixed32Type)
	return binary.LittleEndian.AppendUint32(b, v)
}

// appendDouble writes a double field; -0 is not zero, as in proto3.
func appendDouble(b []byte, num fieldNum, v float64) []byte {
	return appendFixed64(b, num, math.Float64bits(v))
}

// setDouble writes a double field of a oneof or an optional one: zero too.
func setDouble(b []byte, num fieldNum, v float64) []byte {
	return setFixed64(b, num, math.Float64bits(v))
}

// appendPackedFixed64 writes a packed repeated fixed64 field.
func appendPackedFixed64(b []byte, num fieldNum, vs []uint64) []byte {
	if len(vs) == 0 {
		return b
	}
	b = appendTag(b, num, bytesType)
	b = binary.AppendUvarint(b, uint64(8*len(vs)))
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
}

// appendPackedDouble writes a packed repeated double field.
func appendPackedDouble(b []byte, num fieldNum, vs []float64) []byte {
	if len(vs) == 0 {
		return b
	}
	b = appendTag(b, num, bytesType)
	b = binary.AppendUvarint(b, uint64(8*len(vs)))
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return b
}

// appendPackedVarint writes a packed repeated uint64 field.
func appendPackedVarint(b []byte, num fieldNum, vs []uint64) []byte {
	if len(vs) == 0 {
		return b
	}
	n := 0
	for _, v := range vs {
		n += sizeVarint(v)
	}
	b = appendTag(b, num, bytesType)
	b = binary.AppendUvarint(b, uint64(n))
	for _, v := range vs {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

// clampUint32 is a count for a uint32 field: negative is 0, too large is
// the largest.
func clampUint32(n int) uint64 {
	return uint64(min(max(n, 0), math.MaxUint32))
}

// unixNano is t in OTLP's form, 0 for the zero time (unset) and any time
// before 1970.
func unixNano(t time.Time) uint64 {
	if t.IsZero() || t.Before(time.Unix(0, 0)) {
		return 0
	}
	return uint64(t.UnixNano())
}

// appendResource writes the Resource field num {repeated KeyValue
// attributes = 1}; nothing for a nil resource.
func appendResource(b []byte, num fieldNum, r *resource.Resource) []byte {
	if r == nil {
		return b
	}
	b, at := beginMessage(b, num)
	for it := r.Iter(); it.Next(); {
		b = appendKeyValue(b, 1, it.Attribute())
	}
	return endMessage(b, at)
}

// appendScope writes the InstrumentationScope field num {string name = 1;
// string version = 2; repeated KeyValue attributes = 3}.
func appendScope(b []byte, num fieldNum, name, version string, attrs attribute.Set) []byte {
	b, at := beginMessage(b, num)
	b = appendString(b, 1, name)
	b = appendString(b, 2, version)
	for it := attrs.Iter(); it.Next(); {
		b = appendKeyValue(b, 3, it.Attribute())
	}
	return endMessage(b, at)
}

// appendKeyValues writes each of kvs as the repeated KeyValue field num.
func appendKeyValues(b []byte, num fieldNum, kvs []attribute.KeyValue) []byte {
	for _, kv := range kvs {
		b = appendKeyValue(b, num, kv)
	}
	return b
}

// appendAttributeSet writes each attribute of s as the repeated KeyValue
// field num.
func appendAttributeSet(b []byte, num fieldNum, s attribute.Set) []byte {
	for it := s.Iter(); it.Next(); {
		b = appendKeyValue(b, num, it.Attribute())
	}
	return b
}

// appendKeyValue writes the KeyValue field num {string key = 1; AnyValue
// value = 2}; the value is always set, empty for an EMPTY attribute value.
func appendKeyValue(b []byte, num fieldNum, kv attribute.KeyValue) []byte {
	b, at := beginMessage(b, num)
	b = appendString(b, 1, string(kv.Key))
	b = appendAnyValue(b, 2, kv.Value)
	return endMessage(b, at)
}

// appendAnyValue writes the AnyValue field num, a oneof of string_value = 1,
// bool_value = 2, int_value = 3, double_value = 4, array_value = 5
// (ArrayValue {repeated AnyValue values = 1}), kvlist_value = 6
// (KeyValueList {repeated KeyValue values = 1}) and bytes_value = 7. Every
// attribute.Type is written; an EMPTY value is an AnyValue with none set,
// and a type this code does not know (a later SDK's) is the string
// "INVALID", as the OpenTelemetry exporters write it.
func appendAnyValue(b []byte, num fieldNum, v attribute.Value) []byte {
	b, at := beginMessage(b, num)
	switch v.Type() {
	case attribute.EMPTY:
	case attribute.STRING:
		b = setLen(b, 1, v.AsString())
	case attribute.BOOL:
		b = setVarint(b, 2, boolVarint(v.AsBool()))
	case attribute.INT64:
		b = setVarint(b, 3, uint64(v.AsInt64()))
	case attribute.FLOAT64:
		b = setDouble(b, 4, v.AsFloat64())
	case attribute.BYTESLICE:
		b = setLen(b, 7, v.AsByteSlice())
	case attribute.BOOLSLICE:
		b = appendArray(b, v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		b = appendArray(b, v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		b = appendArray(b, v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.STRINGSLICE:
		b = appendArray(b, v.AsStringSlice(), attribute.StringValue)
	case attribute.SLICE:
		b = appendArray(b, v.AsSlice(), func(v attribute.Value) attribute.Value { return v })
	case attribute.MAP:
		var mat int
		b, mat = beginMessage(b, 6)
		b = appendKeyValues(b, 1, v.AsMap())
		b = endMessage(b, mat)
	default:
		b = setLen(b, 1, "INVALID")
	}
	return endMessage(b, at)
}

// appendArray writes array_value = 5 of an AnyValue: each of vs, made a
// Value by value.
func appendArray[T any](b []byte, vs []T, value func(T) attribute.Value) []byte {
	b, at := beginMessage(b, 5)
	for _, v := range vs {
		b = appendAnyValue(b, 1, value(v))
	}
	return endMessage(b, at)
}
