// Package beve converts BEVE (Binary Efficient Versatile Encoding, REPE
// body_format 1) to JSON and JSON to BEVE, for tools that show or send REPE
// bodies. It does not map BEVE to Go types.
//
// Every BEVE value starts with a one-byte header whose low three bits give
// the type (REPE.md §6; the BEVE specification in beve-org/beve):
//
//	type  header                         layout after the header
//	0     00 null, 08 false, 18 true     -
//	1     1|kind<<3|log2(bytes)<<5       little-endian number (bf16 01, f16 21)
//	2     02                             SIZE, UTF-8 bytes
//	3     03 string keys,                SIZE, then key, VALUE pairs; a string key
//	      3|kind<<3|log2(bytes)<<5       is SIZE + bytes, an integer key is its
//	      integer keys                   little-endian bytes
//	4     4|kind<<3|log2(bytes)<<5       SIZE, packed numbers
//	      1c bool[], 3c string[],        SIZE, bits LSB first / SIZE+bytes each
//	      5c aligned numeric[]           numeric header, SIZE, pad length, pad, numbers
//	5     05                             SIZE, VALUEs
//	6     6|ext<<3                       extension: 0 delimiter, 1 type tag,
//	                                     2 matrix, 3 complex
//
// kind is 0 float, 1 signed, 2 unsigned. SIZE is a compressed unsigned
// integer: its low two bits give its byte count (1, 2, 4 or 8) and the
// little-endian value shifted right by two is the size.
//
// [AppendJSON] follows Glaze's beve_to_json where the specification leaves a
// choice: integer keys become JSON strings, a type tag is replaced by its
// value, a delimiter becomes a newline between documents. NaN and
// infinities, which JSON cannot hold, become null. It departs from Glaze
// where Glaze is wrong: it decodes boolean arrays (Glaze reports an error),
// reads the element type of complex numbers (Glaze reads them all as floats)
// and names matrix layouts as Glaze's writer and the specification do
// (0 layout_right, 1 layout_left).
//
// Every size read from the input is checked against the bytes that remain
// before it is used, so a short or hostile input costs at most a few times
// its own length in output and never a large allocation.
package beve
