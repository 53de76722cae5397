package httpapi

import (
	"container/list"
	"crypto/tls"
	"net"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// ConnLimit holds a listener to at most Max open connections. At the cap
// a new connection closes the connection idle the longest — a keep-alive
// one between requests, or one that has not sent its first request yet —
// rather than wait: one client parking thousands of idle keep-alive
// connections must not lock every other client (and /healthz) out until
// the idle timeout. Only when every connection is serving a request is
// the new one refused (closed at once, and counted).
//
// Wrap the listener with Listen and give the server's ConnState to Track.
type ConnLimit struct {
	max int

	mu    sync.Mutex
	conns map[net.Conn]*list.Element // open, by connection; elements in idle or busy
	idle  list.List                  // idle connections, the longest idle first
	busy  list.List                  // serving a request
	// Metrics.
	refused, evicted prometheus.Counter
}

// NewConnLimit returns a limit of max connections; reg receives its
// metrics (nil: none).
func NewConnLimit(max int, reg prometheus.Registerer) *ConnLimit {
	l := &ConnLimit{max: max, conns: map[net.Conn]*list.Element{}}
	l.refused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "riskd_http_connections_refused_total",
		Help: "Connections closed on arrival because -max-connections were open, each serving a request.",
	})
	l.evicted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "riskd_http_idle_connections_closed_total",
		Help: "Idle connections closed to make room for a new one at -max-connections, the longest idle first.",
	})
	if reg != nil {
		reg.MustRegister(l.refused, l.evicted, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "riskd_http_open_connections", Help: "Connections open on the HTTP listeners held to -max-connections.",
		}, func() float64 { return float64(l.Open()) }))
	}
	return l
}

// Open is the number of open connections.
func (l *ConnLimit) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// Busy is the number of open connections serving a request.
func (l *ConnLimit) Busy() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.busy.Len()
}

// Listen returns ln held to the limit.
func (l *ConnLimit) Listen(ln net.Listener) net.Listener { return &limitedListener{Listener: ln, l: l} }

type limitedListener struct {
	net.Listener
	l *ConnLimit
}

func (ll *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if ll.l.admit(c) {
			return c, nil
		}
	}
}

// admit makes room for c and tracks it (as idle until it sends a
// request), or closes it when every open connection is busy.
func (l *ConnLimit) admit(c net.Conn) bool {
	l.mu.Lock()
	var victim net.Conn
	if len(l.conns) >= l.max {
		oldest := l.idle.Front()
		if oldest == nil {
			l.mu.Unlock()
			c.Close()
			l.refused.Inc()
			return false
		}
		victim = oldest.Value.(net.Conn)
		l.idle.Remove(oldest)
		delete(l.conns, victim) // its StateClosed will find nothing to do
	}
	l.conns[c] = l.idle.PushBack(c)
	l.mu.Unlock()
	if victim != nil {
		victim.Close()
		l.evicted.Inc()
	}
	return true
}

// Track is the http.Server's ConnState: it follows which connections
// are idle and forgets those closed or hijacked.
func (l *ConnLimit) Track(c net.Conn, state http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.conns[c]
	if !ok {
		return // not ours, or closed to make room
	}
	switch state {
	case http.StateActive:
		l.remove(e)
		l.conns[c] = l.busy.PushBack(c)
	case http.StateIdle:
		l.remove(e)
		l.conns[c] = l.idle.PushBack(c)
	case http.StateClosed, http.StateHijacked:
		l.remove(e)
		delete(l.conns, c)
	}
}

// remove takes e out of whichever list holds it.
func (l *ConnLimit) remove(e *list.Element) {
	// list.Remove checks the element belongs to the list.
	l.idle.Remove(e)
	l.busy.Remove(e)
}
