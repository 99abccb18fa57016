// SPDX-License-Identifier: MIT
// perf/go/proc_bench.go - Go's spawn-and-wait of /bin/true per second,
// the counterpart of perf/proc_bench.c: exec.Command("/bin/true").Run()
// one after another, then 100 at a time (goroutines).
//
//	go run perf/go/proc_bench.go [seconds per case, default 2]
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

func run() {
	if err := exec.Command("/bin/true").Run(); err != nil {
		panic(err)
	}
}

func main() {
	secs := 2.0
	if len(os.Args) > 1 {
		secs, _ = strconv.ParseFloat(os.Args[1], 64)
	}
	d := time.Duration(secs * float64(time.Second))
	for _, batch := range []int{1, 100} {
		t0 := time.Now()
		n := 0
		for time.Since(t0) < d {
			var wg sync.WaitGroup
			for i := 0; i < batch; i++ {
				wg.Add(1)
				go func() { defer wg.Done(); run() }()
			}
			wg.Wait()
			n += batch
		}
		t := time.Since(t0).Seconds()
		name := "go"
		if batch > 1 {
			name = "go100"
		}
		fmt.Printf("%-9s %8d runs %6.2f s %9.0f /s\n", name, n, t, float64(n)/t)
	}
}
