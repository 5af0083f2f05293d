package repe_test

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// conformanceDir holds the recorded frames shared with the gateway's
// conformance suite (conformance/testdata/README.md).
const conformanceDir = "../conformance/testdata"

// manifestFrame is one frame as a manifest decodes it. Query and body are
// what lies inside the frame's declared length, clipped to it; both are empty
// when the file does not hold the whole frame or the length is below a
// header.
type manifestFrame struct {
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
	// Body is the body as text; BodyHex, when set, is the exact body and
	// Body only a lossy rendering of it.
	Body    string `json:"body"`
	BodyHex string `json:"body_hex"`
}

type glazeOutcome struct {
	Happened         string          `json:"happened"`
	Responses        []manifestFrame `json:"responses"`
	ConnectionClosed bool            `json:"connection_closed"`
}

type glazeCase struct {
	Name              string          `json:"name"`
	Description       string          `json:"description"`
	RequestFile       string          `json:"request_file"`
	ResponseFile      string          `json:"response_file"`
	RequestFrames     []manifestFrame `json:"request_frames"`
	Result            glazeOutcome    `json:"result"`
	Probe             *glazeOutcome   `json:"probe"`
	ProbeRequestFile  string          `json:"probe_request_file"`
	ProbeResponseFile string          `json:"probe_response_file"`
}

type repeRSFixture struct {
	Name          string `json:"name"`
	ID            uint64 `json:"id"`
	Notify        uint8  `json:"notify"`
	EC            uint32 `json:"ec"`
	QueryFormat   uint16 `json:"query_format"`
	BodyFormat    uint16 `json:"body_format"`
	QueryLength   uint64 `json:"query_length"`
	BodyLength    uint64 `json:"body_length"`
	Length        uint64 `json:"length"`
	Query         string `json:"query"`
	BodyKind      string `json:"body_kind"`
	BodyJSON      string `json:"body_json"`
	BodyText      string `json:"body_text"`
	EncoderParity bool   `json:"encoder_parity"`
}

func loadGlazeCases(t testing.TB) []glazeCase {
	t.Helper()
	var m struct {
		Cases []glazeCase `json:"cases"`
	}
	raw, err := os.ReadFile(filepath.Join(conformanceDir, "glaze", "manifest.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &m))
	require.NotEmpty(t, m.Cases)
	return m.Cases
}

func loadRepeRSFixtures(t testing.TB) []repeRSFixture {
	t.Helper()
	var m struct {
		Fixtures []repeRSFixture `json:"fixtures"`
	}
	raw, err := os.ReadFile(filepath.Join(conformanceDir, "repe-rs", "manifest.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &m))
	require.NotEmpty(t, m.Fixtures)
	return m.Fixtures
}

func readConformance(t testing.TB, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(conformanceDir, dir, name))
	require.NoError(t, err)
	return b
}

// conformanceFile is one recorded .repe file: 0..n frames as sent or
// received on one connection.
type conformanceFile struct {
	name string // dir/file
	data []byte
}

// allConformanceFiles returns every .repe file under conformanceDir, sorted
// by name.
func allConformanceFiles(t testing.TB) []conformanceFile {
	t.Helper()
	var files []conformanceFile
	for _, dir := range []string{"glaze", "repe-rs"} {
		entries, err := os.ReadDir(filepath.Join(conformanceDir, dir))
		require.NoError(t, err)
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".repe") {
				files = append(files, conformanceFile{dir + "/" + e.Name(), readConformance(t, dir, e.Name())})
			}
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	require.NotEmpty(t, files)
	return files
}

// locatedFrame is where a manifest frame lies in its file, found by walking
// the length fields with no help from the package under test.
type locatedFrame struct {
	start int    // offset of the frame's first byte in the file
	rest  []byte // file[start:]: what a receiver has buffered from the frame on
	// query and body as a manifest decodes them (see manifestFrame).
	query, body []byte
	// valid reports whether Glaze's parse_request accepts rest (REPE.md
	// §2.1), derived here from the header fields alone.
	valid bool
}

// locateFrames walks n frames of data by their length fields.
func locateFrames(t testing.TB, data []byte, n int) []locatedFrame {
	t.Helper()
	var out []locatedFrame
	start := 0
	for range n {
		require.GreaterOrEqual(t, len(data)-start, 48, "frame header beyond the file")
		h := data[start:]
		length := binary.LittleEndian.Uint64(h[0:])
		spec := binary.LittleEndian.Uint16(h[8:])
		version := h[10]
		ql := binary.LittleEndian.Uint64(h[24:])
		bl := binary.LittleEndian.Uint64(h[32:])
		avail := uint64(len(h))
		f := locatedFrame{start: start, rest: h}
		if length >= 48 && length <= avail {
			qEnd := min(48+min(ql, length), length)
			bEnd := min(qEnd+min(bl, length), length)
			f.query, f.body = h[48:qEnd], h[qEnd:bEnd]
		}
		sumOK := ql <= ^uint64(0)-48 && bl <= ^uint64(0)-48-ql
		f.valid = spec == 0x1507 && version == 1 && sumOK && length == 48+ql+bl && length <= avail
		out = append(out, f)
		if length > avail || length < 48 {
			break
		}
		start += int(length)
	}
	return out
}
