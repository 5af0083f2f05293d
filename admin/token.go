package admin

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// maxTokenFile bounds a token file, so that a wrong path (a log, a device)
// fails at once instead of being read whole.
const maxTokenFile = 4 << 10

// ReadToken reads the bearer token in the file at path, without the
// whitespace around it. It refuses a file that its group or others may
// read or write, as ssh refuses a private key that others can read, and a
// file with no token in it.
func ReadToken(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	info, err := fh.Stat()
	if err != nil {
		return "", err
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("admin: token file %s has mode %04o: others than its owner may read it; chmod 600 it", path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(fh, maxTokenFile+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("admin: token file %s is larger than %d bytes: not a token", path, maxTokenFile)
	}
	token := string(bytes.TrimSpace(b))
	if token == "" {
		return "", fmt.Errorf("admin: token file %s holds no token", path)
	}
	return token, nil
}

// authorize requires the token, when there is one, on every path but the
// probes: a kubelet's probes carry no secret, and tell nothing but up or
// ready.
func (s *Server) authorize(next http.Handler) http.Handler {
	if s.cfg.Token == "" {
		return next
	}
	// Comparing digests takes the same time whatever the length of the
	// token given, which subtle.ConstantTimeCompare alone would reveal.
	want := sha256.Sum256([]byte(s.cfg.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			// A browser cannot send a bearer token, but asks for a
			// password when told to: the token as the password of any
			// user opens the status page.
			_, given, ok = r.BasicAuth()
		}
		got := sha256.Sum256([]byte(given))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Add("WWW-Authenticate", `Bearer realm="repe-gw admin"`)
			w.Header().Add("WWW-Authenticate", `Basic realm="repe-gw admin: the token is the password"`)
			http.Error(w, "a bearer token is required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
