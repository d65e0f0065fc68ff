package otelsetup

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protowire"
)

// protowireFields is fields written with protowire, the oracle the package's
// own decoding is checked against. protowire.ConsumeTag takes field numbers
// up to 2^31-1; fields, as the protobuf encoding defines them and as
// proto.Unmarshal does, stops above 2^29-1.
func protowireFields(b []byte) []pbField {
	var out []pbField
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber {
			return out
		}
		b = b[n:]
		f := pbField{num: fieldNum(num), typ: wireType(typ)}
		switch typ {
		case protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return out
			}
			f.varint, f.val, n = v, b[:m], m
		case protowire.Fixed32Type, protowire.Fixed64Type:
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return out
			}
			f.val, n = b[:m], m
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return out
			}
			f.val, n = v, m
		default:
			return out
		}
		out = append(out, f)
		b = b[n:]
	}
	return out
}

func collect(b []byte) []pbField {
	var out []pbField
	for f := range fields(b) {
		out = append(out, f)
	}
	return out
}

// wireSeeds are messages written with protowire: every wire type, large
// field numbers and lengths, and truncated or malformed ends.
func wireSeeds() [][]byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, math.MaxUint64)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, strings.Repeat("x", 300))
	b = protowire.AppendTag(b, 3, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, 7)
	b = protowire.AppendTag(b, protowire.MaxValidNumber, protowire.Fixed32Type)
	b = protowire.AppendFixed32(b, 9)
	full := b
	group := protowire.AppendTag(append([]byte(nil), full...), 4, protowire.StartGroupType)
	seeds := [][]byte{nil, full, group, {0x00}, {0x08}, {0x12, 0x05, 'a'}, {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}}
	for i := range full {
		seeds = append(seeds, full[:i])
	}
	return seeds
}

func TestFieldsAgreesWithProtowire(t *testing.T) {
	for i, b := range wireSeeds() {
		if diff := cmp.Diff(protowireFields(b), collect(b), cmp.AllowUnexported(pbField{})); diff != "" {
			t.Errorf("seed %d (% x): fields (-protowire +ours):\n%s", i, b, diff)
		}
	}
}

func FuzzFields(f *testing.F) {
	for _, b := range wireSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if diff := cmp.Diff(protowireFields(b), collect(b), cmp.AllowUnexported(pbField{})); diff != "" {
			t.Errorf("fields(% x) (-protowire +ours):\n%s", b, diff)
		}
	})
}

func TestAppendAgreesWithProtowire(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 16383, 16384, math.MaxUint32, math.MaxUint64} {
		if got, want := sizeVarint(v), protowire.SizeVarint(v); got != want {
			t.Errorf("sizeVarint(%d) = %d, protowire says %d", v, got, want)
		}
	}
	for _, v := range []int64{0, 1, -1, math.MaxInt64, math.MinInt64, math.MinInt32} {
		if got, want := zigzag(v), protowire.EncodeZigZag(v); got != want {
			t.Errorf("zigzag(%d) = %d, protowire says %d", v, got, want)
		}
	}
	for _, n := range []int{0, 1, 127, 128, 300, 20000} {
		s := strings.Repeat("y", n)
		want := protowire.AppendString(protowire.AppendTag(nil, 5, protowire.BytesType), s)
		b, at := beginMessage(nil, 5)
		b = endMessage(append(b, s...), at)
		if diff := cmp.Diff(want, b); diff != "" {
			t.Errorf("message of %d bytes (-protowire +ours):\n%s", n, diff)
		}
		if diff := cmp.Diff(want, appendString(nil, 5, s)); n > 0 && diff != "" {
			t.Errorf("appendString of %d bytes (-protowire +ours):\n%s", n, diff)
		}
	}
}
