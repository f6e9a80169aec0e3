package worker

import (
	"log/slog"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"

	"github.com/custodyflows/custodyflows/codec"
)

// DefaultNamespace is the Temporal namespace used when ClientConfig names
// none.
const DefaultNamespace = "default"

// ClientConfig is what ClientOptions needs.
type ClientConfig struct {
	// HostPort is the Temporal frontend address (client's default,
	// localhost:7233, when empty).
	HostPort string
	// Namespace is the Temporal namespace (DefaultNamespace when empty).
	Namespace string
	// Codec encrypts payloads and failure messages. Nil leaves them in
	// clear: only for tests, since histories then hold customer ids and
	// redirect URLs readable by anyone with database or UI access.
	Codec *codec.Codec
	// Logger receives the SDK's logs (slog.Default when nil).
	Logger *slog.Logger
	// Metrics receives the SDK's metrics (none when nil); see
	// NewMetricsHandler.
	Metrics client.MetricsHandler
}

// ClientOptions returns the Temporal client options shared by the api and
// worker commands. Both must use the same data and failure converters, or
// one side cannot read what the other wrote.
func ClientOptions(o ClientConfig) client.Options {
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	ns := o.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	opts := client.Options{
		HostPort:       o.HostPort,
		Namespace:      ns,
		Logger:         log.NewStructuredLogger(logger),
		MetricsHandler: o.Metrics,
	}
	if o.Codec != nil {
		dc := codec.DataConverter(o.Codec)
		opts.DataConverter = dc
		opts.FailureConverter = codec.FailureConverter(dc)
	} else {
		opts.DataConverter = converter.GetDefaultDataConverter()
	}
	return opts
}
