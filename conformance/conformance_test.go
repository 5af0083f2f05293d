package conformance_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/conformance/replay"
	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/glazeplugins"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/repe"
)

// load reads Glaze's recording and the outcomes repe-gw deliberately
// differs in.
func load(t *testing.T) (*replay.Recording, replay.Options) {
	t.Helper()
	rec, err := replay.Load("testdata/glaze")
	require.NoError(t, err)
	exp, err := rec.LoadExpectations("testdata/expectations.json")
	require.NoError(t, err)
	return rec, replay.Options{Expect: exp}
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

// TestGlazeRecordingGlazeCalculator replays the cases against a gateway
// serving the calculator of Glaze's plugin documentation built with Glaze
// itself (make glaze-plugins): the plugin the recording was made with, so
// every reply must be the recorded one byte for byte, parser texts
// included, but where expectations.json states what the gateway itself
// answers.
func TestGlazeRecordingGlazeCalculator(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, glazeplugins.Plugin(t, "calculator"))
	replayAll(t, srv.Addr())
}

// TestGlazeRecordingPassThrough replays the cases against a plugin that
// answers with the recorded Glaze replies, and requires every reply that
// came from the plugin byte for byte: the gateway adds, drops and changes
// nothing.
func TestGlazeRecordingPassThrough(t *testing.T) {
	rec, _ := load(t)
	read := func(name string) []byte {
		b, err := rec.ReadFile(name)
		require.NoError(t, err)
		return b
	}
	var exchanges []byte
	appendBlock := func(b []byte) {
		exchanges = binary.LittleEndian.AppendUint64(exchanges, uint64(len(b)))
		exchanges = append(exchanges, b...)
	}
	for _, c := range rec.Cases {
		if len(c.RequestFile) == 0 || c.ResponseFile == "" {
			continue
		}
		req := read(c.RequestFile)
		var res []byte
		if strings.HasSuffix(c.ResponseFile, ".res.repe") {
			res = read(c.ResponseFile)
		}
		if !fromHost(res) {
			appendBlock(req)
			appendBlock(res)
		}
		if c.ProbeRequestFile != "" && strings.HasSuffix(c.ProbeResponseFile, ".res.repe") {
			appendBlock(read(c.ProbeRequestFile))
			appendBlock(read(c.ProbeResponseFile))
		}
	}
	file := filepath.Join(t.TempDir(), "exchanges")
	require.NoError(t, os.WriteFile(file, exchanges, 0o600))
	plugin := plugintest.Build(t, "testdata/replay.c", fmt.Sprintf(`-DREPLAY_FILE="%s"`, file))

	srv, _ := gatewaytest.Serve(t, gateway.Config{}, plugin)
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

// replayAll replays the recording in order, as `repe replay` does, with
// each case a subtest.
func replayAll(t *testing.T, addr net.Addr) {
	rec, opts := load(t)
	for _, c := range rec.Cases {
		t.Run(c.Name, func(t *testing.T) {
			if err := rec.Replay(addr.String(), c, opts); err != nil {
				t.Errorf("%s: %v", c.Description, err)
			}
		})
	}
}
