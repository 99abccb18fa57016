// SPDX-License-Identifier: MIT
//
// perf/go/chan_bench.go - Go's buffered channel between two goroutines on
// two Ps (GOMAXPROCS=2): the peer of bench_sync's shchan_2loops/C. One
// goroutine sends 1, 2, 3, ... into a channel of capacity C, the other
// receives and checks them; items per second over a fixed count.
//
//	go run perf/go/chan_bench.go [-cap 64] [-n 20000000]
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"
)

func main() {
	capacity := flag.Int("cap", 64, "channel capacity (0 = rendezvous)")
	n := flag.Int("n", 20000000, "items")
	flag.Parse()
	runtime.GOMAXPROCS(2)
	ch := make(chan uintptr, *capacity)
	start := time.Now()
	go func() {
		for i := uintptr(1); i <= uintptr(*n); i++ {
			ch <- i
		}
		close(ch)
	}()
	expect := uintptr(1)
	for v := range ch {
		if v != expect {
			fmt.Fprintln(os.Stderr, "wrong item")
			os.Exit(1)
		}
		expect++
	}
	el := time.Since(start)
	fmt.Printf("go_chan/%d: %d items in %v: %.3fM items/s, %.1f ns/item\n",
		*capacity, *n, el, float64(*n)/el.Seconds()/1e6,
		float64(el.Nanoseconds())/float64(*n))
}
