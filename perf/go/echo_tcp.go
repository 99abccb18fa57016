// SPDX-License-Identifier: MIT
//
// perf/go/echo_tcp.go - the Go peer of perf/echo_weft.c in
// perf/cores-bench: a goroutine per connection that reads into a 16 KiB
// buffer and writes back what it read. GOMAXPROCS (the environment) sets
// how many threads run Go code at once.
//
//	go build -o /tmp/echo_tcp perf/go/echo_tcp.go
//	GOMAXPROCS=2 /tmp/echo_tcp -addr 127.0.0.1:17999
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
)

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 16384)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:17999", "listen address")
	flag.Parse()
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo_tcp:", err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s (GOMAXPROCS %d)\n", *addr, runtime.GOMAXPROCS(0))
	for {
		c, err := l.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "echo_tcp:", err)
			os.Exit(1)
		}
		go serve(c)
	}
}
