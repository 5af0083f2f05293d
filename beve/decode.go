package beve

import (
	"encoding/binary"
	"math"
	"strconv"
)

// MaxDepth is how deeply objects, arrays and extensions may nest before
// AppendJSON gives up, so that a hostile input cannot exhaust the stack.
const MaxDepth = 256

// Types, the low three bits of a header byte.
const (
	typeNullBool     = 0
	typeNumber       = 1
	typeString       = 2
	typeObject       = 3
	typeTypedArray   = 4
	typeGenericArray = 5
	typeExtension    = 6
)

// Number kinds, bits 3–4 of a number, object or typed-array header.
const (
	kindFloat    = 0
	kindSigned   = 1
	kindUnsigned = 2
	kindOther    = 3 // typed arrays only: bool, string or aligned arrays
)

// Headers and extension numbers with a fixed meaning.
const (
	tagNull          = 0x00
	tagFalse         = 0x08
	tagTrue          = 0x18
	tagString        = 0x02
	tagObject        = 0x03
	tagBoolArray     = 0x1c
	tagStringArray   = 0x3c
	tagAlignedArray  = 0x5c
	tagGenericArray  = 0x05
	tagDelimiter     = 0x06
	extTypeTag       = 1
	extMatrix        = 2
	extComplex       = 3
	complexArrayFlag = 1
	matrixLayoutLeft = 1
)

// AppendJSON appends to dst the compact JSON text of the BEVE values in src
// and returns the extended buffer. Several values (with or without BEVE
// delimiters between them) become one JSON document per line, as in
// Glaze's beve_to_json. On error dst is returned unchanged with a
// *SyntaxError.
func AppendJSON(dst, src []byte) ([]byte, error) {
	start := len(dst)
	if len(src) == 0 {
		return dst, &SyntaxError{Msg: "no value"}
	}
	d := decoder{src: src}
	needSep := false
	var err error
	for d.pos < len(d.src) {
		if d.src[d.pos] == tagDelimiter {
			d.pos++
			dst = append(dst, '\n')
			needSep = false
			continue
		}
		if needSep {
			dst = append(dst, '\n')
		}
		if dst, err = d.value(dst, 0); err != nil {
			return dst[:start], err
		}
		needSep = true
	}
	return dst, nil
}

// decoder walks src once; pos is the next byte to read.
type decoder struct {
	src []byte
	pos int
}

func (d *decoder) errorf(at int, msg string) error {
	return &SyntaxError{Offset: at, Msg: msg}
}

func (d *decoder) rest() int { return len(d.src) - d.pos }

// take returns the next n bytes, or an error when fewer remain.
func (d *decoder) take(n int, what string) ([]byte, error) {
	if n < 0 || n > d.rest() {
		return nil, d.errorf(d.pos, what+" runs past the end of the input")
	}
	b := d.src[d.pos : d.pos+n]
	d.pos += n
	return b, nil
}

func (d *decoder) byte(what string) (byte, error) {
	b, err := d.take(1, what)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

// count reads a SIZE that counts items of at least minBytes bytes each, and
// checks that so many items can fit in what remains, so that no loop runs
// and no output grows on the strength of a claimed size alone.
func (d *decoder) count(minBytes int, what string) (int, error) {
	at := d.pos
	first, err := d.byte(what + " size")
	if err != nil {
		return 0, err
	}
	width := 1 << (first & 3)
	d.pos = at
	b, err := d.take(width, what+" size")
	if err != nil {
		return 0, err
	}
	var v uint64
	switch width {
	case 1:
		v = uint64(b[0])
	case 2:
		v = uint64(binary.LittleEndian.Uint16(b))
	case 4:
		v = uint64(binary.LittleEndian.Uint32(b))
	default:
		v = binary.LittleEndian.Uint64(b)
	}
	v >>= 2
	if v > math.MaxInt {
		return 0, d.errorf(at, what+" size "+strconv.FormatUint(v, 10)+" is too large")
	}
	if minBytes > 0 && v > uint64(d.rest()/minBytes) {
		return 0, d.errorf(at, what+" size "+strconv.FormatUint(v, 10)+" exceeds the bytes that remain")
	}
	return int(v), nil
}

// value appends one VALUE.
func (d *decoder) value(dst []byte, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return dst, d.errorf(d.pos, "values nested deeper than "+strconv.Itoa(MaxDepth))
	}
	at := d.pos
	tag, err := d.byte("value")
	if err != nil {
		return dst, err
	}
	switch tag & 7 {
	case typeNullBool:
		switch {
		case tag&tagFalse == 0:
			return append(dst, "null"...), nil
		case tag>>4 != 0:
			return append(dst, "true"...), nil
		default:
			return append(dst, "false"...), nil
		}
	case typeNumber:
		return d.number(dst, at, tag>>3&3, tag>>5)
	case typeString:
		n, err := d.count(1, "string")
		if err != nil {
			return dst, err
		}
		s, _ := d.take(n, "string")
		return appendString(dst, s), nil
	case typeObject:
		return d.object(dst, at, tag, depth)
	case typeTypedArray:
		return d.typedArray(dst, at, tag)
	case typeGenericArray:
		n, err := d.count(1, "array")
		if err != nil {
			return dst, err
		}
		dst = append(dst, '[')
		for i := range n {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = d.value(dst, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case typeExtension:
		return d.extension(dst, at, tag>>3, depth)
	}
	return dst, d.errorf(at, "reserved type 7 in header 0x"+strconv.FormatUint(uint64(tag), 16))
}

func (d *decoder) number(dst []byte, at int, kind, byteCount byte) ([]byte, error) {
	w, ok := numberWidth(kind, byteCount)
	if !ok {
		return dst, d.errorf(at, "unsupported number header 0x"+strconv.FormatUint(uint64(1|kind<<3|byteCount<<5), 16))
	}
	b, err := d.take(w, "number")
	if err != nil {
		return dst, err
	}
	return appendNumber(dst, kind, byteCount, b), nil
}

func (d *decoder) object(dst []byte, at int, tag byte, depth int) ([]byte, error) {
	kind, byteCount := tag>>3&3, tag>>5
	keyWidth := 0 // string keys: SIZE + bytes
	if kind != kindFloat {
		w, ok := numberWidth(kind, byteCount)
		if !ok || kind == kindOther {
			return dst, d.errorf(at, "unsupported object key header 0x"+strconv.FormatUint(uint64(tag), 16))
		}
		keyWidth = w
	}
	// Every pair holds at least a one-byte key (or keyWidth) and a one-byte value.
	n, err := d.count(max(keyWidth, 1)+1, "object")
	if err != nil {
		return dst, err
	}
	dst = append(dst, '{')
	for i := range n {
		if i > 0 {
			dst = append(dst, ',')
		}
		if keyWidth == 0 {
			m, err := d.count(1, "key")
			if err != nil {
				return dst, err
			}
			k, _ := d.take(m, "key")
			dst = appendString(dst, k)
		} else {
			k, err := d.take(keyWidth, "key")
			if err != nil {
				return dst, err
			}
			dst = append(dst, '"')
			dst = appendNumber(dst, kind, byteCount, k)
			dst = append(dst, '"')
		}
		dst = append(dst, ':')
		if dst, err = d.value(dst, depth+1); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

func (d *decoder) typedArray(dst []byte, at int, tag byte) ([]byte, error) {
	kind, byteCount := tag>>3&3, tag>>5
	if kind != kindOther {
		return d.numbers(dst, at, kind, byteCount)
	}
	switch tag {
	case tagBoolArray:
		sizeAt := d.pos
		n, err := d.count(0, "bool array")
		if err != nil {
			return dst, err
		}
		if uint64(n) > 8*uint64(d.rest()) {
			return dst, d.errorf(sizeAt, "bool array size "+strconv.Itoa(n)+" exceeds the bytes that remain")
		}
		bits, _ := d.take((n+7)/8, "bool array")
		dst = append(dst, '[')
		for i := range n {
			if i > 0 {
				dst = append(dst, ',')
			}
			if bits[i/8]>>(i%8)&1 != 0 {
				dst = append(dst, "true"...)
			} else {
				dst = append(dst, "false"...)
			}
		}
		return append(dst, ']'), nil
	case tagStringArray:
		n, err := d.count(1, "string array")
		if err != nil {
			return dst, err
		}
		dst = append(dst, '[')
		for i := range n {
			if i > 0 {
				dst = append(dst, ',')
			}
			m, err := d.count(1, "string")
			if err != nil {
				return dst, err
			}
			s, _ := d.take(m, "string")
			dst = appendString(dst, s)
		}
		return append(dst, ']'), nil
	case tagAlignedArray:
		// Aligned numeric array (BEVE proposal "Aligned Typed Arrays"):
		// numeric header, SIZE, padding length, padding, numbers.
		inner, err := d.byte("aligned array header")
		if err != nil {
			return dst, err
		}
		if inner&7 != typeTypedArray || inner>>3&3 == kindOther {
			return dst, d.errorf(d.pos-1, "aligned array header 0x"+strconv.FormatUint(uint64(inner), 16)+" is not numeric")
		}
		w, ok := numberWidth(inner>>3&3, inner>>5)
		if !ok {
			return dst, d.errorf(d.pos-1, "unsupported typed array header 0x"+strconv.FormatUint(uint64(inner), 16))
		}
		n, err := d.count(w, "typed array")
		if err != nil {
			return dst, err
		}
		pad, err := d.byte("aligned array padding")
		if err != nil {
			return dst, err
		}
		if _, err := d.take(int(pad), "aligned array padding"); err != nil {
			return dst, err
		}
		return d.packed(dst, inner>>3&3, inner>>5, w, n)
	}
	return dst, d.errorf(at, "unsupported typed array header 0x"+strconv.FormatUint(uint64(tag), 16))
}

// numbers reads SIZE and that many packed numbers of one kind.
func (d *decoder) numbers(dst []byte, at int, kind, byteCount byte) ([]byte, error) {
	w, ok := numberWidth(kind, byteCount)
	if !ok {
		return dst, d.errorf(at, "unsupported typed array header 0x"+strconv.FormatUint(uint64(4|kind<<3|byteCount<<5), 16))
	}
	n, err := d.count(w, "typed array")
	if err != nil {
		return dst, err
	}
	return d.packed(dst, kind, byteCount, w, n)
}

// packed appends n numbers of width w as a JSON array; count has checked
// that they are all there.
func (d *decoder) packed(dst []byte, kind, byteCount byte, w, n int) ([]byte, error) {
	b, err := d.take(n*w, "typed array")
	if err != nil {
		return dst, err
	}
	dst = append(dst, '[')
	for i := range n {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendNumber(dst, kind, byteCount, b[i*w:(i+1)*w])
	}
	return append(dst, ']'), nil
}

func (d *decoder) extension(dst []byte, at int, ext byte, depth int) ([]byte, error) {
	switch ext {
	case extTypeTag:
		// A variant: SIZE (the type index), then the value. Glaze's
		// beve_to_json shows only the value; so does this.
		if _, err := d.count(0, "type tag"); err != nil {
			return dst, err
		}
		return d.value(dst, depth+1)
	case extMatrix:
		layout, err := d.byte("matrix header")
		if err != nil {
			return dst, err
		}
		dst = append(dst, `{"layout":`...)
		if layout&1 == matrixLayoutLeft {
			dst = append(dst, `"layout_left"`...)
		} else {
			dst = append(dst, `"layout_right"`...)
		}
		dst = append(dst, `,"extents":`...)
		if dst, err = d.value(dst, depth+1); err != nil {
			return dst, err
		}
		dst = append(dst, `,"value":`...)
		if dst, err = d.value(dst, depth+1); err != nil {
			return dst, err
		}
		return append(dst, '}'), nil
	case extComplex:
		h, err := d.byte("complex header")
		if err != nil {
			return dst, err
		}
		kind, byteCount := h>>3&3, h>>5
		w, ok := numberWidth(kind, byteCount)
		if !ok {
			return dst, d.errorf(d.pos-1, "unsupported complex header 0x"+strconv.FormatUint(uint64(h), 16))
		}
		n := 1
		if h&complexArrayFlag != 0 {
			if n, err = d.count(2*w, "complex array"); err != nil {
				return dst, err
			}
			dst = append(dst, '[')
		}
		b, err := d.take(2*w*n, "complex number")
		if err != nil {
			return dst, err
		}
		for i := range n {
			if i > 0 {
				dst = append(dst, ',')
			}
			p := b[2*w*i:]
			dst = append(dst, '[')
			dst = appendNumber(dst, kind, byteCount, p[:w])
			dst = append(dst, ',')
			dst = appendNumber(dst, kind, byteCount, p[w:2*w])
			dst = append(dst, ']')
		}
		if h&complexArrayFlag != 0 {
			dst = append(dst, ']')
		}
		return dst, nil
	}
	if ext == 0 {
		return dst, d.errorf(at, "delimiter inside a value")
	}
	// Unknown extensions have no length we could skip by.
	return dst, d.errorf(at, "unknown extension "+strconv.Itoa(int(ext)))
}
