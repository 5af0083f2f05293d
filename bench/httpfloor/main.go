// Command httpfloor is the floor for the HTTP bridge's benchmark: a bare
// net/http server whose every GET answers the bytes the gateway answers
// for GET /calculator/value on a fresh calculator (200, application/json,
// "0"), with nothing between the request and the reply. bench/transports.sh
// loads it and the gateway alike and compares their CPU per request.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpfloor:", err)
		os.Exit(1)
	}
	fmt.Println("listening on", ln.Addr())
	body := []byte("0")
	err = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	fmt.Fprintln(os.Stderr, "httpfloor:", err)
	os.Exit(1)
}
