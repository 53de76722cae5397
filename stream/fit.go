package stream

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/segmentio/kafka-go"
)

// What riskd writes to Kafka must fit the brokers' message limit
// (message.max.bytes), or the write is refused whatever the retries and
// the partition it belongs to stops for good. Headers are bounded where
// they are made (maxHeaderBytes); a value is not known to fit until the
// brokers take it, so a batch refused as too large is written again one
// message at a time, and a message still refused is replaced by a smaller
// form of itself (shrinks), then by nothing: dropped, counted and logged
// at error level. Nothing is retried forever for its size.

// maxHeaderBytes bounds a header's value: an error, a ruleset name, a
// version. An error quoting an event is already bounded where it is made;
// this holds whatever else comes.
const maxHeaderBytes = 1 << 10

// maxShrunkKeyBytes bounds the key of a replacement record: an event id
// (256 bytes at most) or whatever key a refused event came with.
const maxShrunkKeyBytes = 256

// cutBytes returns b, or its first max bytes.
func cutBytes(b []byte, max int) []byte { return b[:min(len(b), max)] }

// recordSize is about what m takes in a record batch: its key, value and
// headers.
func recordSize(m kafka.Message) int {
	n := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// shrink is a smaller form of a message the brokers refused as too large;
// ok is false when there is none left.
type shrink func(m kafka.Message) (kafka.Message, bool)

// minimalDecision replaces a decision (or a shadow verdict, or an audit
// record) by {"event_id", "error", "truncated": true}, keeping the
// headers that say where it came from, bounded.
func minimalDecision(what string) shrink {
	return func(m kafka.Message) (kafka.Message, bool) {
		if hasHeader(m, "truncated") {
			return m, false // already minimal
		}
		key := cutBytes(m.Key, maxShrunkKeyBytes)
		id, _ := json.Marshal(string(key))
		msg, _ := json.Marshal(fmt.Sprintf("the %s was %d bytes, over the brokers' message size limit: this record replaces it", what, recordSize(m)))
		out := kafka.Message{
			Key:   key,
			Value: fmt.Appendf(nil, `{"event_id":%s,"error":%s,"truncated":true}`, id, msg),
		}
		for _, h := range m.Headers {
			switch h.Key {
			case "ruleset", "version", "live_ruleset", "source":
				out.Headers = append(out.Headers, kafka.Header{Key: h.Key, Value: cutBytes(h.Value, maxShrunkKeyBytes)})
			}
		}
		out.Headers = append(out.Headers,
			kafka.Header{Key: "truncated", Value: []byte("true")},
			kafka.Header{Key: "original_bytes", Value: []byte(strconv.Itoa(recordSize(m)))})
		return out, true
	}
}

// shrinkDeadLetter keeps 1 KiB of a dead letter's event, then none of it:
// its headers say what it was and why it was refused.
func shrinkDeadLetter(m kafka.Message) (kafka.Message, bool) {
	const keep = 1 << 10
	if len(m.Value) == 0 && len(m.Key) <= maxShrunkKeyBytes {
		return m, false
	}
	out := kafka.Message{Key: cutBytes(m.Key, maxShrunkKeyBytes), Headers: make([]kafka.Header, 0, len(m.Headers)+1)}
	if len(m.Value) > keep {
		out.Value = m.Value[:keep]
	}
	for _, h := range m.Headers {
		if h.Key == "error" {
			h.Value = cutBytes(h.Value, maxShrunkKeyBytes)
		}
		out.Headers = append(out.Headers, h)
	}
	if !hasHeader(out, "truncated") {
		out.Headers = append(out.Headers, kafka.Header{Key: "truncated", Value: []byte("true")})
	}
	return out, true
}

func hasHeader(m kafka.Message, key string) bool {
	for _, h := range m.Headers {
		if h.Key == key {
			return true
		}
	}
	return false
}

// writeEach writes msgs with w one at a time, after the brokers refused
// them together as too large: each message refused alone is shrunk until
// the brokers take it (replaced is called with what was written) or
// nothing smaller is left (dropped is called with the last form). Other
// errors go to retry, which counts them and waits; false from it, or ctx
// ending, stops the writes (false).
func writeEach(ctx context.Context, w *kafka.Writer, msgs []kafka.Message, smaller shrink,
	replaced, dropped func(kafka.Message), retry func(error) bool) bool {
	for _, m := range msgs {
		shrunk := false
	write:
		for {
			err := w.WriteMessages(ctx, m)
			switch {
			case err == nil:
				if shrunk {
					replaced(m)
				}
				break write
			case ctx.Err() != nil:
				return false
			case tooLarge(err):
				next, ok := smaller(m)
				if !ok {
					dropped(m)
					break write
				}
				m, shrunk = next, true
			case !retry(err):
				return false
			}
		}
	}
	return true
}
