package conformance_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/repe"
)

const glazeDir = "testdata/glaze"

// silence is how long a case waits to be sure nothing comes back.
const silence = 300 * time.Millisecond

type glazeCase struct {
	Name              string `json:"name"`
	Description       string `json:"description"`
	RequestFile       string `json:"request_file"`
	ResponseFile      string `json:"response_file"`
	ProbeRequestFile  string `json:"probe_request_file"`
	ProbeResponseFile string `json:"probe_response_file"`
	Result            struct {
		ConnectionClosed bool `json:"connection_closed"`
	} `json:"result"`
}

type expectation struct {
	Mode       string   `json:"mode"`
	EC         []uint32 `json:"ec"`
	BodyPrefix string   `json:"body_prefix"`
	NoProbe    bool     `json:"no_probe"`
	Why        string   `json:"why"`
}

func loadCases(t *testing.T) ([]glazeCase, map[string]expectation) {
	t.Helper()
	var m struct {
		Cases []glazeCase `json:"cases"`
	}
	raw, err := os.ReadFile(filepath.Join(glazeDir, "manifest.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &m))
	require.NotEmpty(t, m.Cases)

	var exp map[string]expectation
	raw, err = os.ReadFile("testdata/expectations.json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &exp))
	for name := range exp {
		require.True(t, slices.ContainsFunc(m.Cases, func(c glazeCase) bool { return c.Name == name }), "expectation for unknown case %s", name)
	}
	return m.Cases, exp
}

func readFrame(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(glazeDir, name))
	require.NoError(t, err)
	return b
}

// TestGlazeRecording replays every recorded case, in order and each on a new
// connection, against a gateway serving the project's calculator, and
// requires the recorded bytes or the outcome expectations.json states. The
// C calculator reproduces even the texts of Glaze's JSON parser errors, so
// every reply is compared byte for byte.
func TestGlazeRecording(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.Calculator(t))
	replayAll(t, srv.Addr())
}

// TestGlazeRecordingPassThrough replays the cases against a plugin that
// answers with the recorded Glaze replies, and requires every reply that
// came from the plugin byte for byte: the gateway adds, drops and changes
// nothing.
func TestGlazeRecordingPassThrough(t *testing.T) {
	cases, _ := loadCases(t)
	var exchanges []byte
	appendBlock := func(b []byte) {
		exchanges = binary.LittleEndian.AppendUint64(exchanges, uint64(len(b)))
		exchanges = append(exchanges, b...)
	}
	for _, c := range cases {
		if len(c.RequestFile) == 0 || c.ResponseFile == "" {
			continue
		}
		req := readFrame(t, c.RequestFile)
		var res []byte
		if strings.HasSuffix(c.ResponseFile, ".res.repe") {
			res = readFrame(t, c.ResponseFile)
		}
		if !fromHost(res) {
			appendBlock(req)
			appendBlock(res)
		}
		if c.ProbeRequestFile != "" && strings.HasSuffix(c.ProbeResponseFile, ".res.repe") {
			appendBlock(readFrame(t, c.ProbeRequestFile))
			appendBlock(readFrame(t, c.ProbeResponseFile))
		}
	}
	file := filepath.Join(t.TempDir(), "exchanges")
	require.NoError(t, os.WriteFile(file, exchanges, 0o600))
	replay := plugintest.Build(t, "testdata/replay.c", fmt.Sprintf(`-DREPLAY_FILE="%s"`, file))

	srv, _ := gatewaytest.Serve(t, gateway.Config{}, replay)
	replayAll(t, srv.Addr())
}

// fromHost reports whether a recorded reply was written by the recorded host
// itself rather than by its plugin.
func fromHost(res []byte) bool {
	if len(res) < repe.HeaderSize {
		return false
	}
	body := string(repe.Message(res).Body())
	return body == "No plugin registered for path" || body == "Failed to parse request"
}

func replayAll(t *testing.T, addr net.Addr) {
	cases, exp := loadCases(t)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			conn := gatewaytest.Dial(t, addr)
			req := readFrame(t, c.RequestFile)
			send(t, conn, c.Name, req)

			e, deliberate := exp[c.Name]
			switch {
			case deliberate && e.Mode == "silent":
				conn.ExpectSilence(silence)
			case deliberate:
				expectError(t, conn, e, repe.PeekID(req))
				if e.Mode == "error-close" {
					conn.ExpectClosed()
				}
				if e.NoProbe {
					return
				}
			case strings.HasSuffix(c.ResponseFile, ".nores"):
				if c.Result.ConnectionClosed {
					conn.ExpectClosed()
					return
				}
				conn.ExpectSilence(silence)
			default:
				assert.Equal(t, readFrame(t, c.ResponseFile), []byte(conn.Next()), "reply bytes")
			}
			if c.ProbeRequestFile == "" || !strings.HasSuffix(c.ProbeResponseFile, ".res.repe") {
				return
			}
			// The probe shows the stream is still in sync, and the plugin's
			// state matches the recording's.
			conn.Send(readFrame(t, c.ProbeRequestFile))
			assert.Equal(t, readFrame(t, c.ProbeResponseFile), []byte(conn.Next()), "probe reply bytes")
		})
	}
}

// send writes a case's request the way the recorder did.
func send(t *testing.T, conn *gatewaytest.Conn, name string, req []byte) {
	switch {
	case name == "split_write":
		conn.Send(req[:5])
		time.Sleep(100 * time.Millisecond)
		conn.Send(req[5:])
	case strings.HasSuffix(name, "_close"):
		conn.Send(req)
		require.NoError(t, conn.Conn.(*net.TCPConn).CloseWrite())
	default:
		conn.Send(req)
	}
}

// expectError checks one error reply against an expectation: an ec from its
// list, a body with its prefix, laid out as Glaze's builder lays out errors.
func expectError(t *testing.T, conn *gatewaytest.Conn, e expectation, id uint64) {
	t.Helper()
	m, err := conn.NextWithin(gatewaytest.Timeout)
	if err != nil {
		t.Fatalf("expected an error reply (%s): %v", e.Why, err)
	}
	assert.Contains(t, e.EC, uint32(m.EC()), "ec")
	assert.True(t, strings.HasPrefix(string(m.Body()), e.BodyPrefix), "body %q lacks prefix %q", m.Body(), e.BodyPrefix)
	assert.Equal(t, id, m.ID(), "id")
	assert.Equal(t, repe.BodyUTF8, m.BodyFormat(), "body_format")
	assert.Zero(t, m.QueryLength(), "query_length")
	assert.LessOrEqual(t, uint32(m.EC()), uint32(repe.ConnectionFailure), "gateway errors use ec <= 9")
}
