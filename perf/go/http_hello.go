// SPDX-License-Identifier: MIT
//
// perf/go/http_hello.go - the Go peer of perf/http_weft.c in
// perf/cores-bench: net/http answering every request with "hello\n"
// (keep-alive; net/http adds Date and Content-Length as http_weft does).
// GOMAXPROCS (the environment) sets how many threads run Go code at once.
//
//	go build -o /tmp/http_hello perf/go/http_hello.go
//	GOMAXPROCS=2 /tmp/http_hello -addr 127.0.0.1:18081
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"runtime"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18081", "listen address")
	flag.Parse()
	hello := []byte("hello\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(hello)
	})
	fmt.Printf("listening on %s (GOMAXPROCS %d)\n", *addr, runtime.GOMAXPROCS(0))
	if err := http.ListenAndServe(*addr, h); err != nil {
		fmt.Fprintln(os.Stderr, "http_hello:", err)
		os.Exit(1)
	}
}
