// SPDX-License-Identifier: MIT
//
// perf/go/million.go - Go's peer of perf/million.c: N goroutines that
// each block until cancelled (a receive from a channel that is closed to
// cancel them), the resident memory they take, then cancel and join.
//
//	go build -o million_go perf/go/million.go
//	GOMAXPROCS=1 ./million_go [-n 1000000] [-r 1]
//
// Prints one line per round in perf/million's format: spawn_ns (wall time
// per goroutine from the first go statement until every goroutine is
// blocked), spawn_cpu_ns (the process's CPU time for the same),
// rss_per_task (growth of /proc/self/statm's resident pages, per
// goroutine), maps (lines of /proc/self/maps), join_ns and join_cpu_ns
// (close the channel and wait for every goroutine to end, per goroutine),
// rss_after_kib.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
)

func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	var size, res int64
	fmt.Sscan(string(b), &size, &res)
	return res * int64(os.Getpagesize())
}

func mapCount() int {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return -1
	}
	return bytes.Count(b, []byte{'\n'})
}

func cpuNs() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func round(n int) {
	done := make(chan struct{})
	var started, ended sync.WaitGroup
	started.Add(n)
	ended.Add(n)
	rss0 := rssBytes()
	c0 := cpuNs()
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			<-done
			ended.Done()
		}()
	}
	started.Wait()
	// Let the last ones reach the receive: with GOMAXPROCS=1 this
	// goroutine runs again only when the others have blocked.
	runtime.Gosched()
	t1 := time.Now()
	c1 := cpuNs()
	rss1 := rssBytes()
	maps := mapCount()
	close(done)
	ended.Wait()
	t2 := time.Now()
	c2 := cpuNs()
	fmt.Printf("tasks=%d spawn_ns=%.0f spawn_cpu_ns=%.0f rss_per_task=%.0f "+
		"maps=%d join_ns=%.0f join_cpu_ns=%.0f rss_after_kib=%d\n",
		n, float64(t1.Sub(t0).Nanoseconds())/float64(n),
		float64(c1-c0)/float64(n), float64(rss1-rss0)/float64(n), maps,
		float64(t2.Sub(t1).Nanoseconds())/float64(n),
		float64(c2-c1)/float64(n), rssBytes()/1024)
}

func main() {
	n := flag.Int("n", 1000000, "goroutines")
	r := flag.Int("r", 1, "rounds")
	flag.Parse()
	for i := 0; i < *r; i++ {
		round(*n)
	}
}
