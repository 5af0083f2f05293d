package bridge

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"

	"github.com/repe-gw/repe-gw/beve"
	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/repe"
)

// The REST mapping, as Glaze's rest_registry maps a registry: GET reads a
// value or calls a function that takes nothing (a REPE request without a
// body), PUT writes (204 No Content on success, as Glaze answers), and
// POST calls with the JSON body as the argument. The URL path is the
// query.

// mediaBEVE asks for BEVE replies as they are, rather than as JSON.
const mediaBEVE = "application/x-beve"

// errorBody is what an HTTP error carries: the REPE code, Glaze's name
// for it and the message.
type errorBody struct {
	EC      uint32 `json:"ec"`
	Name    string `json:"name"`
	Message string `json:"message"`
}

// serveREST calls the plugin that owns the URL's path through the core.
func (b *Bridge) serveREST(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Path
	var body []byte
	switch r.Method {
	case http.MethodGet:
	case http.MethodPut, http.MethodPost:
		// The frame must fit MaxMessageSize, as a TCP client's must.
		limit := int64(b.cfg.MaxMessageSize) - repe.HeaderSize - int64(len(query))
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, max(limit, 0)))
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, repe.InvalidHeader,
				"the body makes the REPE frame longer than the gateway's maximum of "+strconv.FormatUint(b.cfg.MaxMessageSize, 10)+" bytes")
			return
		}
		if err != nil {
			bodyFailed(w, err)
			return
		}
	default:
		w.Header().Set("Allow", "GET, PUT, POST")
		writeError(w, http.StatusMethodNotAllowed, repe.InvalidHeader, "want GET, PUT or POST")
		return
	}
	h := repe.Header{ID: 1, QueryFormat: repe.QueryJSONPointer}
	if len(body) > 0 {
		h.BodyFormat = repe.BodyJSON
	}
	// The request and then its reply in one recycled buffer: a call costs
	// no allocation for either.
	buf := b.frames.Get().(*[]byte)
	req := repe.AppendMessage((*buf)[:0], h, query, body)
	dst := req[len(req):]
	out, origin, err := b.srv.Do(r.Context(), gateway.TransportHTTP, remoteAddr(r.RemoteAddr), req, dst)
	if err == nil {
		// Once Do has returned, the core holds neither; a call Do gave up
		// on might, so its buffer is not reused.
		defer b.recycle(buf, req, dst, out)
	}
	switch {
	case errors.Is(err, gateway.ErrRefused):
		writeError(w, http.StatusServiceUnavailable, repe.SendError, "the gateway is draining or at its connection limit; safe to retry")
		return
	case err != nil:
		return // the client went away first
	case len(out) < repe.HeaderSize:
		writeError(w, http.StatusBadGateway, repe.ConnectionFailure, "the gateway closed the call without a reply")
		return
	}
	m := repe.Message(out)
	if ec := m.EC(); ec != repe.OK {
		writeError(w, statusOf(ec, origin), ec, string(m.Body()))
		return
	}
	if r.Method == http.MethodPut || len(m.Body()) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeBody(w, r, m)
}

// maxRecycled bounds the buffers kept for calls: a rare large call should
// not pin its memory.
const maxRecycled = 64 << 10

// recycle keeps the buffer of a call for the next: the one that holds req
// and, when it fitted after it, the reply out; else the one the reply grew.
func (b *Bridge) recycle(buf *[]byte, req, dst, out []byte) {
	switch {
	case cap(out) == cap(dst): // the reply fitted: no new array
		*buf = req[:0]
	case cap(out) <= maxRecycled:
		*buf = out[:0]
	default:
		*buf = nil
	}
	b.frames.Put(buf)
}

// statusOf is the HTTP status of a REPE error: the gateway's own errors by
// their meaning, a plugin's as the client's fault unless they say
// otherwise.
func statusOf(ec repe.ErrorCode, origin gateway.Origin) int {
	switch ec {
	case repe.VersionMismatch, repe.InvalidHeader, repe.InvalidBody:
		return http.StatusBadRequest
	case repe.InvalidQuery:
		if origin == gateway.OriginGateway {
			return http.StatusForbidden // a request hook refused it
		}
		return http.StatusBadRequest
	case repe.ParseError:
		if origin == gateway.OriginGateway {
			return http.StatusBadGateway // the plugin's reply was malformed
		}
		return http.StatusBadRequest
	case repe.MethodNotFound:
		return http.StatusNotFound
	case repe.Timeout:
		return http.StatusGatewayTimeout
	case repe.SendError:
		return http.StatusServiceUnavailable
	case repe.ConnectionFailure:
		return http.StatusBadGateway
	}
	if ec.Name() != "" {
		return http.StatusBadRequest // Glaze's read errors: the body did not parse
	}
	return http.StatusInternalServerError
}

// writeBody writes a successful reply's body by its format: JSON as it
// is, BEVE as JSON unless the client accepts BEVE, UTF-8 as text and
// anything else as bytes.
func writeBody(w http.ResponseWriter, r *http.Request, m repe.Message) {
	body, kind := m.Body(), typeBytes
	switch m.BodyFormat() {
	case repe.BodyJSON:
		kind = typeJSON
	case repe.BodyUTF8:
		kind = typeText
	case repe.BodyBEVE:
		if acceptsBEVE(r) {
			kind = typeBEVE
			break
		}
		j, err := beve.AppendJSON(nil, body)
		if err != nil {
			writeError(w, http.StatusBadGateway, repe.ParseError, "the plugin's BEVE reply does not convert to JSON: "+err.Error())
			return
		}
		body, kind = j, typeJSON
	}
	w.Header()["Content-Type"] = kind
	_, _ = w.Write(body)
}

// The Content-Type values of replies, shared rather than made per reply
// as Header.Set makes them: net/http only reads them, and an Add to one
// (len == cap) appends to a copy.
var (
	typeJSON  = []string{"application/json"}
	typeText  = []string{"text/plain; charset=utf-8"}
	typeBEVE  = []string{mediaBEVE}
	typeBytes = []string{"application/octet-stream"}
)

func acceptsBEVE(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if v == mediaBEVE {
			return true
		}
	}
	return false
}

// bodyFailed answers a request whose body could not be read: 408 when the
// client took longer than the listener's read timeout, which then closes
// the connection, and 400 otherwise, such as for a malformed chunked body;
// a client that went away never reads the answer, which is harmless.
func bodyFailed(w http.ResponseWriter, err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		writeError(w, http.StatusRequestTimeout, repe.Timeout, "the request's body did not arrive within the HTTP read timeout")
		return
	}
	writeError(w, http.StatusBadRequest, repe.InvalidBody, "the request's body could not be read: "+err.Error())
}

func writeError(w http.ResponseWriter, status int, ec repe.ErrorCode, msg string) {
	b, _ := json.Marshal(errorBody{EC: uint32(ec), Name: ec.Name(), Message: msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// remoteAddr is the HTTP client's address, IP:port as net/http gives it,
// for the core's logs and per-address connection limit. It is taken as it
// is: parsing and formatting it again would cost a call five allocations.
type remoteAddr string

func (a remoteAddr) Network() string { return "tcp" }
func (a remoteAddr) String() string  { return string(a) }
