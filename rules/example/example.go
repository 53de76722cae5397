// Package example embeds the example policy that riskd serves when started
// without -rules: checkout, login and signup rulesets, their features and
// lists.
package example

import "embed"

// FS holds features.yaml, the ruleset files and the list files.
//
//go:embed *.yaml lists/*.txt
var FS embed.FS
