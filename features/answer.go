package features

import (
	"encoding/binary"
	"errors"
	"math"
)

// An answer is the feature values an event id was first given, kept for
// the idempotency window so a retry gets exactly them. Values are keyed by
// a hash of the feature's name, not its position, so a retry served by a
// newer policy still finds the features both policies have.
//
// Layout: per item, 8 bytes FNV-1a of the name, 1 tag byte (0 nil, 1
// false, 2 true, 3 number), and for a number its 8 float64 bytes. An
// answer kept with the event's body hash (Observation.Body) starts with
// an item of bodyHash tagged 4 and the hash's 16 bytes.

const (
	tagNil = iota
	tagFalse
	tagTrue
	tagNum
	tagBody
)

// bodyHash stands for the body in an answer's items: no feature name
// hashes to it (names are lower case letters, digits and _).
var bodyHash = nameHash("\x00body")

func nameHash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// AnswerSize is the most bytes appendAnswer adds for obs.
func AnswerSize(obs *Observation) int { return 25 + 17*len(obs.Items) }

// AppendAnswer encodes obs's body hash, if given, and the values of its
// items.
func AppendAnswer(dst []byte, obs *Observation) []byte {
	if obs.Body != [16]byte{} {
		dst = append(binary.LittleEndian.AppendUint64(dst, bodyHash), tagBody)
		dst = append(dst, obs.Body[:]...)
	}
	for i := range obs.Items {
		it := &obs.Items[i]
		dst = binary.LittleEndian.AppendUint64(dst, it.Feature.hash)
		v := it.Value
		switch {
		case !v.Valid:
			dst = append(dst, tagNil)
		case it.Feature.Kind.Bool() && v.Bool:
			dst = append(dst, tagTrue)
		case it.Feature.Kind.Bool():
			dst = append(dst, tagFalse)
		default:
			dst = append(dst, tagNum)
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v.Num))
		}
	}
	return dst
}

// ErrBadAnswer is returned for a stored answer that cannot be read.
var ErrBadAnswer = errors.New("stored answer is corrupt")

// ApplyAnswer sets the items the answer has values for and reports, per
// item, whether it was found (missing[i] true: a feature the first answer
// did not read). It sets obs.Conflict when the answer was kept for a body
// other than obs.Body (an answer kept without a body hash, by an older
// riskd, matches any).
func ApplyAnswer(ans []byte, obs *Observation, missing []bool) error {
	for i := range obs.Items {
		missing[i] = true
	}
	for len(ans) > 0 {
		if len(ans) < 9 {
			return ErrBadAnswer
		}
		h, tag := binary.LittleEndian.Uint64(ans), ans[8]
		ans = ans[9:]
		var v Value
		switch tag {
		case tagNil:
		case tagFalse:
			v = Value{Valid: true}
		case tagTrue:
			v = Value{Valid: true, Bool: true}
		case tagNum:
			if len(ans) < 8 {
				return ErrBadAnswer
			}
			v = Value{Valid: true, Num: math.Float64frombits(binary.LittleEndian.Uint64(ans))}
			ans = ans[8:]
		case tagBody:
			if len(ans) < 16 || h != bodyHash {
				return ErrBadAnswer
			}
			if obs.Body != [16]byte{} && [16]byte(ans[:16]) != obs.Body {
				obs.Conflict = true
			}
			ans = ans[16:]
			continue
		default:
			return ErrBadAnswer
		}
		for i := range obs.Items {
			if missing[i] && obs.Items[i].Feature.hash == h {
				obs.Items[i].Value, missing[i] = v, false
			}
		}
	}
	return nil
}
