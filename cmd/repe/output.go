package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/repe-gw/repe-gw/beve"
	"github.com/repe-gw/repe-gw/repe"
)

// writeBody prints a reply body by its format: JSON and BEVE as JSON
// (indented, or compact when raw), UTF-8 as text, anything else as hex (a
// dump with offsets and characters, or plain hex when raw). A body that
// does not parse as its format says is shown as hex, with a note on
// stderr. An empty body prints nothing.
func writeBody(stdout, stderr io.Writer, bf repe.BodyFormat, body []byte, raw bool) error {
	if len(body) == 0 {
		return nil
	}
	var out []byte
	switch bf {
	case repe.BodyJSON:
		var err error
		if out, err = formatJSON(body, raw); err != nil {
			fmt.Fprintf(stderr, "repe: the JSON reply does not parse (%v); shown as hex\n", err)
			out = nil
		}
	case repe.BodyBEVE:
		js, err := beve.AppendJSON(nil, body)
		if err == nil {
			out, err = formatJSONLines(js, raw)
		}
		if err != nil {
			fmt.Fprintf(stderr, "repe: the BEVE reply could not be decoded (%v); shown as hex\n", err)
			out = nil
		}
	case repe.BodyUTF8:
		if utf8.Valid(body) {
			out = body
			if body[len(body)-1] != '\n' {
				out = append(out[:len(out):len(out)], '\n')
			}
		} else {
			fmt.Fprintln(stderr, "repe: the UTF-8 reply is not valid UTF-8; shown as hex")
		}
	}
	if out == nil {
		if raw {
			out = []byte(hex.EncodeToString(body) + "\n")
		} else {
			out = []byte(hex.Dump(body))
		}
	}
	_, err := stdout.Write(out)
	return err
}

func formatJSON(body []byte, raw bool) ([]byte, error) {
	var b bytes.Buffer
	var err error
	if raw {
		err = json.Compact(&b, body)
	} else {
		err = json.Indent(&b, body, "", "  ")
	}
	if err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// formatJSONLines formats each line of BEVE's JSON output, which holds one
// document per line when the body held several values.
func formatJSONLines(js []byte, raw bool) ([]byte, error) {
	var out []byte
	for line := range bytes.SplitSeq(js, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		f, err := formatJSON(line, raw)
		if err != nil {
			return nil, err
		}
		out = append(out, f...)
	}
	return out, nil
}

// validateJSON checks a request body before it is sent, and says where it
// goes wrong: line, column and the line itself with a caret.
func validateJSON(body []byte) error {
	if len(body) == 0 || json.Valid(body) {
		return nil
	}
	var se *json.SyntaxError
	if err := json.Unmarshal(body, new(any)); !errors.As(err, &se) {
		return fmt.Errorf("the body is not valid JSON: %v", err)
	}
	// Offset counts the bytes read, the bad one included, except at the end.
	at := int(se.Offset)
	if at > 0 && at <= len(body) && !strings.HasPrefix(se.Error(), "unexpected end") {
		at--
	}
	at = min(at, len(body))
	lineStart := bytes.LastIndexByte(body[:at], '\n') + 1
	lineEnd := bytes.IndexByte(body[at:], '\n')
	if lineEnd < 0 {
		lineEnd = len(body)
	} else {
		lineEnd += at
	}
	lineNo := bytes.Count(body[:at], []byte("\n")) + 1
	col := utf8.RuneCount(body[lineStart:at]) + 1
	msg := fmt.Sprintf("the body is not valid JSON: %v (line %d, column %d)", se, lineNo, col)
	if line := body[lineStart:lineEnd]; len(line) <= 120 && utf8.Valid(line) {
		// Keep tabs so that the caret lines up under the bad character.
		pad := []rune(string(body[lineStart:at]))
		for i, r := range pad {
			if r != '\t' {
				pad[i] = ' '
			}
		}
		msg += "\n  " + string(line) + "\n  " + string(pad) + "^"
	}
	return errors.New(msg)
}
