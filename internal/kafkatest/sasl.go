package kafkatest

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// AdvertiseHandshakeV0 makes c list SaslHandshake from version 0 in its
// ApiVersions answers. kfake serves version 1 only, and says so; Debian's
// kcat (librdkafka 2.0) then refuses to log in ("SASL Handshake not
// supported by broker"), though it goes on to use version 1, which kfake
// serves. clientTLS reaches c when it speaks TLS (nil: plain TCP).
func AdvertiseHandshakeV0(t testing.TB, c *kfake.Cluster, clientTLS *tls.Config) {
	t.Helper()
	keys := apiVersions(t, c.ListenAddrs()[0], clientTLS)
	var maxApiVersions int16
	for i := range keys {
		switch keys[i].ApiKey {
		case int16(kmsg.SASLHandshake):
			keys[i].MinVersion = 0
		case int16(kmsg.ApiVersions):
			maxApiVersions = keys[i].MaxVersion
		}
	}
	c.ControlKey(int16(kmsg.ApiVersions), func(r kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := r.(*kmsg.ApiVersionsRequest)
		resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
		if req.Version > maxApiVersions {
			// As kfake (and Kafka) answer a version they do not serve: v0,
			// the error, and the ApiVersions range to retry within.
			resp.Version = 0
			resp.ErrorCode = kerr.UnsupportedVersion.Code
			for _, k := range keys {
				if k.ApiKey == int16(kmsg.ApiVersions) {
					resp.ApiKeys = append(resp.ApiKeys, k)
				}
			}
			return resp, nil, true
		}
		resp.ApiKeys = append(resp.ApiKeys, keys...)
		return resp, nil, true
	})
}

// apiVersions asks the broker at addr for its ApiVersions (version 0,
// which every broker answers before authentication).
func apiVersions(t testing.TB, addr string, clientTLS *tls.Config) []kmsg.ApiVersionsResponseApiKey {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("reaching %s: %v", addr, err)
	}
	defer conn.Close()
	if clientTLS != nil {
		cfg := clientTLS.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		conn = tls.Client(conn, cfg)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 0
	if _, err := conn.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID("kafkatest")).AppendRequest(nil, req, 1)); err != nil {
		t.Fatalf("asking %s for its ApiVersions: %v", addr, err)
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		t.Fatalf("reading %s's ApiVersions: %v", addr, err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(conn, body); err != nil || len(body) < 4 {
		t.Fatalf("reading %s's ApiVersions: %v", addr, err)
	}
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	if err := resp.ReadFrom(body[4:]); err != nil { // past the correlation id
		t.Fatalf("decoding %s's ApiVersions: %v", addr, err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		t.Fatalf("%s's ApiVersions: %v", addr, err)
	}
	return resp.ApiKeys
}
