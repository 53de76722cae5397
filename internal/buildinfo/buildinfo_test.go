package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want Info
	}{
		{name: "no build info", ok: false, want: Info{Version: "(devel)", Revision: "unknown", GoVersion: "go1.0"}},
		{name: "module build", ok: true, bi: &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.4.0"}},
			want: Info{Version: "v1.4.0", Revision: "unknown", GoVersion: "go1.26.0"}},
		{name: "stamped checkout", ok: true, bi: &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.0.0-20261129114400-8515fce0a1b2"},
			Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "8515fce0a1b2"}, {Key: "vcs.modified", Value: "false"}}},
			want: Info{Version: "v0.0.0-20261129114400-8515fce0a1b2", Revision: "8515fce0a1b2", GoVersion: "go1.26.0"}},
		{name: "dirty work tree", ok: true, bi: &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "8515fce0a1b2"}, {Key: "vcs.modified", Value: "true"}}},
			want: Info{Version: "(devel)", Revision: "8515fce0a1b2-dirty", GoVersion: "go1.26.0"}},
		{name: "modified without a revision", ok: true, bi: &debug.BuildInfo{GoVersion: "go1.26.0",
			Settings: []debug.BuildSetting{{Key: "vcs.modified", Value: "true"}}},
			want: Info{Version: "(devel)", Revision: "unknown", GoVersion: "go1.26.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fromBuildInfo(tt.bi, tt.ok)
			if !tt.ok {
				got.GoVersion = "go1.0" // the running toolchain's: not this test's to pin
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	if got, want := (Info{Version: "v1.4.0", Revision: "8515fce", GoVersion: "go1.26.0"}).String("riskd"), "riskd v1.4.0 (revision 8515fce, go1.26.0)"; got != want {
		t.Errorf("String: %q, want %q", got, want)
	}
}
