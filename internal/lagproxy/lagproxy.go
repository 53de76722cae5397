// Package lagproxy is a TCP proxy for tests that delays what it forwards
// by a fixed time each way, as a network between zones would, and counts
// the round trips its clients make: how many times a client sends after
// it was last answered.
package lagproxy

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy forwards connections to one address.
type Proxy struct {
	ln      net.Listener
	to      string
	delay   time.Duration
	flights atomic.Int64
	opened  atomic.Int64
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

// Start listens on a free loopback port and forwards each connection to
// to, delaying every chunk by delay each way. The proxy stops with the
// test.
func Start(t testing.TB, to string, delay time.Duration) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, to: to, delay: delay}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is where clients connect.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Opened is how many connections clients have opened so far: a new
// connection's handshake makes flights of its own.
func (p *Proxy) Opened() int64 { return p.opened.Load() }

// Flights is how many requests clients have sent so far: a client's
// first bytes on a connection, and each send after the server last
// wrote to it. For one client waiting for each answer before it sends
// again, flights are its sequential round trips.
func (p *Proxy) Flights() int64 { return p.flights.Load() }

func (p *Proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns = append(p.conns, c)
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.to)
		if err != nil {
			c.Close()
			continue
		}
		p.opened.Add(1)
		p.track(c)
		p.track(u)
		// answered: the server wrote last on this connection, so the
		// client's next bytes start a new flight.
		var mu sync.Mutex
		answered := true
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			p.pipe(u, c, func() {
				mu.Lock()
				if answered {
					answered = false
					p.flights.Add(1)
				}
				mu.Unlock()
			})
		}()
		go func() {
			defer p.wg.Done()
			p.pipe(c, u, func() {
				mu.Lock()
				answered = true
				mu.Unlock()
			})
		}()
	}
}

// pipe copies src to dst, each chunk delay after it was read; seen is
// called as a chunk is read.
func (p *Proxy) pipe(dst, src net.Conn, seen func()) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	ch := make(chan chunk, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range ch {
			if d := time.Until(c.at); d > 0 {
				t := time.NewTimer(d)
				<-t.C
			}
			if _, err := dst.Write(c.b); err != nil {
				break
			}
		}
		dst.Close()
		for range ch { // drain so the reader never blocks
		}
	}()
	for {
		b := make([]byte, 64<<10)
		n, err := src.Read(b)
		if n > 0 {
			seen()
			ch <- chunk{b[:n], time.Now().Add(p.delay)}
		}
		if err != nil {
			close(ch)
			<-done
			return
		}
	}
}
