package engine

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the engine's Prometheus collectors. Per-rule children are
// resolved once per policy (see compile) so scoring never looks up labels.
type metrics struct {
	decisions       *prometheus.CounterVec
	shadowDecisions *prometheus.CounterVec
	agreement       *prometheus.CounterVec
	shadowLatency   prometheus.Histogram
	ruleHits        *prometheus.CounterVec
	ruleErrors      *prometheus.CounterVec
	whereErrors     *prometheus.CounterVec
	unscored        *prometheus.CounterVec
	scoreLatency    prometheus.Histogram
	storeLatency    prometheus.Histogram
	storeErrors     prometheus.Counter
	storeTimeouts   prometheus.Counter
	invalidEvents   prometheus.Counter
}

// LatencyBuckets span 10 µs to 1 s in steps of 1, 2.5 and 5: engine time
// is microseconds, a slow store shows up in the milliseconds and a Kafka
// commit under trouble in the hundreds. Written out so that every
// boundary prints round (le="0.0025", not le="0.0024999999999999996").
// The transports time their requests and commits with them too, so every
// riskd histogram has the same boundaries. Not to be modified.
var LatencyBuckets = []float64{
	10e-6, 25e-6, 50e-6,
	100e-6, 250e-6, 500e-6,
	0.001, 0.0025, 0.005,
	0.01, 0.025, 0.05,
	0.1, 0.25, 0.5,
	1,
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_decisions_total", Help: "Decisions made, by ruleset and outcome.",
		}, []string{"ruleset", "outcome"}),
		shadowDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_shadow_decisions_total", Help: "Verdicts recorded but not returned (challengers, and champions whose traffic a challenger decided), by ruleset and outcome.",
		}, []string{"ruleset", "outcome"}),
		agreement: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_challenger_agreement_total", Help: "Events scored by both a live ruleset (champion) and a challenger, by the outcome of each: the diagonal is agreement.",
		}, []string{"champion", "challenger", "champion_outcome", "challenger_outcome"}),
		shadowLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "riskd_shadow_duration_seconds", Help: "Time to evaluate an event's shadow verdicts, after its live decision.", Buckets: LatencyBuckets,
		}),
		ruleHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_rule_hits_total", Help: "Rules that fired, by ruleset and rule.",
		}, []string{"ruleset", "rule"}),
		ruleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_rule_errors_total", Help: "Rule expressions that failed at run time (the rule did not fire), by ruleset and rule.",
		}, []string{"ruleset", "rule"}),
		whereErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_feature_where_errors_total", Help: "Events a filtered feature's where condition failed on at run time (the event was not recorded into it), by feature.",
		}, []string{"feature"}),
		unscored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_unscored_events_total", Help: "Events of a type no ruleset scores (recorded for features, answered pass), by type; types no feature records either are counted as \"other\".",
		}, []string{"type"}),
		scoreLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "riskd_score_duration_seconds", Help: "Time to score one event, from parsing to decision.", Buckets: LatencyBuckets,
		}),
		storeLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "riskd_feature_store_duration_seconds", Help: "Time of the feature store's read-and-record call per event.", Buckets: LatencyBuckets,
		}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "riskd_feature_store_errors_total", Help: "Feature store calls that failed; the decision was marked degraded.",
		}),
		storeTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "riskd_feature_store_timeouts_total", Help: "Feature store calls that ran past the store timeout (also counted in errors).",
		}),
		invalidEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "riskd_invalid_events_total", Help: "Events refused as invalid (bad JSON, missing id or type, bad ts, too large).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.decisions, m.shadowDecisions, m.agreement, m.shadowLatency, m.ruleHits, m.ruleErrors, m.whereErrors, m.unscored, m.scoreLatency, m.storeLatency, m.storeErrors, m.storeTimeouts, m.invalidEvents)
	}
	return m
}
