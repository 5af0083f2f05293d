package beve

import (
	"encoding/binary"
	"math"
	"math/big"
	"strconv"
	"unicode/utf8"
)

// numberWidth returns the size in bytes of a number of the given kind and
// BYTE COUNT, and whether this package can read it. Brain floats use byte
// count 0 although they take two bytes (BEVE specification, "Number").
func numberWidth(kind, byteCount byte) (int, bool) {
	switch kind {
	case kindFloat:
		switch byteCount {
		case 0, 1: // bf16, f16
			return 2, true
		case 2, 3, 4: // f32, f64, f128
			return 1 << byteCount, true
		}
	case kindSigned, kindUnsigned:
		if byteCount <= 4 { // 8 to 128 bits
			return 1 << byteCount, true
		}
	}
	return 0, false
}

// appendNumber appends the JSON form of the little-endian number in b,
// whose width numberWidth has checked.
func appendNumber(dst []byte, kind, byteCount byte, b []byte) []byte {
	switch kind {
	case kindFloat:
		switch byteCount {
		case 0:
			return appendFloat(dst, float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(b))<<16)), 32)
		case 1:
			return appendFloat(dst, float64(halfToFloat32(binary.LittleEndian.Uint16(b))), 32)
		case 2:
			return appendFloat(dst, float64(math.Float32frombits(binary.LittleEndian.Uint32(b))), 32)
		case 3:
			return appendFloat(dst, math.Float64frombits(binary.LittleEndian.Uint64(b)), 64)
		default:
			return appendFloat128(dst, b)
		}
	case kindSigned:
		switch byteCount {
		case 0:
			return strconv.AppendInt(dst, int64(int8(b[0])), 10)
		case 1:
			return strconv.AppendInt(dst, int64(int16(binary.LittleEndian.Uint16(b))), 10)
		case 2:
			return strconv.AppendInt(dst, int64(int32(binary.LittleEndian.Uint32(b))), 10)
		case 3:
			return strconv.AppendInt(dst, int64(binary.LittleEndian.Uint64(b)), 10)
		default:
			return appendInt128(dst, b, true)
		}
	default:
		switch byteCount {
		case 0:
			return strconv.AppendUint(dst, uint64(b[0]), 10)
		case 1:
			return strconv.AppendUint(dst, uint64(binary.LittleEndian.Uint16(b)), 10)
		case 2:
			return strconv.AppendUint(dst, uint64(binary.LittleEndian.Uint32(b)), 10)
		case 3:
			return strconv.AppendUint(dst, binary.LittleEndian.Uint64(b), 10)
		default:
			return appendInt128(dst, b, false)
		}
	}
}

// appendFloat formats f as encoding/json does: the shortest form that reads
// back to the same value of the given bit size, with an exponent only for
// very large or small magnitudes (1e9 is 1000000000, as in the JSON repe-rs
// gives for Glaze's BEVE fixtures). JSON has no NaN or infinity: write null.
func appendFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) ||
			bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if format == 'e' {
		// Shorten e-09 to e-9, as encoding/json does.
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// halfToFloat32 widens an IEEE 754 binary16 value; every half is exactly a
// float32.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch exp {
	case 0: // zero or subnormal: mant × 2^-24
		f := float32(mant) / (1 << 24)
		if sign != 0 {
			f = -f
		}
		return f
	case 0x1f: // infinity or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// appendFloat128 writes an IEEE 754 binary128 value exactly, in the shortest
// decimal that reads back to the same 113-bit value.
func appendFloat128(dst []byte, b []byte) []byte {
	lo := binary.LittleEndian.Uint64(b)
	hi := binary.LittleEndian.Uint64(b[8:])
	neg := hi>>63 != 0
	exp := int(hi>>48) & 0x7fff
	if exp == 0x7fff {
		return append(dst, "null"...)
	}
	mant := new(big.Int).SetUint64(hi & (1<<48 - 1))
	mant.Lsh(mant, 64).Or(mant, new(big.Int).SetUint64(lo))
	if exp == 0 {
		exp = 1 // subnormal: no implicit bit
	} else {
		mant.SetBit(mant, 112, 1)
	}
	f := new(big.Float).SetPrec(113).SetInt(mant)
	f.SetMantExp(f, exp-16383-112)
	if neg {
		f.Neg(f)
	}
	return f.Append(dst, 'g', -1)
}

// appendInt128 writes a little-endian 128-bit integer in decimal.
func appendInt128(dst []byte, b []byte, signed bool) []byte {
	lo := binary.LittleEndian.Uint64(b)
	hi := binary.LittleEndian.Uint64(b[8:])
	switch {
	case hi == 0:
		return strconv.AppendUint(dst, lo, 10)
	case signed && hi == math.MaxUint64 && lo>>63 != 0:
		return strconv.AppendInt(dst, int64(lo), 10)
	}
	v := new(big.Int).SetUint64(hi)
	v.Lsh(v, 64).Or(v, new(big.Int).SetUint64(lo))
	if signed && hi>>63 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), 128))
	}
	return v.Append(dst, 10)
}

// appendString writes s as a JSON string the way encoding/json does without
// HTML escaping: invalid UTF-8 becomes U+FFFD, control characters and the
// line separators U+2028/U+2029 are escaped.
func appendString(dst []byte, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
