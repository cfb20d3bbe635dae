package gateway

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are Gatehouse's Prometheus series. A nil *Metrics records
// nothing. No label ever holds an email, token or path.
type Metrics struct {
	requests       *prometheus.CounterVec
	upstreamErrors *prometheus.CounterVec
	upstreamTime   prometheus.Histogram
	codes          *prometheus.CounterVec
	signins        *prometheus.CounterVec
	storeErrors    prometheus.Counter
	cache          *prometheus.CounterVec
	cacheHits      prometheus.Counter // cache's two series, kept: every request counts one
	cacheMisses    prometheus.Counter
	activeSessions prometheus.Gauge
	auditDrops     prometheus.Counter
}

// NewMetrics registers the series on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_requests_total", Help: "Requests by access decision and status code.",
		}, []string{"decision", "code"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_upstream_errors_total", Help: "Failed upstream requests by kind.",
		}, []string{"kind"}),
		upstreamTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gatehouse_upstream_duration_seconds", Help: "Time from forwarding a request to the upstream's response headers.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		codes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_codes_total", Help: "Sign-in code requests by outcome (sent, cooldown, throttled, not_allowed, disabled, send_failed).",
		}, []string{"outcome"}),
		signins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_signins_total", Help: "Sign-in attempts by outcome.",
		}, []string{"outcome"}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_store_errors_total", Help: "Store operations that failed.",
		}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_session_cache_total", Help: "Session lookups by cache result (hit, miss).",
		}, []string{"result"}),
		auditDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_audit_events_dropped_total", Help: "Audit events dropped because too many writes were already in flight.",
		}),
		activeSessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_active_sessions", Help: "Sessions in the store not past their absolute expiry, refreshed periodically.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.upstreamErrors, m.upstreamTime, m.codes, m.signins, m.storeErrors, m.cache, m.activeSessions, m.auditDrops} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Series that ratios and alerts divide by exist from the start at 0.
	m.cacheHits = m.cache.WithLabelValues("hit")
	m.cacheMisses = m.cache.WithLabelValues("miss")
	m.signins.WithLabelValues("ok")
	m.signins.WithLabelValues("failed")
	m.codes.WithLabelValues("sent")
	return m, nil
}

func (m *Metrics) request(decision string, status int) {
	if m == nil {
		return
	}
	if status == 0 {
		status = 200
	}
	m.requests.WithLabelValues(decision, statusLabel(status)).Inc()
}

func (m *Metrics) upstreamError(kind string) {
	if m != nil {
		m.upstreamErrors.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) upstreamLatency(d time.Duration) {
	if m != nil {
		m.upstreamTime.Observe(d.Seconds())
	}
}

func (m *Metrics) codeEvent(outcome string) {
	if m != nil {
		m.codes.WithLabelValues(outcome).Inc()
	}
}

func (m *Metrics) auditDropped() {
	if m != nil {
		m.auditDrops.Inc()
	}
}

func (m *Metrics) signin(outcome string) {
	if m != nil {
		m.signins.WithLabelValues(outcome).Inc()
	}
}

// SetActiveSessions sets the active sessions gauge; the caller counts them
// in the store on its own schedule, so a scrape costs no query.
func (m *Metrics) SetActiveSessions(n int) {
	if m != nil {
		m.activeSessions.Set(float64(n))
	}
}

// StoreError counts a failed store operation made outside the gateway (by
// background work such as pruning).
func (m *Metrics) StoreError() { m.storeError() }

func (m *Metrics) storeError() {
	if m != nil {
		m.storeErrors.Inc()
	}
}

func (m *Metrics) cacheHit(hit bool) {
	if m == nil {
		return
	}
	if hit {
		m.cacheHits.Inc()
	} else {
		m.cacheMisses.Inc()
	}
}

// statusLabel avoids an allocation per request for common codes.
func statusLabel(code int) string {
	switch code {
	case 200:
		return "200"
	case 303:
		return "303"
	case 401:
		return "401"
	case 403:
		return "403"
	}
	return strconv.Itoa(code)
}
