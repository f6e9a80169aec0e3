package worker

import (
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// metricsReportInterval is how often tally flushes to the Prometheus
// collectors; a scrape sees values at most this old.
const metricsReportInterval = time.Second

// NewMetricsHandler returns a Temporal SDK metrics handler that exports
// to reg with Prometheus naming (temporal_request_total,
// temporal_activity_execution_latency_seconds, …). Timers are histograms so
// that several workers' latencies can be aggregated. Close the returned
// Closer on shutdown to stop the reporting loop.
//
// A metric that cannot be registered (a name clash with another collector
// on reg) is logged and dropped instead of panicking, so metrics never take
// the worker down.
func NewMetricsHandler(reg prometheus.Registerer) (client.MetricsHandler, io.Closer, error) {
	return newMetricsHandler(reg, slog.Default())
}

func newMetricsHandler(reg prometheus.Registerer, logger *slog.Logger) (client.MetricsHandler, io.Closer, error) {
	if reg == nil {
		return nil, nil, errors.New("worker: nil prometheus registerer")
	}
	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer:       reg,
		DefaultTimerType: tallyprom.HistogramTimerType,
		OnRegisterError: func(err error) {
			logger.Warn("temporal metric not exported", "err", err)
		},
	})
	scope, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
	}, metricsReportInterval)
	return sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope)), closer, nil
}
