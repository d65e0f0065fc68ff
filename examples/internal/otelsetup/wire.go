package otelsetup

import (
	"math"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	"google.golang.org/protobuf/encoding/protowire"
)

// The OTLP messages are written field by field with protowire, from the
// SDK's own data: the generated OTLP types and the protobuf runtime would
// link packages that do work at init into every program. Field numbers are
// those of opentelemetry-proto (common/v1, resource/v1, trace/v1,
// metrics/v1 and the collector services). As proto3 does, a zero scalar is
// left out (a decoder reads an absent field as zero); a field of a oneof or
// an optional field is written whenever it is set, zero or not.

// beginMessage appends the tag of the length-delimited field num and room
// for a one-byte length; endMessage, given what beginMessage returned, sets
// the length of what was appended since, moving it when the length takes
// more than one byte.
func beginMessage(b []byte, num protowire.Number) ([]byte, int) {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return append(b, 0), len(b)
}

func endMessage(b []byte, at int) []byte {
	n := len(b) - at - 1
	if k := protowire.SizeVarint(uint64(n)); k > 1 {
		b = append(b, make([]byte, k-1)...)
		copy(b[at+k:], b[at+1:at+1+n])
	}
	protowire.AppendVarint(b[at:at], uint64(n)) // writes in place: the room is there
	return b
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// appendVarint writes a uint32, uint64, int64, bool or enum field.
func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// appendSint32 writes a sint32 field (zigzag).
func appendSint32(b []byte, num protowire.Number, v int32) []byte {
	return appendVarint(b, num, protowire.EncodeZigZag(int64(v)))
}

// appendFixed64 writes a fixed64 or sfixed64 field.
func appendFixed64(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return setFixed64(b, num, v)
}

// setFixed64 writes a fixed64 field of a oneof or an optional one: zero
// too.
func setFixed64(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, v)
}

func appendFixed32(b []byte, num protowire.Number, v uint32) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, v)
}

// appendDouble writes a double field; -0 is not zero, as in proto3.
func appendDouble(b []byte, num protowire.Number, v float64) []byte {
	return appendFixed64(b, num, math.Float64bits(v))
}

// setDouble writes a double field of a oneof or an optional one: zero too.
func setDouble(b []byte, num protowire.Number, v float64) []byte {
	return setFixed64(b, num, math.Float64bits(v))
}

// appendPackedFixed64 writes a packed repeated fixed64 field.
func appendPackedFixed64(b []byte, num protowire.Number, vs []uint64) []byte {
	if len(vs) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(8*len(vs)))
	for _, v := range vs {
		b = protowire.AppendFixed64(b, v)
	}
	return b
}

// appendPackedDouble writes a packed repeated double field.
func appendPackedDouble(b []byte, num protowire.Number, vs []float64) []byte {
	if len(vs) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(8*len(vs)))
	for _, v := range vs {
		b = protowire.AppendFixed64(b, math.Float64bits(v))
	}
	return b
}

// appendPackedVarint writes a packed repeated uint64 field.
func appendPackedVarint(b []byte, num protowire.Number, vs []uint64) []byte {
	if len(vs) == 0 {
		return b
	}
	n := 0
	for _, v := range vs {
		n += protowire.SizeVarint(v)
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	for _, v := range vs {
		b = protowire.AppendVarint(b, v)
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
func appendResource(b []byte, num protowire.Number, r *resource.Resource) []byte {
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
func appendScope(b []byte, num protowire.Number, name, version string, attrs attribute.Set) []byte {
	b, at := beginMessage(b, num)
	b = appendString(b, 1, name)
	b = appendString(b, 2, version)
	for it := attrs.Iter(); it.Next(); {
		b = appendKeyValue(b, 3, it.Attribute())
	}
	return endMessage(b, at)
}

// appendKeyValues writes each of kvs as the repeated KeyValue field num.
func appendKeyValues(b []byte, num protowire.Number, kvs []attribute.KeyValue) []byte {
	for _, kv := range kvs {
		b = appendKeyValue(b, num, kv)
	}
	return b
}

// appendAttributeSet writes each attribute of s as the repeated KeyValue
// field num.
func appendAttributeSet(b []byte, num protowire.Number, s attribute.Set) []byte {
	for it := s.Iter(); it.Next(); {
		b = appendKeyValue(b, num, it.Attribute())
	}
	return b
}

// appendKeyValue writes the KeyValue field num {string key = 1; AnyValue
// value = 2}; the value is always set, empty for an EMPTY attribute value.
func appendKeyValue(b []byte, num protowire.Number, kv attribute.KeyValue) []byte {
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
func appendAnyValue(b []byte, num protowire.Number, v attribute.Value) []byte {
	b, at := beginMessage(b, num)
	switch v.Type() {
	case attribute.EMPTY:
	case attribute.STRING:
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, v.AsString())
	case attribute.BOOL:
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeBool(v.AsBool()))
	case attribute.INT64:
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(v.AsInt64()))
	case attribute.FLOAT64:
		b = setDouble(b, 4, v.AsFloat64())
	case attribute.BYTESLICE:
		b = protowire.AppendTag(b, 7, protowire.BytesType)
		b = protowire.AppendBytes(b, v.AsByteSlice())
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
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, "INVALID")
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
