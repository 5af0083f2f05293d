package replay

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/repe-gw/repe-gw/repe"
)

// Writer writes a recording: the files of each case as it is added, and
// the manifest rewritten after each, so that a recorder stopped at any
// moment leaves a recording that loads. It is safe for concurrent use.
type Writer struct {
	dir string
	mu  sync.Mutex
	m   Manifest
}

// Create starts a recording in dir, which is created if need be and must
// not hold one already.
func Create(dir, generator, notes string) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	manifest := filepath.Join(dir, ManifestFile)
	if _, err := os.Stat(manifest); !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("replay: %s holds a recording already (%s); choose another directory", dir, ManifestFile)
	}
	w := &Writer{dir: dir, m: Manifest{Generator: generator, Notes: notes, Cases: []Case{}}}
	return w, w.writeManifest()
}

// Len returns the number of cases written.
func (w *Writer) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.m.Cases)
}

// Add writes a case: req, a whole request frame as it was sent, and reply,
// the bytes that came back for it (nil when nothing did); closed says the
// server closed the connection without answering. The case is named after
// its place in the recording and its query, such as
// 0003_calculator_increment.
func (w *Writer) Add(req, reply []byte, closed bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := repe.Message(req)
	query, desc := "", "a frame with an inconsistent header"
	if _, err := repe.Parse(req); err == nil {
		query = string(m.Query())
		desc = fmt.Sprintf("%s, id %d", query, m.ID())
		if len(m.Body()) > 0 {
			desc += fmt.Sprintf(", %s body %s", m.BodyFormat(), showBody(m))
		}
	}
	name := fmt.Sprintf("%04d_%s", len(w.m.Cases)+1, slug(query))
	c := Case{
		Name:          name,
		Description:   desc,
		RequestFile:   name + ".req.repe",
		RequestFrames: []Frame{DecodeFrame(req)},
		Result:        Outcome{Responses: []Frame{}, ConnectionClosed: closed},
	}
	if m.Notify() {
		c.Description = "notify: " + c.Description
	}
	if err := w.writeFile(c.RequestFile, req); err != nil {
		return err
	}
	switch {
	case reply != nil:
		c.ResponseFile = name + ".res.repe"
		c.Result.Happened = "response " + describe(reply)
		if len(reply) >= repe.HeaderSize {
			c.Result.Responses = append(c.Result.Responses, DecodeFrame(reply))
		}
		if err := w.writeFile(c.ResponseFile, reply); err != nil {
			return err
		}
	case closed:
		c.ResponseFile = name + ".nores"
		c.Result.Happened = "connection closed, no response"
	default:
		c.ResponseFile = name + ".nores"
		c.Result.Happened = "no response (connection left open)"
	}
	if c.ResponseFile == name+".nores" {
		if err := w.writeFile(c.ResponseFile, nil); err != nil {
			return err
		}
	}
	w.m.Cases = append(w.m.Cases, c)
	return w.writeManifest()
}

func (w *Writer) writeFile(name string, data []byte) error {
	if err := os.WriteFile(filepath.Join(w.dir, name), data, 0o644); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	return nil
}

// writeManifest replaces the manifest through a rename, so that a reader
// never sees half of one.
func (w *Writer) writeManifest() error {
	b, err := json.MarshalIndent(w.m, "", " ")
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	tmp := filepath.Join(w.dir, ManifestFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(w.dir, ManifestFile)); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	return nil
}

// slug turns a query into a file-name part: its letters, digits, '-' and
// '.', with '_' for runs of anything else, at most 48 bytes.
func slug(query string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.Trim(query, "/") {
		ok := r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.')
		switch {
		case ok:
			b.WriteRune(r)
			under = false
		case !under:
			b.WriteByte('_')
			under = true
		}
		if b.Len() >= 48 {
			break
		}
	}
	if s := strings.Trim(b.String(), "_."); s != "" {
		return s
	}
	return "root"
}
