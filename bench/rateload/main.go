// Command rateload sends the pre-signed webhooks of bench/signgen at a
// fixed rate (wrk only knows "as fast as possible"), to measure the
// pipeline's lag at a given load. It prints sent, accepted and latency.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	rate := flag.Int("rate", 2500, "requests per second")
	duration := flag.Duration("d", 20*time.Second, "how long")
	conns := flag.Int("c", 50, "concurrent connections")
	signed := flag.String("signed", "", "file from bench/signgen")
	url := flag.String("url", "http://127.0.0.1:3000/api/webhooks", "receiver")
	flag.Parse()

	f, err := os.Open(*signed)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var head [4]string
	for i := range head {
		sc.Scan()
		head[i] = sc.Text()
	}
	type req struct{ sig, body string }
	jobs := make(chan req, *conns*4)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conns}, Timeout: 10 * time.Second}
	var mu sync.Mutex
	var lat []time.Duration
	accepted, failed := 0, 0
	var wg sync.WaitGroup
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				r, _ := http.NewRequest("POST", *url, strings.NewReader(j.body))
				r.Header.Set("Content-Type", "application/json")
				r.Header.Set("X-Acme-Timestamp", head[0])
				r.Header.Set("X-Acme-Signature", j.sig)
				start := time.Now()
				resp, err := client.Do(r)
				d := time.Since(start)
				mu.Lock()
				if err == nil && resp.StatusCode/100 == 2 {
					accepted++
					lat = append(lat, d)
				} else {
					failed++
				}
				mu.Unlock()
				if err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	interval := time.Second / time.Duration(*rate)
	next := time.Now()
	end := next.Add(*duration)
	sent := 0
	for time.Now().Before(end) && sc.Scan() {
		parts := strings.SplitN(sc.Text(), " ", 3)
		jobs <- req{sig: parts[0], body: head[1] + parts[1] + head[2] + parts[2] + head[3]}
		sent++
		next = next.Add(interval)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
	}
	close(jobs)
	wg.Wait()
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(float64(len(lat)-1)*p)]
	}
	fmt.Printf("sent %d in %s (%.0f/s), accepted %d, failed %d, latency p50 %s p99 %s\n",
		sent, duration.String(), float64(sent)/duration.Seconds(), accepted, failed, pct(0.5).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond))
}
