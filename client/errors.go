package client

import "fmt"

// RefusedError is an event riskd refuses (HTTP 4xx), or that the client
// refuses before sending it: sending it again will not help; the event
// (or the client's configuration) needs fixing.
type RefusedError struct {
	EventID string
	// StatusCode is riskd's answer: 400 (invalid event), 413 (too
	// large), 404 (not riskd's scoring address)…; 0 when the client
	// refused the event without sending it.
	StatusCode int
	// Message says what is wrong, naming the field.
	Message string
}

func (e *RefusedError) Error() string {
	if e.StatusCode == 0 {
		return fmt.Sprintf("riskd client: event %q not sent: %s", e.EventID, e.Message)
	}
	return fmt.Sprintf("riskd refused event %q (%d): %s", e.EventID, e.StatusCode, e.Message)
}

// UnavailableError is riskd not answering in time, unreachable, or
// failing (5xx): the event may or may not have been recorded. Retrying
// with the same Event is safe: riskd records an ID once and answers a
// retry with the first answer's features.
type UnavailableError struct {
	EventID string
	// StatusCode is riskd's (or a proxy's) answer, 0 when none came.
	StatusCode int
	// Err is the cause: context.DeadlineExceeded when the budget ran
	// out, a connection error, or what the answer said.
	Err error
}

func (e *UnavailableError) Error() string {
	if e.StatusCode == 0 {
		return fmt.Sprintf("riskd unavailable for event %q: %v", e.EventID, e.Err)
	}
	return fmt.Sprintf("riskd unavailable for event %q (%d): %v", e.EventID, e.StatusCode, e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }
