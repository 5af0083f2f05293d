package repe_test

import (
	"errors"
	"fmt"

	"github.com/repe-gw/repe-gw/repe"
)

// A server reads bytes as they come and calls Split after each read. "Need
// more" is n == 0 with no error; an inconsistent but framed request is
// answered and skipped; a fatal error is answered and the connection closed.
func ExampleSplit() {
	var stream []byte
	stream = repe.AppendMessage(stream, repe.Header{ID: 1, QueryFormat: repe.QueryJSONPointer}, "/calculator/value", nil)
	bad := repe.AppendMessage(nil, repe.Header{ID: 2}, "/calculator/value", nil)
	bad[repe.OffsetLength]++ // declares one byte too many, which the sender pads
	stream = append(append(stream, bad...), 0)
	stream = repe.AppendMessage(stream, repe.Header{ID: 3, QueryFormat: repe.QueryJSONPointer}, "/calculator/increment", nil)
	stream = append(stream, 0x41, 0x00, 0x00) // the start of a fourth frame

	for {
		n, err := repe.Split(stream, repe.DefaultMaxMessageSize)
		if n == 0 && err == nil {
			fmt.Printf("need more: %d bytes buffered\n", len(stream))
			break
		}
		if n == 0 {
			fmt.Println("close after replying:", err)
			break
		}
		frame := stream[:n]
		stream = stream[n:]
		if err != nil {
			e := repe.AsError(err)
			fmt.Printf("id %d: reply ec %d %q\n", repe.PeekID(frame), e.Code, e.Message)
			continue
		}
		m := repe.Message(frame)
		fmt.Printf("id %d: call %s\n", m.ID(), m.Query())
	}
	// Output:
	// id 1: call /calculator/value
	// id 2: reply ec 2 "REPE length mismatch: expected 65, got 66"
	// id 3: call /calculator/increment
	// need more: 3 bytes buffered
}

// A request that fails validation is answered with Glaze's code and text
// and the request's id, in a buffer the caller owns.
func ExampleAppendError() {
	req := repe.AppendMessage(nil, repe.Header{ID: 184, QueryFormat: repe.QueryJSONPointer}, "/calculator/value", nil)
	req[repe.OffsetVersion] = 2

	_, err := repe.Parse(req)
	if errors.Is(err, repe.VersionMismatch) {
		e := repe.AsError(err)
		reply := repe.AppendError(make([]byte, 0, 128), repe.PeekID(req), e.Code, e.Message)

		m, _ := repe.Parse(reply)
		fmt.Println("length:", m.Length())
		fmt.Println("id:", m.ID())
		fmt.Println("ec:", uint32(m.EC()), m.EC().Name())
		fmt.Println("body_format:", m.BodyFormat())
		fmt.Printf("body: %s\n", m.Body())
		fmt.Printf("header: % x\n", reply[:repe.HeaderSize])
	}
	// Output:
	// length: 88
	// id: 184
	// ec: 1 version_mismatch
	// body_format: utf8
	// body: REPE version mismatch: expected 1, got 2
	// header: 58 00 00 00 00 00 00 00 07 15 01 00 00 00 00 00 b8 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 28 00 00 00 00 00 00 00 00 00 03 00 01 00 00 00
}
