// Command bareserver is make bench's HTTP ceiling: Go's net/http answering
// every request with a fixed 202 JSON body after reading the request body,
// and nothing else. Driven by the same wrk load as the receiver, its CPU per
// request is what any Go HTTP receiver pays on this machine before it
// verifies, parses or stores anything.
//
//	bareserver 127.0.0.1:PORT
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: bareserver HOST:PORT")
		os.Exit(2)
	}
	body := []byte(`{"message":"Webhook accepted","status":"accepted"}` + "\n")
	err := http.ListenAndServe(os.Args[1], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(body)
	}))
	fmt.Fprintln(os.Stderr, "bareserver:", err)
	os.Exit(1)
}
