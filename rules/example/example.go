// Package example embeds the example policy that riskd serves when started
// without -rules: checkout, login and signup rulesets and their features.
package example

import "embed"

// FS holds features.yaml and the ruleset files.
//
//go:embed *.yaml
var FS embed.FS
