// Package api holds riskd's HTTP contract: the OpenAPI document of every
// endpoint, which riskd serves at GET /openapi.yaml and the HTTP tests
// hold every request and answer to.
package api

import _ "embed"

// OpenAPI is the OpenAPI 3.1 document of riskd's HTTP API, in YAML.
//
//go:embed openapi.yaml
var OpenAPI []byte
