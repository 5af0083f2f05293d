package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"hash/fnv"
	"io"
	"net/http"
	"strconv"

	"github.com/repe-gw/repe-gw/beve"
	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/repe"
)

// JSON-RPC 2.0 at POST /jsonrpc, converted to REPE as Glaze's
// repe_to_jsonrpc.hpp converts it: the method is the query without its
// leading slash, params are the body, the id is the id, and a REPE error
// becomes parse → -32700, invalid_header/version → -32600,
// method_not_found → -32601, anything else → -32603, with the REPE
// message as the error's data. A request without jsonrpc "2.0" or
// without a method is -32600, as Glaze rejects it.

// JSON-RPC error codes.
const (
	rpcParseError     = -32700
	rpcInvalidRequest = -32600
	rpcMethodNotFound = -32601
	rpcInternalError  = -32603
)

// rpcMessages are the texts of Glaze's rpc::code_as_sv.
var rpcMessages = map[int]string{
	rpcParseError:     "Parse error",
	rpcInvalidRequest: "Invalid request",
	rpcMethodNotFound: "Method not found",
	rpcInternalError:  "Internal error",
}

type rpcRequest struct {
	JSONRPC *string         `json:"jsonrpc"`
	Method  *string         `json:"method"`
	Params  json.RawMessage `json:"params"`
	ID      json.RawMessage `json:"id"`
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    string `json:"data,omitempty"`
}

type rpcResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
	ID      json.RawMessage `json:"id"`
}

var jsonNull = json.RawMessage("null")

// maxBatch bounds the calls of one batch, as Ethereum's JSON-RPC servers
// bound theirs (1,000 by default): decoding a batch costs memory per call,
// and a body of the gateway's maximum size holds millions of small calls.
const maxBatch = 1000

// serveJSONRPC answers one call or a batch. Notifications get no
// response; a batch of notifications only, 204 No Content.
func (b *Bridge) serveJSONRPC(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(b.cfg.MaxMessageSize)))
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		writeRPC(w, failure(jsonNull, rpcInvalidRequest, "the request is longer than the gateway's maximum message size"))
		return
	}
	if err != nil {
		bodyFailed(w, err)
		return
	}
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' {
		if !json.Valid(body) {
			writeRPC(w, failure(jsonNull, rpcParseError, "the request is not valid JSON"))
			return
		}
		batch, ok := splitBatch(body)
		switch {
		case !ok:
			writeRPC(w, failure(jsonNull, rpcInvalidRequest,
				"a batch of more than "+strconv.Itoa(maxBatch)+" calls, the most the gateway takes"))
			return
		case len(batch) == 0:
			writeRPC(w, failure(jsonNull, rpcInvalidRequest, "an empty batch"))
			return
		}
		// In order, one after another, as a REPE connection runs its
		// requests: a batch that writes and then reads sees its write.
		// Each response is written as soon as it is made, so that a batch
		// holds one response at a time, whatever the sizes of its replies.
		started := false
		for _, call := range batch {
			resp := b.call(r, call)
			if resp == nil {
				continue
			}
			sep := byte(',')
			if !started {
				w.Header().Set("Content-Type", "application/json")
				sep, started = '[', true
			}
			out, _ := json.Marshal(resp)
			if _, err := w.Write(append([]byte{sep}, out...)); err != nil {
				return // the client went away; the calls after this one do not run
			}
		}
		if !started {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		_, _ = w.Write([]byte("]\n"))
		return
	}
	if !json.Valid(body) {
		writeRPC(w, failure(jsonNull, rpcParseError, "the request is not valid JSON"))
		return
	}
	resp := b.call(r, body)
	if resp == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeRPC(w, resp)
}

// splitBatch returns the calls of body, a valid JSON array, as slices of
// it; false when there are more than maxBatch, having looked at no more
// than that.
func splitBatch(body []byte) ([]json.RawMessage, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	_, _ = dec.Token() // '['
	var batch []json.RawMessage
	for dec.More() {
		if len(batch) == maxBatch {
			return nil, false
		}
		start := dec.InputOffset()
		var skip json.RawMessage
		_ = dec.Decode(&skip) // valid: json.Valid said so
		batch = append(batch, bytes.TrimLeft(body[start:dec.InputOffset()], ", \t\r\n"))
	}
	return batch, true
}

// call makes one JSON-RPC call through the core; nil for a notification.
func (b *Bridge) call(r *http.Request, raw json.RawMessage) *rpcResponse {
	var req rpcRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		return failure(jsonNull, rpcInvalidRequest, "not a JSON-RPC request object")
	}
	id := req.ID
	notify := len(id) == 0 || bytes.Equal(id, jsonNull)
	if len(id) == 0 {
		id = jsonNull
	}
	switch {
	case req.JSONRPC == nil:
		return failure(id, rpcInvalidRequest, "Missing 'jsonrpc' member")
	case *req.JSONRPC != "2.0":
		return failure(id, rpcInvalidRequest, "Unsupported 'jsonrpc' version: "+strconv.Quote(*req.JSONRPC))
	case req.Method == nil:
		return failure(id, rpcInvalidRequest, "Missing 'method' member")
	case id[0] != '"' && id[0] != 'n' && (id[0] < '0' || id[0] > '9') && id[0] != '-':
		return failure(jsonNull, rpcInvalidRequest, "the id must be a string, a number or null")
	}
	h := repe.Header{ID: repeID(id), Notify: notify, QueryFormat: repe.QueryJSONPointer}
	var params []byte
	if len(req.Params) > 0 && !bytes.Equal(req.Params, jsonNull) {
		params, h.BodyFormat = req.Params, repe.BodyJSON
	}
	frame := repe.AppendMessage(nil, h, "/"+*req.Method, params)
	out, _, err := b.srv.Do(r.Context(), gateway.TransportJSONRPC, remoteAddr(r.RemoteAddr), frame, nil)
	switch {
	case errors.Is(err, gateway.ErrRefused):
		return failure(id, rpcInternalError, "send_error: the gateway is draining or at its connection limit; safe to retry")
	case err != nil:
		return failure(id, rpcInternalError, err.Error())
	case notify:
		return nil
	case len(out) < repe.HeaderSize:
		return failure(id, rpcInternalError, "the gateway closed the call without a reply")
	}
	m := repe.Message(out)
	if ec := m.EC(); ec != repe.OK {
		return failure(id, rpcCode(ec), string(m.Body()))
	}
	result := m.Body()
	switch m.BodyFormat() {
	case repe.BodyBEVE:
		j, err := beve.AppendJSON(nil, result)
		if err != nil {
			return failure(id, rpcInternalError, "the plugin's BEVE reply does not convert to JSON: "+err.Error())
		}
		result = j
	case repe.BodyUTF8:
		// Glaze splices the text in as it is, which is JSON only by
		// chance; a JSON string is what it means.
		result, _ = json.Marshal(string(result))
	case repe.BodyJSON:
	default:
		return failure(id, rpcInternalError, "REPE body must be JSON or UTF8 format")
	}
	if len(result) == 0 {
		result = jsonNull
	}
	if !json.Valid(result) {
		// Spliced in as it is, a reply that is not one JSON value could
		// add members to the response (repe_to_jsonrpc.hpp's warning).
		return failure(id, rpcInternalError, "the plugin's reply is not valid JSON")
	}
	return &rpcResponse{JSONRPC: "2.0", Result: result, ID: id}
}

// rpcCode maps a REPE error code to JSON-RPC's as Glaze's
// repe_error_to_jsonrpc does.
func rpcCode(ec repe.ErrorCode) int {
	switch ec {
	case repe.ParseError, repe.ErrorCode(24): // 24: Glaze's syntax_error
		return rpcParseError
	case repe.InvalidHeader, repe.VersionMismatch:
		return rpcInvalidRequest
	case repe.MethodNotFound:
		return rpcMethodNotFound
	}
	return rpcInternalError
}

// repeID is the REPE id of a JSON-RPC id, as Glaze reads it: a number as
// it is, a string holding a number as that number, any other string by
// its hash. The response carries the JSON-RPC id as it was sent.
func repeID(id json.RawMessage) uint64 {
	var s string
	if json.Unmarshal(id, &s) != nil {
		s = string(id)
	}
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		return n
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return uint64(n)
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return h.Sum64()
}

func failure(id json.RawMessage, code int, data string) *rpcResponse {
	return &rpcResponse{JSONRPC: "2.0", Error: &rpcError{Code: code, Message: rpcMessages[code], Data: data}, ID: id}
}

// writeRPC writes a response or a batch of them: JSON-RPC errors travel
// in a 200, as JSON-RPC over HTTP has them.
func writeRPC(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}
