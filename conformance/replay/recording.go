// Package replay reads, writes and replays recordings of REPE exchanges in
// the case format of conformance/testdata (see its README.md): a directory
// of frames, CASE.req.repe as sent and CASE.res.repe as received (or
// CASE.nores when nothing came back), described by manifest.json, which
// lists the cases in the order they ran.
//
// The conformance suite replays Glaze's recording with it; `repe record`
// writes recordings with a [Writer] and `repe replay` replays them, so that
// a plugin author can keep a recorded session as a golden test.
package replay

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/repe-gw/repe-gw/repe"
)

// ManifestFile is the name of a recording's manifest in its directory.
const ManifestFile = "manifest.json"

// Manifest is a recording's manifest.json.
type Manifest struct {
	Generator string `json:"generator"`
	Notes     string `json:"notes"`
	Cases     []Case `json:"cases"`
}

// Case is one request, what came back, and, optionally, a probe sent
// after it on the same connection. The file names are relative to the
// recording's directory. ResponseFile ends in ".nores" when nothing came
// back; the probe files are empty when no probe was sent.
type Case struct {
	Name              string   `json:"name"`
	Description       string   `json:"description"`
	RequestFile       string   `json:"request_file"`
	ResponseFile      string   `json:"response_file"`
	RequestFrames     []Frame  `json:"request_frames"`
	Result            Outcome  `json:"result"`
	Probe             *Outcome `json:"probe,omitempty"`
	ProbeRequestFile  string   `json:"probe_request_file"`
	ProbeResponseFile string   `json:"probe_response_file"`
}

// answered reports whether the case recorded a reply.
func (c Case) answered() bool { return !strings.HasSuffix(c.ResponseFile, ".nores") }

// probed reports whether the case recorded a probe and its reply.
func (c Case) probed() bool {
	return c.ProbeRequestFile != "" && strings.HasSuffix(c.ProbeResponseFile, ".res.repe")
}

// Outcome is what happened after a request was sent, for people to read;
// replay compares the frame files, and uses ConnectionClosed only.
type Outcome struct {
	Happened         string  `json:"happened"`
	Responses        []Frame `json:"responses"`
	ConnectionClosed bool    `json:"connection_closed"`
}

// Frame is a frame decoded for people to read. Query and Body are what lies
// inside the declared length; BodyHex, when set, is the exact body and Body
// only a rendering of it, for bodies that are not UTF-8 text.
type Frame struct {
	Length      uint64 `json:"length"`
	Spec        uint16 `json:"spec"`
	Version     uint8  `json:"version"`
	Notify      uint8  `json:"notify"`
	Reserved    uint32 `json:"reserved"`
	ID          uint64 `json:"id"`
	QueryLength uint64 `json:"query_length"`
	BodyLength  uint64 `json:"body_length"`
	QueryFormat uint16 `json:"query_format"`
	BodyFormat  uint16 `json:"body_format"`
	EC          uint32 `json:"ec"`
	ECName      string `json:"ec_name"`
	Query       string `json:"query"`
	Body        string `json:"body"`
	BodyHex     string `json:"body_hex"`
}

// DecodeFrame decodes the header of b and, when b holds the whole frame
// with consistent lengths, its query and body. b needs at least
// repe.HeaderSize bytes.
func DecodeFrame(b []byte) Frame {
	m := repe.Message(b)
	f := Frame{
		Length: m.Length(), Spec: m.Spec(), Version: m.Version(), Notify: m.NotifyByte(),
		Reserved: m.Reserved(), ID: m.ID(), QueryLength: m.QueryLength(), BodyLength: m.BodyLength(),
		QueryFormat: uint16(m.QueryFormat()), BodyFormat: uint16(m.BodyFormat()),
		EC: uint32(m.EC()), ECName: m.EC().Name(),
	}
	if _, err := repe.Parse(b); err == nil {
		f.Query = string(m.Query())
		body := m.Body()
		if utf8.Valid(body) {
			f.Body = string(body)
		} else {
			f.Body = strings.ToValidUTF8(string(body), "\uFFFD")
			f.BodyHex = fmt.Sprintf("%x", body)
		}
	}
	return f
}

// Recording is a recording read from its directory.
type Recording struct {
	Dir string
	Manifest
}

// Load reads the recording in dir and checks that every file its manifest
// names is there.
func Load(dir string) (*Recording, error) {
	raw, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	r := &Recording{Dir: dir}
	if err := json.Unmarshal(raw, &r.Manifest); err != nil {
		return nil, fmt.Errorf("replay: %s: %w", filepath.Join(dir, ManifestFile), err)
	}
	if len(r.Cases) == 0 {
		return nil, fmt.Errorf("replay: %s lists no case", filepath.Join(dir, ManifestFile))
	}
	var errs []error
	for _, c := range r.Cases {
		files := []string{c.RequestFile}
		if c.answered() {
			files = append(files, c.ResponseFile)
		}
		if c.probed() {
			files = append(files, c.ProbeRequestFile, c.ProbeResponseFile)
		}
		for _, f := range files {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				errs = append(errs, fmt.Errorf("replay: case %s: %w", c.Name, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// ReadFile returns the contents of one of the recording's files.
func (r *Recording) ReadFile(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(r.Dir, name))
}

// Expectation states how a server may deliberately answer a case otherwise
// than the recording, as conformance/testdata/expectations.json does for
// repe-gw against Glaze's host.
type Expectation struct {
	// Mode is "error" (exactly one error frame), "error-close" (that, then
	// the server closes) or "silent" (nothing comes back).
	Mode string `json:"mode"`
	// EC lists the error codes allowed; empty allows any.
	EC []uint32 `json:"ec"`
	// BodyPrefix is how the error text must start.
	BodyPrefix string `json:"body_prefix"`
	// NoProbe leaves what follows on the connection uncompared.
	NoProbe bool `json:"no_probe"`
	// Why is the reason, for people.
	Why string `json:"why"`
}

// LoadExpectations reads a file of expectations, a JSON object from case
// names to Expectation, and checks each against r: a name that is no case of
// the recording, or an unknown mode, is an error.
func (r *Recording) LoadExpectations(file string) (map[string]Expectation, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	var exp map[string]Expectation
	if err := json.Unmarshal(raw, &exp); err != nil {
		return nil, fmt.Errorf("replay: %s: %w", file, err)
	}
	names := make(map[string]bool, len(r.Cases))
	for _, c := range r.Cases {
		names[c.Name] = true
	}
	var errs []error
	for name, e := range exp {
		if !names[name] {
			errs = append(errs, fmt.Errorf("replay: %s: %s is no case of %s", file, name, r.Dir))
		}
		switch e.Mode {
		case "error", "error-close", "silent":
		default:
			errs = append(errs, fmt.Errorf("replay: %s: %s: unknown mode %q (error, error-close or silent)", file, name, e.Mode))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return exp, nil
}
