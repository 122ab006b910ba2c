package simulator

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// requestTimeout bounds one webhook request, connecting included.
const requestTimeout = 30 * time.Second

// keepAlive is one worker's keep-alive connection to the receiver. The
// worker writes its request and reads the response on its own goroutine
// with net/http's own wire format code (Request.Write, ReadResponse):
// net/http's Transport hands each request to a writer and a reader
// goroutine per connection, and at thousands of requests per second those
// hand-offs cost the load generator more CPU than the requests themselves,
// CPU taken from the service it measures when both share a machine.
type keepAlive struct {
	addr string
	tls  *tls.Config
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
}

// newKeepAlive returns an unconnected keepAlive for target; copies of it
// are the workers' connections.
func newKeepAlive(target *url.URL) (*keepAlive, error) {
	k := &keepAlive{addr: target.Host}
	switch target.Scheme {
	case "http":
		if target.Port() == "" {
			k.addr = net.JoinHostPort(target.Hostname(), "80")
		}
	case "https":
		if target.Port() == "" {
			k.addr = net.JoinHostPort(target.Hostname(), "443")
		}
		k.tls = &tls.Config{ServerName: target.Hostname(), MinVersion: tls.VersionTLS12}
	default:
		return nil, fmt.Errorf("receiver URL must be http or https, not %q", target.Scheme)
	}
	return k, nil
}

// do sends req and returns the status and up to 4 KiB of the body. A
// request that fails on a reused connection before any byte of the answer
// arrived (the server closed it while idle) is sent once more on a new
// connection; webhooks are idempotent by event id, so this is safe.
func (k *keepAlive) do(ctx context.Context, req *http.Request, body []byte) (int, []byte, error) {
	reused := k.conn != nil
	status, b, answered, err := k.roundTrip(ctx, req, body)
	if err != nil && reused && !answered && ctx.Err() == nil {
		status, b, _, err = k.roundTrip(ctx, req, body)
	}
	return status, b, err
}

func (k *keepAlive) roundTrip(ctx context.Context, req *http.Request, body []byte) (status int, b []byte, answered bool, err error) {
	if k.conn == nil {
		if err := k.dial(ctx); err != nil {
			return 0, nil, false, err
		}
	}
	defer func() {
		if err != nil {
			k.close()
		}
	}()
	_ = k.conn.SetDeadline(time.Now().Add(requestTimeout))
	stop := context.AfterFunc(ctx, func() { _ = k.conn.SetDeadline(time.Now()) })
	defer stop()
	req.ContentLength = int64(len(body))
	req.Body = io.NopCloser(bytes.NewReader(body))
	if err := req.Write(k.bw); err != nil {
		return 0, nil, false, err
	}
	if err := k.bw.Flush(); err != nil {
		return 0, nil, false, err
	}
	if _, err := k.br.Peek(1); err != nil {
		return 0, nil, false, err
	}
	resp, err := http.ReadResponse(k.br, req)
	if err != nil {
		return 0, nil, true, err
	}
	b, err = io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err == nil {
		// Drain what is over the limit so the connection can be reused.
		_, err = io.Copy(io.Discard, resp.Body)
	}
	_ = resp.Body.Close()
	if err != nil {
		return 0, nil, true, err
	}
	if resp.Close {
		k.close()
	}
	return resp.StatusCode, b, true, nil
}

func (k *keepAlive) dial(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", k.addr)
	if err != nil {
		return err
	}
	if k.tls != nil {
		tc := tls.Client(c, k.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = c.Close()
			return err
		}
		c = tc
	}
	k.conn = c
	k.br = bufio.NewReaderSize(c, 8<<10)
	k.bw = bufio.NewWriterSize(c, 8<<10)
	return nil
}

func (k *keepAlive) close() {
	if k.conn != nil {
		_ = k.conn.Close()
		k.conn = nil
	}
}
