package beve

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
)

// AppendBEVE appends to dst the BEVE encoding of the single JSON value in
// text and returns the extended buffer. JSON carries no types beyond its
// own, so the encoding picks them the way Glaze writes the matching C++
// types, which Glaze's reader accepts with its default conversions:
//
//   - integers as i64 (u64 above the int64 range), other numbers as f64;
//   - object keys as strings, in their JSON order;
//   - arrays of only integers, only numbers, only strings or only booleans
//     as typed arrays (i64[], u64[], f64[], string[], bool[]); any other
//     array, and the empty array, as a generic array.
//
// A server that wants other widths (an f32, a u8[]) may reject the body;
// send JSON to such a server. On error dst is returned unchanged.
func AppendBEVE(dst, text []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	v, err := readJSON(dec, 0)
	if err != nil {
		return dst, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return dst, errors.New("beve: JSON text holds more than one value")
	}
	return v.append(dst), nil
}

func jsonError(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return errors.New("beve: reading JSON: " + err.Error())
}

// jsonValue is one JSON value with its numbers classified, kept in order.
type jsonValue struct {
	kind  byte // 'n' null, 't' true, 'f' false, 'i' int64, 'u' uint64, 'd' float64, 's' string, 'a' array, 'o' object
	num   uint64
	str   string
	elems []jsonValue
	keys  []string
}

func readJSON(dec *json.Decoder, depth int) (jsonValue, error) {
	if depth > MaxDepth {
		return jsonValue{}, errors.New("values nested deeper than " + strconv.Itoa(MaxDepth))
	}
	tok, err := dec.Token()
	if err != nil {
		return jsonValue{}, err
	}
	switch t := tok.(type) {
	case nil:
		return jsonValue{kind: 'n'}, nil
	case bool:
		if t {
			return jsonValue{kind: 't'}, nil
		}
		return jsonValue{kind: 'f'}, nil
	case string:
		return jsonValue{kind: 's', str: t}, nil
	case json.Number:
		return classifyNumber(string(t))
	case json.Delim:
		v := jsonValue{kind: 'a'}
		if t == '{' {
			v.kind = 'o'
		}
		for dec.More() {
			if v.kind == 'o' {
				k, err := dec.Token()
				if err != nil {
					return jsonValue{}, err
				}
				v.keys = append(v.keys, k.(string)) // the decoder only returns strings as keys
			}
			e, err := readJSON(dec, depth+1)
			if err != nil {
				return jsonValue{}, err
			}
			v.elems = append(v.elems, e)
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return jsonValue{}, err
		}
		return v, nil
	}
	return jsonValue{}, errors.New("unexpected JSON token")
}

func classifyNumber(s string) (jsonValue, error) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return jsonValue{kind: 'i', num: uint64(i)}, nil
	}
	if u, err := strconv.ParseUint(s, 10, 64); err == nil {
		return jsonValue{kind: 'u', num: u}, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return jsonValue{}, errors.New("number " + s + " does not fit a float64")
	}
	return jsonValue{kind: 'd', num: math.Float64bits(f)}, nil
}

// Headers the encoder writes.
const (
	tagI64      = 0x69
	tagU64      = 0x71
	tagF64      = 0x61
	tagI64Array = 0x6c
	tagU64Array = 0x74
	tagF64Array = 0x64
)

func (v *jsonValue) append(dst []byte) []byte {
	switch v.kind {
	case 'n':
		return append(dst, tagNull)
	case 't':
		return append(dst, tagTrue)
	case 'f':
		return append(dst, tagFalse)
	case 'i':
		return binary.LittleEndian.AppendUint64(append(dst, tagI64), v.num)
	case 'u':
		return binary.LittleEndian.AppendUint64(append(dst, tagU64), v.num)
	case 'd':
		return binary.LittleEndian.AppendUint64(append(dst, tagF64), v.num)
	case 's':
		return appendSizedString(append(dst, tagString), v.str)
	case 'o':
		dst = appendSize(append(dst, tagObject), len(v.elems))
		for i := range v.elems {
			dst = appendSizedString(dst, v.keys[i])
			dst = v.elems[i].append(dst)
		}
		return dst
	}
	return v.appendArray(dst)
}

// appendArray writes an array as a typed array when its elements allow it.
func (v *jsonValue) appendArray(dst []byte) []byte {
	tag := v.typedArrayTag()
	if tag == tagGenericArray {
		dst = appendSize(append(dst, tagGenericArray), len(v.elems))
		for i := range v.elems {
			dst = v.elems[i].append(dst)
		}
		return dst
	}
	dst = appendSize(append(dst, tag), len(v.elems))
	switch tag {
	case tagStringArray:
		for _, e := range v.elems {
			dst = appendSizedString(dst, e.str)
		}
	case tagBoolArray:
		var b byte
		for i, e := range v.elems {
			if e.kind == 't' {
				b |= 1 << (i % 8)
			}
			if i%8 == 7 || i == len(v.elems)-1 {
				dst = append(dst, b)
				b = 0
			}
		}
	case tagF64Array:
		for _, e := range v.elems {
			bits := e.num
			switch e.kind {
			case 'i':
				bits = math.Float64bits(float64(int64(e.num)))
			case 'u':
				bits = math.Float64bits(float64(e.num))
			}
			dst = binary.LittleEndian.AppendUint64(dst, bits)
		}
	default: // i64[] and u64[]: the bits are the same
		for _, e := range v.elems {
			dst = binary.LittleEndian.AppendUint64(dst, e.num)
		}
	}
	return dst
}

// typedArrayTag picks the typed array that holds every element exactly, or
// tagGenericArray.
func (v *jsonValue) typedArrayTag() byte {
	if len(v.elems) == 0 {
		return tagGenericArray
	}
	var ints, uints, floats, strs, bools, inexact int
	for _, e := range v.elems {
		switch e.kind {
		case 'i':
			ints++
			if n := int64(e.num); !exactInt(n) {
				inexact++
			}
		case 'u':
			uints++
			if f := float64(e.num); f >= 1<<64 || uint64(f) != e.num {
				inexact++
			}
		case 'd':
			floats++
		case 's':
			strs++
		case 't', 'f':
			bools++
		}
	}
	n := len(v.elems)
	switch {
	case ints == n:
		return tagI64Array
	case uints > 0 && ints+uints == n && v.nonNegative():
		return tagU64Array
	case ints+uints+floats == n && floats > 0 && inexact == 0:
		return tagF64Array
	case strs == n:
		return tagStringArray
	case bools == n:
		return tagBoolArray
	}
	return tagGenericArray
}

// exactInt reports whether a float64 holds n exactly.
func exactInt(n int64) bool {
	f := float64(n)
	return f >= -1<<63 && f < 1<<63 && int64(f) == n
}

func (v *jsonValue) nonNegative() bool {
	for _, e := range v.elems {
		if e.kind == 'i' && int64(e.num) < 0 {
			return false
		}
	}
	return true
}

func appendSizedString(dst []byte, s string) []byte {
	return append(appendSize(dst, len(s)), s...)
}

// appendSize writes n as a compressed unsigned integer (SIZE), in the
// fewest bytes, as Glaze does.
func appendSize(dst []byte, n int) []byte {
	v := uint64(n)
	switch {
	case v < 1<<6:
		return append(dst, byte(v<<2))
	case v < 1<<14:
		return binary.LittleEndian.AppendUint16(dst, uint16(v<<2|1))
	case v < 1<<30:
		return binary.LittleEndian.AppendUint32(dst, uint32(v<<2|2))
	}
	return binary.LittleEndian.AppendUint64(dst, v<<2|3)
}
