// Command bareserver is make bench's HTTP ceiling: Go's net/http answering
// every request with a fixed 202 JSON body after reading the request body,
// and nothing else. Driven by the same wrk load as the receiver, its CPU per
// request is what any Go HTTP receiver pays on this machine before it
// verifies, parses or stores anything.
//
//	bareserver HOST:PORT [WAIT]
//
// With WAIT (a Go duration such as 2ms), every answer first waits for a
// shared "commit" the way the receiver's do: two goroutines each take all
// the requests waiting, sleep for WAIT and release them together. Its CPU
// per request is then what waiting for a shared commit costs net/http by
// itself (goroutines parking and waking, threads and CPUs going idle and
// being woken), with no work done during the wait.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) < 2 || len(os.Args) > 3 {
		fmt.Fprintln(os.Stderr, "usage: bareserver HOST:PORT [WAIT]")
		os.Exit(2)
	}
	var wait time.Duration
	if len(os.Args) == 3 {
		var err error
		if wait, err = time.ParseDuration(os.Args[2]); err != nil || wait <= 0 {
			fmt.Fprintln(os.Stderr, "bareserver: WAIT must be a positive duration such as 2ms")
			os.Exit(2)
		}
	}
	commits := make(chan chan struct{}, 1024)
	if wait > 0 {
		for range 2 {
			go commit(commits, wait)
		}
	}
	body := []byte(`{"message":"Webhook accepted","status":"accepted"}` + "\n")
	err := http.ListenAndServe(os.Args[1], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if wait > 0 {
			done := make(chan struct{})
			commits <- done
			<-done
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(body)
	}))
	fmt.Fprintln(os.Stderr, "bareserver:", err)
	os.Exit(1)
}

// commit takes every request waiting (at least one), sleeps for wait as a
// commit would take, and releases them together, forever.
func commit(waiting <-chan chan struct{}, wait time.Duration) {
	var batch []chan struct{}
	for {
		batch = append(batch[:0], <-waiting)
	more:
		for {
			select {
			case done := <-waiting:
				batch = append(batch, done)
			default:
				break more
			}
		}
		time.Sleep(wait)
		for _, done := range batch {
			close(done)
		}
	}
}
